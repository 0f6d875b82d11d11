// The text side of a model: its tokenizer and chat template, loaded from
// what OpenModel gathered (HF folder files or GGUF metadata), and the chat
// rendering that transformers' apply_chat_template performs.
#pragma once

#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/status.h"
#include "formats/model_source.h"
#include "tokenizer/chat_template.h"
#include "tokenizer/tokenizer.h"

namespace lserve {

Result<Tokenizer> LoadTokenizer(const ModelSource& model);

// NotFound when the model ships no chat template.
Result<ChatTemplate> LoadChatTemplate(const ModelSource& model);

// Checks an OpenAI-style messages array: a non-empty array of objects, each
// with a string "role" and a "content" that is a string, null, or an array
// of parts ({"type": "text", "text": ...}). Names the offending element.
Status ValidateChatMessages(const nlohmann::ordered_json& messages);

struct RenderedChat {
  std::string text;
  std::vector<int32_t> ids;  // the text encoded without adding special tokens
};

// Renders `messages` with the model's template, passing the tokenizer's
// special-token strings (bos_token, eos_token, unk_token, pad_token) as
// transformers does, then encodes the text as apply_chat_template(tokenize=True)
// does (add_special_tokens=False: the template writes BOS itself).
// `template_kwargs` (an object, or null) adds template variables over those,
// as apply_chat_template(**kwargs) does: it may set add_generation_prompt (a
// boolean, overriding the argument) but not the messages.
Result<RenderedChat> RenderChat(const ChatTemplate& chat_template, const Tokenizer& tokenizer,
                                const nlohmann::ordered_json& messages, bool add_generation_prompt,
                                const nlohmann::ordered_json& template_kwargs = nullptr);

}  // namespace lserve
