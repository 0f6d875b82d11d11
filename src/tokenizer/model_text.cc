#include "tokenizer/model_text.h"

#include "formats/gguf.h"

namespace lserve {

Result<Tokenizer> LoadTokenizer(const ModelSource& model) {
  if (model.format == ModelFormat::kGguf) {
    auto t = Tokenizer::FromGguf(*model.gguf);
    if (!t.ok()) return t.status().Annotate(model.path);
    return t;
  }
  if (model.tokenizer_json.empty())
    return NotFound("model folder '" + model.path + "' has no tokenizer.json");
  auto t = Tokenizer::FromHfJson(model.tokenizer_json, model.tokenizer_config_json, model.config.model_type);
  if (!t.ok()) return t.status().Annotate("tokenizer.json");
  return t;
}

Result<ChatTemplate> LoadChatTemplate(const ModelSource& model) {
  if (model.chat_template.empty()) return NotFound("model '" + model.path + "' ships no chat template");
  auto t = ChatTemplate::Compile(model.chat_template);
  if (!t.ok()) return t.status().Annotate("chat template");
  return t;
}

Status ValidateChatMessages(const nlohmann::ordered_json& messages) {
  if (!messages.is_array()) return InvalidArgument("messages must be a JSON array");
  if (messages.empty()) return InvalidArgument("messages must not be empty");
  for (size_t i = 0; i < messages.size(); ++i) {
    const auto& m = messages[i];
    const std::string where = "messages[" + std::to_string(i) + "]";
    if (!m.is_object()) return InvalidArgument(where + " must be an object");
    auto role = m.find("role");
    if (role == m.end() || !role->is_string()) return InvalidArgument(where + ".role must be a string");
    auto content = m.find("content");
    if (content == m.end() || content->is_null() || content->is_string()) continue;
    if (!content->is_array())
      return InvalidArgument(where + ".content must be a string, null or an array of parts");
    for (size_t k = 0; k < content->size(); ++k) {
      const auto& part = (*content)[k];
      const std::string pwhere = where + ".content[" + std::to_string(k) + "]";
      if (!part.is_object()) return InvalidArgument(pwhere + " must be an object");
      auto type = part.find("type");
      if (type == part.end() || !type->is_string()) return InvalidArgument(pwhere + ".type must be a string");
      if (type->get<std::string>() == "text") {
        auto text = part.find("text");
        if (text == part.end() || !text->is_string())
          return InvalidArgument(pwhere + ".text must be a string");
      }
    }
  }
  return Status::Ok();
}

Result<RenderedChat> RenderChat(const ChatTemplate& chat_template, const Tokenizer& tokenizer,
                                const nlohmann::ordered_json& messages, bool add_generation_prompt,
                                const nlohmann::ordered_json& template_kwargs) {
  LSERVE_RETURN_IF_ERROR(ValidateChatMessages(messages));
  nlohmann::ordered_json context = nlohmann::ordered_json::object();
  const SpecialTokenStrings& s = tokenizer.special_tokens();
  if (s.bos_token) context["bos_token"] = *s.bos_token;
  if (s.eos_token) context["eos_token"] = *s.eos_token;
  if (s.unk_token) context["unk_token"] = *s.unk_token;
  if (s.pad_token) context["pad_token"] = *s.pad_token;
  if (!template_kwargs.is_null()) {
    if (!template_kwargs.is_object()) return InvalidArgument("chat template kwargs must be an object");
    for (const auto& [key, value] : template_kwargs.items()) {
      if (key == "messages") return InvalidArgument("chat template kwargs cannot set messages");
      if (key == "add_generation_prompt") {
        if (!value.is_boolean()) return InvalidArgument("chat template kwargs: add_generation_prompt must be a boolean");
        add_generation_prompt = value.get<bool>();
      } else {
        context[key] = value;
      }
    }
  }
  RenderedChat out;
  LSERVE_ASSIGN_OR_RETURN(out.text, chat_template.Render(messages, add_generation_prompt, context));
  LSERVE_ASSIGN_OR_RETURN(out.ids, tokenizer.Encode(out.text, /*add_special_tokens=*/false));
  return out;
}

}  // namespace lserve
