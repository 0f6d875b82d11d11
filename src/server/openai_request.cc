// Parsing and validation of /v1/completions, /v1/chat/completions,
// /tokenize and /detokenize bodies (the rules are listed in
// openai_protocol.h).
#include <charconv>
#include <string>
#include <utility>
#include <variant>

#include "server/openai_protocol.h"
#include "server/request_json.h"

namespace lserve {
namespace {

using request_json::Json;
using request_json::ReadBool;
using request_json::ReadInt64;
using request_json::ReadNumber;
using request_json::ReadString;
using request_json::ReadTokenId;
using request_json::TypeError;
using request_json::Unsupported;
using FieldError = std::optional<ApiError>;

// OpenAI's default for /v1/completions.
constexpr int64_t kDefaultCompletionMaxTokens = 16;

// The fields both generation endpoints share.
struct CommonFields {
  std::string model;
  SamplingParams sampling;
  std::optional<int64_t> max_tokens;
  int64_t n = 1;
  bool stream = false;
  bool stream_options_given = false;
  bool include_usage = false;
  bool skip_special_tokens = true;
  std::string user;
};

FieldError ReadStreamOptions(const Json& v, const ProtocolLimits& limits, CommonFields* f) {
  if (!v.is_object()) return TypeError("stream_options", "an object", v);
  f->stream_options_given = true;
  for (auto it = v.begin(); it != v.end(); ++it) {
    if (it.value().is_null()) continue;
    if (it.key() == "include_usage") {
      if (auto e = ReadBool(it.value(), "stream_options.include_usage", &f->include_usage)) return e;
    } else if (!limits.allow_unknown_fields) {
      return request_json::UnknownField("stream_options." + it.key());
    }
  }
  return std::nullopt;
}

// "123" or "-4" exactly: no sign '+', no spaces, no fraction.
std::optional<int64_t> ParseTokenIdKey(const std::string& key) {
  int64_t value = 0;
  const char* end = key.data() + key.size();
  const auto [ptr, ec] = std::from_chars(key.data(), end, value);
  if (ec != std::errc() || ptr != end || key.empty()) return std::nullopt;
  return value;
}

FieldError ReadLogitBias(const Json& v, std::map<int64_t, double>* out) {
  if (!v.is_object()) return TypeError("logit_bias", "an object mapping token ids to numbers", v);
  for (auto it = v.begin(); it != v.end(); ++it) {
    const std::optional<int64_t> id = ParseTokenIdKey(it.key());
    if (!id) {
      return InvalidRequest("logit_bias", "logit_bias keys must be token ids written as integers, got '" +
                                              request_json::Printable(it.key()) + "'");
    }
    double bias = 0;
    if (auto e = ReadNumber(it.value(), "logit_bias", &bias)) return e;
    (*out)[*id] = bias;  // ranges: SamplingParams::FindInvalid
  }
  return std::nullopt;
}

FieldError ReadSeed(const Json& v, std::optional<uint64_t>* out) {
  if (v.is_number_unsigned()) {  // the whole uint64 range is a valid seed
    *out = v.get<uint64_t>();
    return std::nullopt;
  }
  int64_t seed = 0;
  if (auto e = ReadInt64(v, "seed", &seed)) return e;
  Result<uint64_t> checked = SeedFromSigned(seed);
  if (!checked.ok()) return InvalidRequest("seed", checked.status().message());
  *out = *checked;
  return std::nullopt;
}

FieldError ReadStop(const Json& v, std::vector<std::string>* out) {
  constexpr std::string_view kWhat = "a string or a list of strings";
  if (v.is_string()) {
    out->push_back(v.get<std::string>());
    return std::nullopt;
  }
  if (!v.is_array()) return TypeError("stop", kWhat, v);
  for (const Json& entry : v) {
    if (!entry.is_string()) return TypeError("stop", kWhat, entry);
    out->push_back(entry.get<std::string>());  // count, emptiness, length: FindInvalid
  }
  return std::nullopt;
}

FieldError ReadInt64List(const Json& v, std::string_view param, std::vector<int64_t>* out) {
  if (!v.is_array()) return TypeError(param, "a list of integers", v);
  out->reserve(v.size());
  for (const Json& entry : v) {
    int64_t x = 0;
    if (auto e = ReadInt64(entry, param, &x)) return e;
    out->push_back(x);
  }
  return std::nullopt;
}

FieldError ReadTokenIdList(const Json& v, std::string_view param, int32_t vocab_size, std::vector<int32_t>* out) {
  if (!v.is_array()) return TypeError(param, "a list of token ids", v);
  out->reserve(v.size());
  for (const Json& entry : v) {
    int32_t id = 0;
    if (auto e = ReadTokenId(entry, param, vocab_size, &id)) return e;
    out->push_back(id);
  }
  return std::nullopt;
}

// Reads `key` into `f` when it is a field both generation endpoints share.
// Returns false (and leaves `error` alone) for any other key.
bool ReadCommonField(const std::string& key, const Json& v, const ProtocolLimits& limits, CommonFields* f,
                     FieldError* error) {
  SamplingParams& s = f->sampling;
  if (key == "model") {
    *error = ReadString(v, key, &f->model);
  } else if (key == "max_tokens") {
    int64_t max_tokens = 0;
    *error = ReadInt64(v, key, &max_tokens);
    f->max_tokens = max_tokens;
  } else if (key == "n") {
    *error = ReadInt64(v, key, &f->n);
  } else if (key == "stream") {
    *error = ReadBool(v, key, &f->stream);
  } else if (key == "stream_options") {
    *error = ReadStreamOptions(v, limits, f);
  } else if (key == "temperature") {
    *error = ReadNumber(v, key, &s.temperature);
  } else if (key == "top_p") {
    *error = ReadNumber(v, key, &s.top_p);
  } else if (key == "top_k") {
    *error = ReadInt64(v, key, &s.top_k);
  } else if (key == "min_p") {
    *error = ReadNumber(v, key, &s.min_p);
  } else if (key == "repetition_penalty") {
    *error = ReadNumber(v, key, &s.repetition_penalty);
  } else if (key == "frequency_penalty") {
    *error = ReadNumber(v, key, &s.frequency_penalty);
  } else if (key == "presence_penalty") {
    *error = ReadNumber(v, key, &s.presence_penalty);
  } else if (key == "logit_bias") {
    *error = ReadLogitBias(v, &s.logit_bias);
  } else if (key == "seed") {
    *error = ReadSeed(v, &s.seed);
  } else if (key == "stop") {
    *error = ReadStop(v, &s.stop);
  } else if (key == "stop_token_ids") {
    *error = ReadInt64List(v, key, &s.stop_token_ids);  // vocabulary: FindInvalid
  } else if (key == "ignore_eos") {
    *error = ReadBool(v, key, &s.ignore_eos);
  } else if (key == "skip_special_tokens") {
    *error = ReadBool(v, key, &f->skip_special_tokens);
  } else if (key == "user") {
    *error = ReadString(v, key, &f->user);
  } else if (key == "allowed_token_ids") {
    // Checked like every token-id field, so that an id outside the
    // vocabulary gets the same answer everywhere, then refused: the sampler
    // has no allow-list.
    std::vector<int32_t> ids;
    *error = ReadTokenIdList(v, key, limits.vocab_size, &ids);
    if (!*error) *error = Unsupported(key);
  } else {
    return false;
  }
  return true;
}

// The checks that need every field: stream_options needs stream, n's range,
// then SamplingParams::FindInvalid. `max_tokens_param` is the field that set
// max_tokens; `default_max_tokens` applies when it is absent.
FieldError FinishCommon(CommonFields* f, const ProtocolLimits& limits, std::string_view max_tokens_param,
                        int64_t default_max_tokens) {
  if (f->stream_options_given && !f->stream) {
    return InvalidRequest("stream_options", "stream_options is only allowed when stream is true");
  }
  if (f->n < 1 || f->n > limits.max_n) {
    return InvalidRequest("n", "n must be in [1, " + std::to_string(limits.max_n) + "], got " + std::to_string(f->n));
  }
  f->sampling.max_tokens = f->max_tokens.value_or(default_max_tokens);
  if (std::optional<ParamError> invalid = f->sampling.FindInvalid(limits.vocab_size)) {
    if (invalid->param == "max_tokens" && max_tokens_param != "max_tokens") {
      return InvalidRequest(max_tokens_param,
                            std::string(max_tokens_param) + invalid->message.substr(invalid->param.size()));
    }
    return InvalidRequest(invalid->param, invalid->message);
  }
  return std::nullopt;
}

// A completions prompt: "text", [ids], ["text", ...] or [[ids], ...].
FieldError ReadPrompt(const Json& v, const ProtocolLimits& limits, std::vector<PromptInput>* out) {
  constexpr std::string_view kParam = "prompt";
  constexpr std::string_view kWhat = "a string, a list of token ids, or a list of strings or of token-id lists";
  const ApiError empty = InvalidRequest(kParam, "prompt must not be empty");
  if (v.is_string()) {
    if (v.get_ref<const std::string&>().empty()) return empty;
    out->push_back(PromptInput{.is_tokens = false, .text = v.get<std::string>(), .ids = {}});
    return std::nullopt;
  }
  if (!v.is_array()) return TypeError(kParam, kWhat, v);
  if (v.empty()) return empty;
  const Json& first = v.front();
  if (first.is_number()) {  // one prompt of token ids
    PromptInput prompt{.is_tokens = true, .text = {}, .ids = {}};
    if (auto e = ReadTokenIdList(v, kParam, limits.vocab_size, &prompt.ids)) return e;
    out->push_back(std::move(prompt));
    return std::nullopt;
  }
  if (v.size() > limits.max_prompts) {
    return InvalidRequest(kParam, "prompt holds " + std::to_string(v.size()) + " prompts, more than the limit of " +
                                      std::to_string(limits.max_prompts));
  }
  const bool texts = first.is_string();
  if (!texts && !first.is_array()) return TypeError(kParam, kWhat, first);
  for (size_t i = 0; i < v.size(); ++i) {
    const Json& entry = v[i];
    const std::string which = "prompt " + std::to_string(i);
    if (texts) {
      if (!entry.is_string()) return TypeError(kParam, "a list of strings", entry);
      if (entry.get_ref<const std::string&>().empty()) return InvalidRequest(kParam, which + " is empty");
      out->push_back(PromptInput{.is_tokens = false, .text = entry.get<std::string>(), .ids = {}});
    } else {
      if (!entry.is_array()) return TypeError(kParam, "a list of token-id lists", entry);
      if (entry.empty()) return InvalidRequest(kParam, which + " is empty");
      PromptInput prompt{.is_tokens = true, .text = {}, .ids = {}};
      if (auto e = ReadTokenIdList(entry, kParam, limits.vocab_size, &prompt.ids)) return e;
      out->push_back(std::move(prompt));
    }
  }
  return std::nullopt;
}

// One content part: {"type": "text", "text": "..."}.
FieldError ReadContentPart(const Json& part, const std::string& where, const ProtocolLimits& limits,
                           std::string* text) {
  if (!part.is_object()) return TypeError(where, "a content part object", part);
  const auto type = part.find("type");
  if (type == part.end() || !type->is_string()) {
    return InvalidRequest(where + ".type", where + ".type must be the string \"text\"");
  }
  if (type->get_ref<const std::string&>() != "text") {
    return Unsupported(where + ".type", "only text content parts are accepted, got '" +
                                            request_json::Printable(type->get_ref<const std::string&>()) + "'");
  }
  for (auto it = part.begin(); it != part.end(); ++it) {
    if (it.key() == "type") continue;
    if (it.key() == "text") {
      if (auto e = ReadString(it.value(), where + ".text", text)) return e;
    } else if (!limits.allow_unknown_fields) {
      return request_json::UnknownField(where + "." + it.key());
    }
  }
  if (part.find("text") == part.end()) return InvalidRequest(where + ".text", where + ".text is required");
  return std::nullopt;
}

FieldError ReadContent(const Json& v, const std::string& where, const ProtocolLimits& limits, std::string* out) {
  if (v.is_string()) {
    *out = v.get<std::string>();
    return std::nullopt;
  }
  if (!v.is_array()) return TypeError(where, "a string, a list of content parts, or null", v);
  // Text parts are joined by newlines, as vLLM does for templates that
  // take string content.
  for (size_t j = 0; j < v.size(); ++j) {
    std::string text;
    if (auto e = ReadContentPart(v[j], where + "[" + std::to_string(j) + "]", limits, &text)) return e;
    if (j > 0) out->push_back('\n');
    *out += text;
  }
  return std::nullopt;
}

bool KnownRole(const std::string& role) {
  return role == "system" || role == "developer" || role == "user" || role == "assistant" || role == "tool";
}

FieldError ReadMessage(const Json& m, size_t index, const ProtocolLimits& limits, ChatMessage* msg) {
  const std::string where = "messages[" + std::to_string(index) + "]";
  if (!m.is_object()) return TypeError(where, "a message object", m);
  const Json* content = nullptr;
  bool has_role = false;
  for (auto it = m.begin(); it != m.end(); ++it) {
    const std::string& key = it.key();
    const Json& value = it.value();
    if (key == "role") {
      if (auto e = ReadString(value, where + ".role", &msg->role)) return e;
      has_role = true;
    } else if (key == "content") {
      content = &value;
    } else if (value.is_null()) {
      continue;
    } else if (key == "name") {
      if (auto e = ReadString(value, where + ".name", &msg->name)) return e;
    } else if (key == "tool_call_id") {
      if (auto e = ReadString(value, where + ".tool_call_id", &msg->tool_call_id)) return e;
    } else if (key == "tool_calls") {
      if (!value.is_array() || !value.empty()) return Unsupported(where + ".tool_calls");
    } else if (!limits.allow_unknown_fields) {
      return request_json::UnknownField(where + "." + key);
    }
  }
  if (!has_role) return InvalidRequest(where + ".role", where + ".role is required");
  if (!KnownRole(msg->role)) {
    return InvalidRequest(where + ".role", where + ".role must be system, developer, user, assistant or tool, got '" +
                                               request_json::Printable(msg->role) + "'");
  }
  const bool assistant = msg->role == "assistant";
  if (content == nullptr || content->is_null()) {
    if (!assistant) {
      return InvalidRequest(where + ".content", where + ".content is required for role " + msg->role);
    }
    return std::nullopt;
  }
  std::string text;
  if (auto e = ReadContent(*content, where + ".content", limits, &text)) return e;
  if (text.empty() && !assistant) return InvalidRequest(where + ".content", where + ".content must not be empty");
  msg->content = std::move(text);
  return std::nullopt;
}

FieldError ReadMessages(const Json& v, const ProtocolLimits& limits, std::vector<ChatMessage>* out,
                        nlohmann::ordered_json* out_json) {
  if (!v.is_array()) return TypeError("messages", "a list of message objects", v);
  if (v.empty()) return InvalidRequest("messages", "messages must hold at least one message");
  *out_json = nlohmann::ordered_json::array();
  for (size_t i = 0; i < v.size(); ++i) {
    ChatMessage msg;
    if (auto e = ReadMessage(v[i], i, limits, &msg)) return e;
    nlohmann::ordered_json m = {{"role", msg.role}};
    m["content"] = msg.content ? nlohmann::ordered_json(*msg.content) : nlohmann::ordered_json(nullptr);
    if (!msg.name.empty()) m["name"] = msg.name;
    if (!msg.tool_call_id.empty()) m["tool_call_id"] = msg.tool_call_id;
    out_json->push_back(std::move(m));
    out->push_back(std::move(msg));
  }
  return std::nullopt;
}

// chat_template (refused unless the server trusts request templates) and
// chat_template_kwargs (extra template variables, as vLLM takes them: they
// may set add_generation_prompt, a boolean, but not the messages, nor a
// template unless trusted). Returns false for other keys.
bool ReadTemplateField(const std::string& key, const Json& v, const ProtocolLimits& limits,
                       std::optional<std::string>* chat_template, nlohmann::ordered_json* kwargs,
                       FieldError* error) {
  if (key != "chat_template" && key != "chat_template_kwargs") return false;
  const std::string untrusted = " is not accepted: this server does not trust chat templates from requests "
                                "(start it with --trust-request-chat-template)";
  if (key == "chat_template") {
    if (!limits.trust_request_chat_template) {
      *error = InvalidRequest(key, key + untrusted);
      return true;
    }
    std::string source;
    *error = ReadString(v, key, &source);
    *chat_template = std::move(source);
  } else if (!v.is_object()) {
    *error = TypeError(key, "an object", v);
  } else if (v.contains("messages")) {
    *error = InvalidRequest(key, "chat_template_kwargs cannot set messages");
  } else if (v.contains("chat_template") && !limits.trust_request_chat_template) {
    *error = InvalidRequest(key, "chat_template_kwargs.chat_template" + untrusted);
  } else if (auto it = v.find("add_generation_prompt"); it != v.end() && !it->is_boolean()) {
    *error = TypeError(key + ".add_generation_prompt", "a boolean", *it);
  } else {
    *kwargs = v;  // keys in alphabetical order (see request_json::Json)
  }
  return true;
}

FieldError UnknownOrIgnored(const std::string& key, const ProtocolLimits& limits) {
  if (limits.allow_unknown_fields) return std::nullopt;
  return request_json::UnknownField(key);
}

template <typename T>
ParseResult<T> Done(T value, FieldError error) {
  if (error) return *std::move(error);
  return value;
}

}  // namespace

ParseResult<CompletionRequest> ParseCompletionRequest(std::string_view body, const ProtocolLimits& limits) {
  std::variant<Json, ApiError> parsed = request_json::ParseBodyObject(body, limits.max_json_depth);
  if (auto* error = std::get_if<ApiError>(&parsed)) return *std::move(error);
  const Json& root = std::get<Json>(parsed);

  CompletionRequest request;
  CommonFields common;
  bool has_prompt = false;
  std::optional<int64_t> best_of;
  FieldError error;
  for (auto it = root.begin(); it != root.end() && !error; ++it) {
    const std::string& key = it.key();
    const Json& v = it.value();
    if (key == "prompt") {
      if (v.is_null()) return InvalidRequest("prompt", "prompt must not be null");
      has_prompt = true;
      error = ReadPrompt(v, limits, &request.prompts);
    } else if (v.is_null() || ReadCommonField(key, v, limits, &common, &error)) {
      continue;
    } else if (key == "logprobs") {
      int64_t top = 0;
      error = ReadInt64(v, key, &top);
      request.logprobs = top;
      common.sampling.logprobs = true;
      common.sampling.top_logprobs = top;
    } else if (key == "echo") {
      bool echo = false;
      error = ReadBool(v, key, &echo);
      if (!error && echo) error = Unsupported(key, "only false");
    } else if (key == "suffix") {
      std::string suffix;
      error = ReadString(v, key, &suffix);
      if (!error && !suffix.empty()) error = Unsupported(key);
    } else if (key == "best_of") {
      int64_t value = 0;
      error = ReadInt64(v, key, &value);
      best_of = value;
    } else {
      error = UnknownOrIgnored(key, limits);
    }
  }
  if (error) return *std::move(error);
  if (!has_prompt) return InvalidRequest("prompt", "prompt is required");
  if (best_of && *best_of != common.n) return Unsupported("best_of", "only equal to n");
  error = FinishCommon(&common, limits, "max_tokens", kDefaultCompletionMaxTokens);
  if (error && error->param == "top_logprobs") {
    // The legacy field is "logprobs"; FindInvalid knows it as top_logprobs.
    error->param = "logprobs";
    error->message = "logprobs" + error->message.substr(std::string_view("top_logprobs").size());
  }
  request.model = std::move(common.model);
  request.sampling = std::move(common.sampling);
  request.max_tokens = common.max_tokens;
  request.n = common.n;
  request.stream = common.stream;
  request.include_usage = common.include_usage;
  request.skip_special_tokens = common.skip_special_tokens;
  request.user = std::move(common.user);
  return Done(std::move(request), std::move(error));
}

ParseResult<ChatCompletionRequest> ParseChatCompletionRequest(std::string_view body, const ProtocolLimits& limits) {
  std::variant<Json, ApiError> parsed = request_json::ParseBodyObject(body, limits.max_json_depth);
  if (auto* error = std::get_if<ApiError>(&parsed)) return *std::move(error);
  const Json& root = std::get<Json>(parsed);

  ChatCompletionRequest request;
  CommonFields common;
  bool has_messages = false;
  std::optional<int64_t> max_completion_tokens;
  FieldError error;
  for (auto it = root.begin(); it != root.end() && !error; ++it) {
    const std::string& key = it.key();
    const Json& v = it.value();
    if (key == "messages") {
      if (v.is_null()) return InvalidRequest("messages", "messages must not be null");
      has_messages = true;
      error = ReadMessages(v, limits, &request.messages, &request.messages_json);
    } else if (v.is_null() || ReadCommonField(key, v, limits, &common, &error) ||
               ReadTemplateField(key, v, limits, &request.chat_template, &request.chat_template_kwargs, &error)) {
      continue;
    } else if (key == "max_completion_tokens") {
      int64_t value = 0;
      error = ReadInt64(v, key, &value);
      max_completion_tokens = value;
    } else if (key == "logprobs") {
      error = ReadBool(v, key, &common.sampling.logprobs);
    } else if (key == "top_logprobs") {
      error = ReadInt64(v, key, &common.sampling.top_logprobs);  // range: FindInvalid
    } else if (key == "add_generation_prompt") {
      error = ReadBool(v, key, &request.add_generation_prompt);
    } else if (key == "response_format") {
      const bool plain_text = v.is_object() && v.size() == 1 && v.contains("type") && v["type"] == "text";
      if (!plain_text) error = Unsupported(key, "only {\"type\": \"text\"}");
    } else if (key == "tools") {
      if (!v.is_array() || !v.empty()) error = Unsupported(key);
    } else if (key == "tool_choice") {
      if (v != "none" && v != "auto") error = Unsupported(key, "only \"none\"");
    } else if (key == "parallel_tool_calls") {
      bool ignored = false;
      error = ReadBool(v, key, &ignored);
    } else if (key == "functions" || key == "function_call") {
      error = Unsupported(key);
    } else {
      error = UnknownOrIgnored(key, limits);
    }
  }
  if (error) return *std::move(error);
  if (!has_messages) return InvalidRequest("messages", "messages is required");
  // vLLM's rule: max_completion_tokens, the current name, wins over max_tokens.
  std::string_view max_tokens_param = "max_tokens";
  if (max_completion_tokens) {
    common.max_tokens = max_completion_tokens;
    max_tokens_param = "max_completion_tokens";
  }
  error = FinishCommon(&common, limits, max_tokens_param, kMaxMaxTokens);
  request.model = std::move(common.model);
  request.sampling = std::move(common.sampling);
  request.max_tokens = common.max_tokens;
  request.n = common.n;
  request.stream = common.stream;
  request.include_usage = common.include_usage;
  request.skip_special_tokens = common.skip_special_tokens;
  request.user = std::move(common.user);
  return Done(std::move(request), std::move(error));
}

ParseResult<int64_t> FitMaxTokens(int64_t prompt_tokens, std::optional<int64_t> max_tokens, int64_t max_model_len,
                                  std::string_view prompt_param) {
  const int64_t room = max_model_len - prompt_tokens;
  if (room < 1) return ContextLengthExceeded(prompt_param, prompt_tokens, max_tokens.value_or(1), max_model_len);
  if (!max_tokens) return room;
  if (*max_tokens > room) return ContextLengthExceeded(prompt_param, prompt_tokens, *max_tokens, max_model_len);
  return *max_tokens;
}

ParseResult<TokenizeRequest> ParseTokenizeRequest(std::string_view body, const ProtocolLimits& limits) {
  std::variant<Json, ApiError> parsed = request_json::ParseBodyObject(body, limits.max_json_depth);
  if (auto* error = std::get_if<ApiError>(&parsed)) return *std::move(error);
  const Json& root = std::get<Json>(parsed);

  TokenizeRequest request;
  bool has_prompt = false;
  std::optional<bool> add_special_tokens;
  FieldError error;
  for (auto it = root.begin(); it != root.end() && !error; ++it) {
    const std::string& key = it.key();
    const Json& v = it.value();
    if (v.is_null() ||
        ReadTemplateField(key, v, limits, &request.chat_template, &request.chat_template_kwargs, &error)) {
      continue;
    } else if (key == "model") {
      error = ReadString(v, key, &request.model);
    } else if (key == "prompt") {
      has_prompt = true;
      error = ReadString(v, key, &request.prompt);
    } else if (key == "messages") {
      request.is_chat = true;
      error = ReadMessages(v, limits, &request.messages, &request.messages_json);
    } else if (key == "add_special_tokens") {
      bool value = false;
      error = ReadBool(v, key, &value);
      add_special_tokens = value;
    } else if (key == "add_generation_prompt") {
      error = ReadBool(v, key, &request.add_generation_prompt);
    } else if (key == "return_token_strs") {
      error = ReadBool(v, key, &request.return_token_strs);
    } else {
      error = UnknownOrIgnored(key, limits);
    }
  }
  if (error) return *std::move(error);
  if (has_prompt && request.is_chat) return InvalidRequest("messages", "give either prompt or messages, not both");
  if (!has_prompt && !request.is_chat) return InvalidRequest("prompt", "prompt (or messages) is required");
  // vLLM's defaults: a chat template writes its own special tokens.
  request.add_special_tokens = add_special_tokens.value_or(!request.is_chat);
  return request;
}

ParseResult<DetokenizeRequest> ParseDetokenizeRequest(std::string_view body, const ProtocolLimits& limits) {
  std::variant<Json, ApiError> parsed = request_json::ParseBodyObject(body, limits.max_json_depth);
  if (auto* error = std::get_if<ApiError>(&parsed)) return *std::move(error);
  const Json& root = std::get<Json>(parsed);

  DetokenizeRequest request;
  bool has_tokens = false;
  FieldError error;
  for (auto it = root.begin(); it != root.end() && !error; ++it) {
    const std::string& key = it.key();
    const Json& v = it.value();
    if (v.is_null()) continue;
    if (key == "model") {
      error = ReadString(v, key, &request.model);
    } else if (key == "tokens") {
      has_tokens = true;
      error = ReadTokenIdList(v, key, limits.vocab_size, &request.tokens);
    } else {
      error = UnknownOrIgnored(key, limits);
    }
  }
  if (error) return *std::move(error);
  if (!has_tokens) return InvalidRequest("tokens", "tokens is required");
  return request;
}

}  // namespace lserve
