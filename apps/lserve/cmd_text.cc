// tokenize, detokenize, render-chat: the text side of a model, as JSON,
// mirroring Hugging Face tokenizers and apply_chat_template.
#include <charconv>
#include <memory>

#include "commands.h"
#include "core/mapped_file.h"
#include "formats/model_source.h"
#include "tokenizer/model_text.h"

namespace lserve::app {
namespace {

struct TextModel {
  ModelSource model;
  Tokenizer tokenizer;
};

Result<TextModel> OpenTextModel(const std::string& model_flag) {
  LSERVE_ASSIGN_OR_RETURN(std::string path, ResolveModelPath(model_flag));
  LSERVE_ASSIGN_OR_RETURN(ModelSource model, OpenModel(path));
  LSERVE_ASSIGN_OR_RETURN(Tokenizer tokenizer, LoadTokenizer(model));
  return TextModel{std::move(model), std::move(tokenizer)};
}

struct TokenizeFlags {
  std::string model;
  std::string text;
  bool no_special = false;
};

int RunTokenize(const TokenizeFlags& f) {
  auto m = OpenTextModel(f.model);
  if (!m.ok()) return Fail(m.status());
  auto ids = m->tokenizer.Encode(f.text, !f.no_special);
  if (!ids.ok()) return Fail(ids.status());
  return PrintJson({{"ids", *ids}});
}

struct DetokenizeFlags {
  std::string model;
  std::string ids;
  bool skip_special = false;
};

int RunDetokenize(const DetokenizeFlags& f) {
  auto m = OpenTextModel(f.model);
  if (!m.ok()) return Fail(m.status());
  auto ids = ParseIds(f.ids, m->tokenizer.num_tokens());
  if (!ids.ok()) return Fail(ids.status());
  return PrintJson({{"text", m->tokenizer.Decode(*ids, f.skip_special)}});
}

struct RenderChatFlags {
  std::string model;
  std::string messages_file;
  bool no_generation_prompt = false;
};

int RunRenderChat(const RenderChatFlags& f) {
  auto m = OpenTextModel(f.model);
  if (!m.ok()) return Fail(m.status());
  auto tmpl = LoadChatTemplate(m->model);
  if (!tmpl.ok()) return Fail(tmpl.status());
  auto text = ReadTextFile(f.messages_file, 64u << 20);
  if (!text.ok()) return Fail(text.status());
  auto messages = nlohmann::ordered_json::parse(*text, nullptr, /*allow_exceptions=*/false);
  if (messages.is_discarded()) return Fail(InvalidArgument(f.messages_file + " is not valid JSON"));
  auto rendered = RenderChat(*tmpl, m->tokenizer, messages, !f.no_generation_prompt);
  if (!rendered.ok()) return Fail(rendered.status());
  return PrintJson({{"text", rendered->text}, {"ids", rendered->ids}});
}

}  // namespace

Command AddTokenize(CLI::App& app) {
  auto* cmd = app.add_subcommand("tokenize", "encode text to token ids: {\"ids\":[...]}");
  auto f = std::make_shared<TokenizeFlags>();
  AddModelOption(*cmd, &f->model);
  cmd->add_option("--text", f->text, "the text to encode")->required();
  cmd->add_flag("--no-special", f->no_special, "do not add special tokens (HF add_special_tokens=False)");
  return {cmd, [f] { return RunTokenize(*f); }};
}

Command AddDetokenize(CLI::App& app) {
  auto* cmd = app.add_subcommand("detokenize", "decode token ids to text: {\"text\":\"...\"}");
  auto f = std::make_shared<DetokenizeFlags>();
  AddModelOption(*cmd, &f->model);
  cmd->add_option("--ids", f->ids, "comma-separated token ids, e.g. 1,2,3")->required();
  cmd->add_flag("--skip-special", f->skip_special, "leave special tokens out of the text");
  return {cmd, [f] { return RunDetokenize(*f); }};
}

Command AddRenderChat(CLI::App& app) {
  auto* cmd = app.add_subcommand("render-chat", "apply the model's chat template: {\"text\":...,\"ids\":[...]}");
  auto f = std::make_shared<RenderChatFlags>();
  AddModelOption(*cmd, &f->model);
  cmd->add_option("--messages", f->messages_file, "JSON file with an OpenAI-style messages array")->required();
  cmd->add_flag("--no-generation-prompt", f->no_generation_prompt, "do not open the assistant's turn");
  return {cmd, [f] { return RunRenderChat(*f); }};
}

}  // namespace lserve::app
