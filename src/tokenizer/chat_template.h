// Chat templates: compiles the Jinja template a checkpoint ships
// (tokenizer_config.json "chat_template", chat_template.jinja or the GGUF
// key tokenizer.chat_template) and renders conversations with it exactly as
// transformers' apply_chat_template(..., tokenize=False) does.
//
// The template is untrusted code. It runs in a sandboxed interpreter
// (src/tokenizer/jinja_*) that has no I/O, refuses Python internals and
// mutating methods like jinja2's ImmutableSandboxedEnvironment, and stops
// with ResourceExhausted when a render exceeds its limits. Message text is
// data: it is never parsed as template code.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <ctime>
#include <memory>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

#include "core/status.h"

namespace lserve {

namespace jinja {
struct Stmt;
}  // namespace jinja

struct ChatTemplateLimits {
  size_t max_template_bytes = 1u << 20;     // source text
  size_t max_output_bytes = 4u << 20;       // rendered text
  int max_depth = 64;                       // nested macro calls while rendering
  int max_nesting = 128;                    // nested blocks and expressions in the source
  uint64_t max_steps = 1'000'000;           // instruction budget of one render
  uint64_t max_loop_iterations = 250'000; // all loop iterations of one render
  std::chrono::milliseconds max_wall_time{100};
  size_t max_value_bytes = 16u << 20;       // any one string or list built by the template
  size_t max_total_bytes = 256u << 20;      // all strings and lists built by one render
  int max_value_depth = 128;                // nesting of input JSON and of built values
};

class ChatTemplate {
 public:
  // Fails with InvalidArgument naming the line on syntax errors, unknown
  // filters or tests (outside conditionals, as jinja2 does) and
  // unsupported statements (include/import/extends need a loader).
  static Result<ChatTemplate> Compile(std::string_view source, const ChatTemplateLimits& limits = {});

  // Renders `messages` (an OpenAI-style array of message objects).
  // `extra_context` (an object, or null) supplies the other template
  // variables: bos_token, eos_token, unk_token, pad_token, tools, documents,
  // date_string, ... Like apply_chat_template, message keys whose value is
  // null are dropped, reasoning text given as "reasoning_content",
  // "thinking" or "reasoning" is visible under the first two names, and
  // `tools`/`documents` default to none. Key order of JSON objects is kept
  // only with ordered_json (tojson output depends on it); with plain json
  // keys come alphabetically.
  //
  // Errors: raise_exception("msg") gives InvalidArgument with exactly
  // "msg"; other template errors InvalidArgument "chat template error
  // (line N): ..."; exceeded limits ResourceExhausted.
  Result<std::string> Render(const nlohmann::ordered_json& messages, bool add_generation_prompt,
                             const nlohmann::ordered_json& extra_context) const;
  Result<std::string> Render(const nlohmann::json& messages, bool add_generation_prompt,
                             const nlohmann::json& extra_context) const;
  // As Render, with the time that strftime_now() reports (UTC) fixed.
  Result<std::string> RenderAt(const nlohmann::ordered_json& messages, bool add_generation_prompt,
                               const nlohmann::ordered_json& extra_context, std::time_t now) const;

  const std::string& source() const { return *source_; }
  const ChatTemplateLimits& limits() const { return limits_; }

 private:
  struct Compiled;
  ChatTemplate(std::shared_ptr<const Compiled> compiled, std::shared_ptr<const std::string> source,
               const ChatTemplateLimits& limits)
      : compiled_(std::move(compiled)), source_(std::move(source)), limits_(limits) {}

  std::shared_ptr<const Compiled> compiled_;
  std::shared_ptr<const std::string> source_;
  ChatTemplateLimits limits_;
};

}  // namespace lserve
