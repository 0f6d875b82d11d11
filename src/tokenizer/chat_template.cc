#include "tokenizer/chat_template.h"

#include <utility>

#include "tokenizer/jinja_ast.h"
#include "tokenizer/jinja_interpreter.h"
#include "tokenizer/jinja_json.h"
#include "tokenizer/jinja_lexer.h"
#include "tokenizer/jinja_parser.h"

namespace lserve {

struct ChatTemplate::Compiled {
  jinja::ParsedTemplate parsed;
};

namespace {

jinja::Value GlobalFunction(std::string name, jinja::BuiltinFunction builtin) {
  auto fn = std::make_shared<jinja::Callable>();
  fn->kind = jinja::Callable::Kind::kBuiltin;
  fn->name = std::move(name);
  fn->builtin = builtin;
  return jinja::Value::FromCallable(std::move(fn));
}

// The names transformers' environment adds to jinja2's globals.
std::shared_ptr<jinja::Scope> MakeGlobals() {
  auto globals = std::make_shared<jinja::Scope>();
  globals->Set("range", GlobalFunction("range", jinja::BuiltinFunction::kRange));
  globals->Set("namespace", GlobalFunction("namespace", jinja::BuiltinFunction::kNamespace));
  globals->Set("dict", GlobalFunction("dict", jinja::BuiltinFunction::kDict));
  globals->Set("raise_exception", GlobalFunction("raise_exception", jinja::BuiltinFunction::kRaiseException));
  globals->Set("strftime_now", GlobalFunction("strftime_now", jinja::BuiltinFunction::kStrftimeNow));
  return globals;
}

// apply_chat_template's message normalisation: None-valued keys dropped,
// reasoning aliased as {"thinking": r, **message, "reasoning_content": r}.
Result<nlohmann::ordered_json> NormalizeMessage(const nlohmann::ordered_json& message) {
  if (!message.is_object()) {
    return InvalidArgument("Chat messages should be dicts, but got " + std::string(message.type_name()));
  }
  nlohmann::ordered_json kept = nlohmann::ordered_json::object();
  for (auto it = message.begin(); it != message.end(); ++it) {
    if (!it.value().is_null()) kept[it.key()] = it.value();
  }
  const nlohmann::ordered_json* reasoning = nullptr;
  for (const char* key : {"reasoning_content", "thinking", "reasoning"}) {
    auto it = kept.find(key);
    if (it != kept.end()) {
      reasoning = &*it;
      break;
    }
  }
  if (reasoning == nullptr) return kept;
  nlohmann::ordered_json aliased = nlohmann::ordered_json::object();
  aliased["thinking"] = *reasoning;
  for (auto it = kept.begin(); it != kept.end(); ++it) aliased[it.key()] = it.value();
  aliased["reasoning_content"] = aliased["thinking"];
  return aliased;
}

jinja::RenderLimits ToRenderLimits(const ChatTemplateLimits& limits) {
  jinja::RenderLimits r;
  r.max_output_bytes = limits.max_output_bytes;
  r.max_call_depth = limits.max_depth;
  r.max_steps = limits.max_steps;
  r.max_loop_iterations = limits.max_loop_iterations;
  r.max_wall_time = limits.max_wall_time;
  r.max_value_bytes = limits.max_value_bytes;
  r.max_total_bytes = limits.max_total_bytes;
  r.max_value_depth = limits.max_value_depth;
  // Each nesting level of the source costs a few interpreter frames.
  r.max_eval_depth = std::max(256, limits.max_nesting * 6);
  return r;
}

}  // namespace

Result<ChatTemplate> ChatTemplate::Compile(std::string_view source, const ChatTemplateLimits& limits) {
  if (source.size() > limits.max_template_bytes) {
    return InvalidArgument("chat template is " + std::to_string(source.size()) + " bytes, more than the limit of " +
                           std::to_string(limits.max_template_bytes));
  }
  LSERVE_ASSIGN_OR_RETURN(std::vector<jinja::Token> tokens, jinja::Tokenize(source));
  jinja::ParseLimits parse_limits;
  parse_limits.max_nesting = limits.max_nesting;
  auto compiled = std::make_shared<Compiled>();
  LSERVE_ASSIGN_OR_RETURN(compiled->parsed, jinja::Parse(std::move(tokens), parse_limits));
  return ChatTemplate(std::move(compiled), std::make_shared<const std::string>(source), limits);
}

Result<std::string> ChatTemplate::Render(const nlohmann::ordered_json& messages, bool add_generation_prompt,
                                         const nlohmann::ordered_json& extra_context) const {
  return RenderAt(messages, add_generation_prompt, extra_context, std::time(nullptr));
}

Result<std::string> ChatTemplate::Render(const nlohmann::json& messages, bool add_generation_prompt,
                                         const nlohmann::json& extra_context) const {
  nlohmann::ordered_json ordered_messages;
  nlohmann::ordered_json ordered_extra;
  try {
    ordered_messages = nlohmann::ordered_json::parse(messages.dump());
    ordered_extra = nlohmann::ordered_json::parse(extra_context.dump());
  } catch (const nlohmann::json::exception& e) {
    return InvalidArgument(std::string("chat template input is not valid JSON: ") + e.what());
  }
  return RenderAt(ordered_messages, add_generation_prompt, ordered_extra, std::time(nullptr));
}

Result<std::string> ChatTemplate::RenderAt(const nlohmann::ordered_json& messages, bool add_generation_prompt,
                                           const nlohmann::ordered_json& extra_context, std::time_t now) const {
  if (!messages.is_array()) return InvalidArgument("chat messages must be a JSON array");
  if (messages.empty()) {
    return InvalidArgument("Cannot apply chat template to an empty conversation. Provide at least one message.");
  }
  if (!extra_context.is_null() && !extra_context.is_object()) {
    return InvalidArgument("chat template context must be a JSON object");
  }
  const jinja::RenderLimits render_limits = ToRenderLimits(limits_);

  std::vector<jinja::Value> message_values;
  message_values.reserve(messages.size());
  for (const auto& message : messages) {
    LSERVE_ASSIGN_OR_RETURN(nlohmann::ordered_json normalized, NormalizeMessage(message));
    LSERVE_ASSIGN_OR_RETURN(jinja::Value value, jinja::ValueFromJson(normalized, render_limits.max_value_depth));
    message_values.push_back(std::move(value));
  }

  auto context = std::make_shared<jinja::Scope>();
  context->parent = MakeGlobals();
  context->Set("messages", jinja::Value::List(std::move(message_values)));
  context->Set("tools", jinja::Value::None());
  context->Set("documents", jinja::Value::None());
  context->Set("add_generation_prompt", jinja::Value::Bool(add_generation_prompt));
  if (extra_context.is_object()) {
    for (auto it = extra_context.begin(); it != extra_context.end(); ++it) {
      if (it.key() == "messages" || it.key() == "add_generation_prompt") {
        return InvalidArgument("chat template context may not set '" + it.key() + "'");
      }
      LSERVE_ASSIGN_OR_RETURN(jinja::Value value, jinja::ValueFromJson(it.value(), render_limits.max_value_depth));
      context->Set(it.key(), std::move(value));
    }
  }

  jinja::Renderer renderer(render_limits, now);
  return renderer.Render(compiled_->parsed, std::move(context));
}

}  // namespace lserve
