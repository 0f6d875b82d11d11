// Response bodies and stream chunks of the OpenAI protocol. Every string
// that reaches JSON here is valid UTF-8: model text and token strings are
// sanitized (U+FFFD for invalid bytes), the exact bytes of a token go to
// its "bytes" list.
#include <charconv>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <random>

#include "core/utf8.h"
#include "server/openai_protocol.h"

namespace lserve {
namespace {

using OJson = nlohmann::ordered_json;

std::string ValidText(std::string_view s) { return utf8::IsValid(s) ? std::string(s) : utf8::Sanitize(s); }

// A float logprob as the double whose shortest form is the float's shortest
// form (-0.1f prints as -0.1, not -0.10000000149011612); -inf, NaN and
// anything below kMinJsonLogprob become kMinJsonLogprob.
double JsonLogprob(float logprob) {
  if (!(logprob >= kMinJsonLogprob)) return kMinJsonLogprob;
  char buf[32];
  const auto [end, ec] = std::to_chars(buf, buf + sizeof(buf) - 1, logprob);
  if (ec != std::errc()) return logprob;
  *end = '\0';
  return std::strtod(buf, nullptr);
}

OJson ByteList(std::string_view raw) {
  OJson bytes = OJson::array();
  for (unsigned char b : raw) bytes.push_back(static_cast<int>(b));
  return bytes;
}

int64_t CodePoints(std::string_view valid_text) {
  int64_t count = 0;
  for (unsigned char c : valid_text) count += (c & 0xC0) != 0x80;
  return count;
}

OJson FinishReason(const std::string& reason) { return reason.empty() ? OJson(nullptr) : OJson(reason); }

// OpenAI's legacy completions shape: parallel lists of tokens, their
// logprobs, the top alternatives as {token: logprob} and the code-point
// offset of each token in the choice's text.
OJson CompletionLogprobs(const ChoiceOutput& choice) {
  if (!choice.logprobs) return nullptr;
  OJson tokens = OJson::array(), token_logprobs = OJson::array(), top_logprobs = OJson::array(),
        text_offset = OJson::array();
  int64_t offset = choice.text_offset;
  for (const TokenLogprob& t : *choice.logprobs) {
    const std::string token = ValidText(t.token);
    tokens.push_back(token);
    token_logprobs.push_back(JsonLogprob(t.logprob));
    OJson top = OJson::object();
    for (const TopLogprob& alt : t.top) top[ValidText(alt.token)] = JsonLogprob(alt.logprob);
    top_logprobs.push_back(std::move(top));
    text_offset.push_back(offset);
    offset += CodePoints(token);
  }
  return OJson{{"tokens", std::move(tokens)},
               {"token_logprobs", std::move(token_logprobs)},
               {"top_logprobs", std::move(top_logprobs)},
               {"text_offset", std::move(text_offset)}};
}

// The chat shape: {"content": [{token, logprob, bytes, top_logprobs: [...]}]}.
OJson ChatLogprobs(const ChoiceOutput& choice) {
  if (!choice.logprobs) return nullptr;
  OJson content = OJson::array();
  for (const TokenLogprob& t : *choice.logprobs) {
    OJson top = OJson::array();
    for (const TopLogprob& alt : t.top) {
      top.push_back(OJson{{"token", ValidText(alt.token)},
                          {"logprob", JsonLogprob(alt.logprob)},
                          {"bytes", ByteList(alt.token)}});
    }
    content.push_back(OJson{{"token", ValidText(t.token)},
                            {"logprob", JsonLogprob(t.logprob)},
                            {"bytes", ByteList(t.token)},
                            {"top_logprobs", std::move(top)}});
  }
  return OJson{{"content", std::move(content)}};
}

OJson UsageJson(const Usage& usage) {
  return OJson{{"prompt_tokens", usage.prompt_tokens},
               {"completion_tokens", usage.completion_tokens},
               {"total_tokens", usage.prompt_tokens + usage.completion_tokens}};
}

OJson Envelope(const ResponseHeader& header, std::string_view object) {
  return OJson{{"id", ValidText(header.id)},
               {"object", object},
               {"created", header.created},
               {"model", ValidText(header.model)}};
}

OJson Chunk(const ResponseHeader& header, std::string_view object, OJson choice, bool usage_field) {
  OJson chunk = Envelope(header, object);
  chunk["choices"] = OJson::array({std::move(choice)});
  if (usage_field) chunk["usage"] = nullptr;
  return chunk;
}

}  // namespace

std::string MakeResponseId(std::string_view prefix) {
  thread_local std::mt19937_64 rng{std::random_device{}()};
  char hex[33];
  std::snprintf(hex, sizeof(hex), "%016llx%016llx", static_cast<unsigned long long>(rng()),
                static_cast<unsigned long long>(rng()));
  std::string id(prefix);
  id += '-';
  id += hex;
  return id;
}

int64_t UnixSeconds() {
  return std::chrono::duration_cast<std::chrono::seconds>(std::chrono::system_clock::now().time_since_epoch())
      .count();
}

OJson CompletionResponse(const ResponseHeader& header, const std::vector<ChoiceOutput>& choices, const Usage& usage) {
  OJson body = Envelope(header, "text_completion");
  OJson list = OJson::array();
  for (const ChoiceOutput& c : choices) {
    list.push_back(OJson{{"index", c.index},
                         {"text", ValidText(c.text)},
                         {"logprobs", CompletionLogprobs(c)},
                         {"finish_reason", FinishReason(c.finish_reason)}});
  }
  body["choices"] = std::move(list);
  body["usage"] = UsageJson(usage);
  return body;
}

OJson ChatCompletionResponse(const ResponseHeader& header, const std::vector<ChoiceOutput>& choices,
                             const Usage& usage) {
  OJson body = Envelope(header, "chat.completion");
  OJson list = OJson::array();
  for (const ChoiceOutput& c : choices) {
    list.push_back(OJson{{"index", c.index},
                         {"message", OJson{{"role", "assistant"}, {"content", ValidText(c.text)}}},
                         {"logprobs", ChatLogprobs(c)},
                         {"finish_reason", FinishReason(c.finish_reason)}});
  }
  body["choices"] = std::move(list);
  body["usage"] = UsageJson(usage);
  return body;
}

OJson CompletionChunk(const ResponseHeader& header, const ChoiceOutput& delta, bool usage_field) {
  OJson choice{{"index", delta.index},
               {"text", ValidText(delta.text)},
               {"logprobs", CompletionLogprobs(delta)},
               {"finish_reason", FinishReason(delta.finish_reason)}};
  return Chunk(header, "text_completion", std::move(choice), usage_field);
}

OJson ChatRoleChunk(const ResponseHeader& header, int64_t index, bool usage_field) {
  OJson choice{{"index", index},
               {"delta", OJson{{"role", "assistant"}, {"content", ""}}},
               {"logprobs", nullptr},
               {"finish_reason", nullptr}};
  return Chunk(header, "chat.completion.chunk", std::move(choice), usage_field);
}

OJson ChatContentChunk(const ResponseHeader& header, const ChoiceOutput& delta, bool usage_field) {
  OJson delta_json = OJson::object();
  if (!delta.text.empty() || delta.finish_reason.empty()) delta_json["content"] = ValidText(delta.text);
  OJson choice{{"index", delta.index},
               {"delta", std::move(delta_json)},
               {"logprobs", ChatLogprobs(delta)},
               {"finish_reason", FinishReason(delta.finish_reason)}};
  return Chunk(header, "chat.completion.chunk", std::move(choice), usage_field);
}

OJson UsageChunk(const ResponseHeader& header, std::string_view object, const Usage& usage) {
  OJson chunk = Envelope(header, object);
  chunk["choices"] = OJson::array();
  chunk["usage"] = UsageJson(usage);
  return chunk;
}

OJson TokenizeResponse(const std::vector<int32_t>& tokens, int64_t max_model_len,
                       const std::vector<std::string>* token_strs) {
  OJson body{{"count", static_cast<int64_t>(tokens.size())}, {"max_model_len", max_model_len}, {"tokens", tokens}};
  if (token_strs != nullptr) {
    OJson strs = OJson::array();
    for (const std::string& s : *token_strs) strs.push_back(ValidText(s));
    body["token_strs"] = std::move(strs);
  } else {
    body["token_strs"] = nullptr;
  }
  return body;
}

OJson DetokenizeResponse(std::string_view text) { return OJson{{"prompt", ValidText(text)}}; }

OJson ModelsResponse(std::string_view model_id, int64_t created, int64_t max_model_len) {
  OJson model{{"id", ValidText(model_id)},
              {"object", "model"},
              {"created", created},
              {"owned_by", "lserve"},
              {"max_model_len", max_model_len}};
  return OJson{{"object", "list"}, {"data", OJson::array({std::move(model)})}};
}

std::string JsonText(const OJson& value) {
  try {
    return value.dump(-1, ' ', false, OJson::error_handler_t::replace);
  } catch (...) {
    // dump with the replace handler throws only on allocation failure.
    return "{}";
  }
}

std::string SseEvent(const std::string& json) {
  std::string event;
  event.reserve(json.size() + 8);
  event += "data: ";
  event += json;
  event += "\n\n";
  return event;
}

std::string SseErrorEvent(const ApiError& error) { return SseEvent(ApiErrorBody(error)); }

}  // namespace lserve
