// The OpenAI request/response protocol of the server, as plain values:
// request bodies (JSON text) are parsed and validated into structs, and
// response bodies and stream chunks are built from structs. Nothing here
// knows about HTTP or the engine, and nothing throws: a parse returns the
// request or an ApiError (always a 400 here) whose `param` names the field
// at fault.
//
// Validation rules (RELIABILITY.md C14-C20 and the Defaults table):
//   - the body is one JSON object of valid UTF-8 without raw NUL bytes (an
//     escaped \u0000 is text), nested at most ProtocolLimits::max_json_depth
//     levels (checked by a scan before the parser runs), with no NaN, Infinity
//     or overflowing number (1e400): those name the top-level field they sit in;
//   - top-level fields are checked in alphabetical order, so the first
//     error reported for a body with several is deterministic;
//   - unknown fields are a 400 naming the field, unless allow_unknown_fields;
//   - a field given as null is the same as an absent one (except prompt and
//     messages, which are required);
//   - types are strict: integers reject 1.5, 3.0, true and "3"; numbers reject
//     true and "1";
//   - sampling ranges, stop caps and token-id ranges of logit_bias and
//     stop_token_ids are SamplingParams::FindInvalid's (its `param` is kept);
//   - prompt token ids outside [0, vocab_size) are "out of vocabulary".
//
// Extensions beyond OpenAI (vLLM's names): top_k, min_p, repetition_penalty,
// stop_token_ids, ignore_eos, skip_special_tokens; chat also
// add_generation_prompt, chat_template_kwargs (extra template variables; not
// the messages) and chat_template when the server trusts request templates. Known OpenAI fields this server does not
// implement are a 400 naming them when set to anything but their no-op value:
// completions echo (true), suffix, best_of (other than n); chat
// response_format (other than {"type":"text"}), tools, tool_choice (other
// than "none"), functions, function_call; both allowed_token_ids.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <variant>
#include <vector>

#include <nlohmann/json.hpp>

#include "sampling/sampling_params.h"
#include "server/api_error.h"

namespace lserve {

// A parsed value or the 400 that explains why there is none.
template <typename T>
using ParseResult = std::variant<T, ApiError>;

struct ProtocolLimits {
  int32_t vocab_size = 0;            // token ids must lie in [0, vocab_size)
  int64_t max_n = 16;                // choices per prompt
  size_t max_prompts = 64;           // prompts in one batched completions request
  int max_json_depth = 64;           // nesting of arrays and objects in a body
  bool trust_request_chat_template = false;  // accept a request's own chat_template
  bool allow_unknown_fields = false;         // lenient mode: ignore unknown fields instead of 400
};

// ---------------------------------------------------------------------------
// Requests

// One prompt of a completions request: text to tokenize, or token ids that
// were checked against the vocabulary.
struct PromptInput {
  bool is_tokens = false;
  std::string text;          // when !is_tokens; never empty
  std::vector<int32_t> ids;  // when is_tokens; never empty
};

struct CompletionRequest {
  std::string model;                 // empty when absent
  std::vector<PromptInput> prompts;  // one per prompt of a batched request; never empty
  // Validated. max_tokens is the request's or OpenAI's default of 16;
  // logprobs / top_logprobs come from the legacy integer `logprobs`.
  SamplingParams sampling;
  std::optional<int64_t> max_tokens;  // as given
  int64_t n = 1;                      // choices per prompt, in [1, max_n]
  bool stream = false;
  bool include_usage = false;         // stream_options.include_usage
  bool skip_special_tokens = true;
  std::optional<int64_t> logprobs;    // legacy: top logprobs per token, in [0, 20]
  std::string user;                   // accepted and ignored
};

struct ChatMessage {
  std::string role;                    // "system", "user", "assistant" or "tool"
  std::optional<std::string> content;  // text parts joined by "\n"; absent only for assistant
  std::string name;                    // optional participant name
  std::string tool_call_id;            // optional, tool messages only
};

struct ChatCompletionRequest {
  std::string model;
  std::vector<ChatMessage> messages;  // never empty
  // The same messages as an OpenAI messages array for ChatTemplate::Render /
  // RenderChat: keys role, content (a string, or null for an assistant
  // message without content), name and tool_call_id when given.
  nlohmann::ordered_json messages_json;
  // Validated. When max_tokens (or max_completion_tokens) is absent,
  // sampling.max_tokens holds kMaxMaxTokens until FitMaxTokens gives the
  // room left in the context: the server must call it.
  SamplingParams sampling;
  std::optional<int64_t> max_tokens;  // max_completion_tokens, else max_tokens, as given
  int64_t n = 1;
  bool stream = false;
  bool include_usage = false;
  bool skip_special_tokens = true;
  bool add_generation_prompt = true;
  std::optional<std::string> chat_template;    // only with trust_request_chat_template
  nlohmann::ordered_json chat_template_kwargs;  // an object without "messages", or null
  std::string user;
};

ParseResult<CompletionRequest> ParseCompletionRequest(std::string_view body, const ProtocolLimits& limits);
ParseResult<ChatCompletionRequest> ParseChatCompletionRequest(std::string_view body, const ProtocolLimits& limits);

// The number of tokens to generate for a prompt of `prompt_tokens` tokens in
// a context of `max_model_len`, or a 400 context_length_exceeded naming
// `prompt_param` ("prompt" or "messages"). A prompt must leave room for at
// least one token; an explicit max_tokens must fit whole; an absent one
// takes all the room left.
ParseResult<int64_t> FitMaxTokens(int64_t prompt_tokens, std::optional<int64_t> max_tokens, int64_t max_model_len,
                                  std::string_view prompt_param);

// /tokenize: {"prompt": text} or {"messages": [...]} (vLLM's shapes).
struct TokenizeRequest {
  std::string model;
  bool is_chat = false;
  std::string prompt;                    // when !is_chat; may be empty
  std::vector<ChatMessage> messages;     // when is_chat
  nlohmann::ordered_json messages_json;  // when is_chat, as in ChatCompletionRequest
  bool add_special_tokens = true;        // default true for a prompt, false for messages (vLLM)
  bool add_generation_prompt = true;     // messages only
  bool return_token_strs = false;
  std::optional<std::string> chat_template;  // only when trusted
  nlohmann::ordered_json chat_template_kwargs;
};

// /detokenize: {"tokens": [ids]}; ids checked against the vocabulary.
struct DetokenizeRequest {
  std::string model;
  std::vector<int32_t> tokens;  // may be empty
};

ParseResult<TokenizeRequest> ParseTokenizeRequest(std::string_view body, const ProtocolLimits& limits);
ParseResult<DetokenizeRequest> ParseDetokenizeRequest(std::string_view body, const ProtocolLimits& limits);

// ---------------------------------------------------------------------------
// Responses

// What the engine produced for one sampled token, for logprobs.
struct TopLogprob {
  std::string token;  // raw bytes of the token's text (may be a partial UTF-8 character)
  float logprob = 0;
};
struct TokenLogprob {
  std::string token;  // raw bytes; shown with U+FFFD for invalid bytes, exact in "bytes"
  float logprob = 0;
  std::vector<TopLogprob> top;  // most likely first
};

// One choice of a response, or the part of it that a stream chunk carries.
struct ChoiceOutput {
  int64_t index = 0;
  std::string text;           // invalid UTF-8 is replaced by U+FFFD
  std::string finish_reason;  // "stop", "length", "abort"; empty: null
  std::optional<std::vector<TokenLogprob>> logprobs;  // absent: "logprobs": null
  // Completions only: the offset in the choice's text (code points) of the
  // first token of `logprobs`; a stream passes the length sent so far.
  int64_t text_offset = 0;
};

struct Usage {
  int64_t prompt_tokens = 0;
  int64_t completion_tokens = 0;
};

// The fields every response and chunk of one request share.
struct ResponseHeader {
  std::string id;       // MakeResponseId("cmpl") / MakeResponseId("chatcmpl")
  int64_t created = 0;  // Unix seconds
  std::string model;
};

// "<prefix>-" followed by 32 random hex digits.
std::string MakeResponseId(std::string_view prefix);
// The current Unix time in seconds.
int64_t UnixSeconds();

// Logprobs have no -inf in JSON: values below (or NaN) become this, as vLLM does.
inline constexpr double kMinJsonLogprob = -9999.0;

// Non-streaming bodies.
nlohmann::ordered_json CompletionResponse(const ResponseHeader& header, const std::vector<ChoiceOutput>& choices,
                                          const Usage& usage);
nlohmann::ordered_json ChatCompletionResponse(const ResponseHeader& header, const std::vector<ChoiceOutput>& choices,
                                              const Usage& usage);

// Stream chunks. `usage_field` adds "usage": null (OpenAI does so on every
// chunk when stream_options.include_usage is set; the last chunk then
// carries the usage, see UsageChunk).
//
// A completions stream sends, per choice, chunks with new text (and its
// logprobs) and one with the finish_reason (text may be empty):
nlohmann::ordered_json CompletionChunk(const ResponseHeader& header, const ChoiceOutput& delta, bool usage_field);
// A chat stream sends, per choice, first delta {"role":"assistant","content":""},
nlohmann::ordered_json ChatRoleChunk(const ResponseHeader& header, int64_t index, bool usage_field);
// then deltas {"content": text} (with logprobs), and last a chunk with the
// finish_reason whose delta is {} (or {"content": text} when text remains).
nlohmann::ordered_json ChatContentChunk(const ResponseHeader& header, const ChoiceOutput& delta, bool usage_field);
// The final chunk of either stream when include_usage: "choices": [] and the
// usage. `object` is "text_completion" or "chat.completion.chunk".
nlohmann::ordered_json UsageChunk(const ResponseHeader& header, std::string_view object, const Usage& usage);

// /tokenize: {"count", "max_model_len", "tokens", "token_strs"} (token_strs
// null unless given).
nlohmann::ordered_json TokenizeResponse(const std::vector<int32_t>& tokens, int64_t max_model_len,
                                        const std::vector<std::string>* token_strs);
// /detokenize: {"prompt": text}.
nlohmann::ordered_json DetokenizeResponse(std::string_view text);
// /v1/models: one model.
nlohmann::ordered_json ModelsResponse(std::string_view model_id, int64_t created, int64_t max_model_len);

// Serializes for the wire; never throws, always valid UTF-8 (invalid bytes
// that slipped through become U+FFFD).
std::string JsonText(const nlohmann::ordered_json& value);

// Server-sent events framing.
inline constexpr std::string_view kSseDone = "data: [DONE]\n\n";
// "data: <json>\n\n"; `json` holds no newline (JsonText never writes one).
std::string SseEvent(const std::string& json);
// A mid-stream failure: "data: {"error":...}\n\n" (the stream then closes).
std::string SseErrorEvent(const ApiError& error);

}  // namespace lserve
