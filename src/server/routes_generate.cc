// /v1/completions and /v1/chat/completions: parse, tokenize or render,
// check the context length, submit one engine request per choice, then
// answer with one body or an SSE stream.
//
// A request with P prompts and n choices per prompt becomes P * n engine
// requests; choice i = p * n + j uses sampler stream i, so that with a seed
// the choices differ from each other and are each reproducible.
//
// Cancellation: a stream whose client went away (a write fails, or the
// socket reads EOF while waiting for tokens) cancels all its engine requests;
// a non-streaming request polls the connection while it waits.
#include <algorithm>
#include <chrono>
#include <optional>
#include <span>
#include <string>
#include <utility>
#include <variant>
#include <vector>

#include "server/http_routes.h"
#include "tokenizer/model_text.h"

namespace lserve::http {
namespace {

using Clock = std::chrono::steady_clock;
using metrics::RequestOutcome;

// How long a handler waits for tokens before it checks the client again.
constexpr std::chrono::milliseconds kPollInterval{50};

// One prompt, tokenized, and how many tokens to generate for it.
struct PreparedPrompt {
  std::vector<int32_t> ids;
  int64_t max_tokens = 0;
};

// What both endpoints hand to the engine once parsed and checked.
struct GenerationPlan {
  std::vector<PreparedPrompt> prompts;
  SamplingParams sampling;
  int64_t n = 1;
  bool stream = false;
  bool include_usage = false;
  bool skip_special_tokens = true;
  std::string prompt_param;  // "prompt" or "messages": the field errors about the prompt name
};

struct ChoiceState {
  int64_t index = 0;
  std::shared_ptr<RequestStream> stream;
  std::string text;                    // non-streaming: all of it
  std::vector<TokenLogprob> logprobs;  // non-streaming: all of them
  int64_t completion_tokens = 0;
  int64_t sent_code_points = 0;  // completions stream: text_offset of the next chunk
  std::optional<FinishKind> finish;
  std::string error;
  std::optional<Clock::time_point> first_token;
  Clock::time_point last_token;
};

std::string TokenText(const Tokenizer& tokenizer, int32_t id) {
  return tokenizer.Decode(std::span<const int32_t>(&id, 1), /*skip_special_tokens=*/false);
}

std::string FinishReason(FinishKind kind) {
  switch (kind) {
    case FinishKind::kStop: return "stop";
    case FinishKind::kLength: return "length";
    default: return "abort";  // aborted at shutdown (or cancelled by someone else)
  }
}

int64_t CodePoints(std::string_view text) {
  int64_t count = 0;
  for (unsigned char c : text) count += (c & 0xC0) != 0x80;
  return count;
}

// The engine's Submit errors as answers (engine.h lists the codes).
ApiError SubmitError(const Status& status, std::string_view prompt_param) {
  switch (status.code()) {
    case StatusCode::kResourceExhausted:
      // The request can never fit the KV cache: 400, retrying is pointless.
      return InvalidRequest(prompt_param, status.message());
    case StatusCode::kUnavailable:
      // The queue is full (or the engine stops): 503, try again later.
      return Overloaded(status.message());
    case StatusCode::kOutOfRange: {
      ApiError error = InvalidRequest(prompt_param, status.message());
      error.code = "context_length_exceeded";
      return error;
    }
    default:
      return ApiErrorFromStatus(status, prompt_param);
  }
}

// One HTTP generation request in flight: its choices, and its accounting
// in the metrics (done once, whatever way it ends).
class Generation {
 public:
  Generation(const RouteContext& context, bool chat, const GenerationPlan& plan, Clock::time_point arrival)
      : context_(context), chat_(chat), include_usage_(plan.include_usage), arrival_(arrival) {
    header_.id = MakeResponseId(chat ? "chatcmpl" : "cmpl");
    header_.created = UnixSeconds();
    header_.model = context.engine->model_info().id;
    want_logprobs_ = plan.sampling.logprobs;
    for (const PreparedPrompt& p : plan.prompts) prompt_tokens_ += static_cast<int64_t>(p.ids.size());
  }
  ~Generation() { CancelAll(); }

  // Submits every choice; on a failure cancels those already queued.
  std::optional<ApiError> Submit(const GenerationPlan& plan) {
    int64_t index = 0;
    for (const PreparedPrompt& prompt : plan.prompts) {
      for (int64_t j = 0; j < plan.n; ++j, ++index) {
        GenerateRequest request;
        request.prompt = prompt.ids;
        request.params = plan.sampling;
        request.params.max_tokens = prompt.max_tokens;
        request.sampler_stream = static_cast<uint64_t>(index);
        request.skip_special_tokens = plan.skip_special_tokens;
        Result<std::shared_ptr<RequestStream>> stream = context_.engine->Submit(std::move(request));
        if (!stream.ok()) {
          CancelAll();
          return SubmitError(stream.status(), plan.prompt_param);
        }
        ChoiceState choice;
        choice.index = index;
        choice.stream = std::move(*stream);
        choices_.push_back(std::move(choice));
      }
    }
    return std::nullopt;
  }

  void CancelAll() {
    for (ChoiceState& c : choices_) {
      if (c.stream != nullptr && !c.finish) c.stream->Cancel();
    }
  }

  // Non-streaming: waits for every choice while the client stays
  // connected, then answers.
  void Respond(const httplib::Request& request, httplib::Response& response) {
    const ClientConnection client(request);
    Clock::time_point next_check = Clock::now() + kPollInterval;
    for (ChoiceState& c : choices_) {
      while (!c.finish) {
        std::optional<StreamEvent> event = c.stream->Next(kPollInterval);
        if (event) {
          Apply(c, *event, /*accumulate=*/true);
        } else if (c.stream->finished()) {
          c.finish = FinishKind::kError;
          c.error = "the request ended without a result";
        }
        // Checked on a clock, not only when tokens pause: a fast request
        // never leaves Next waiting.
        if (c.finish || Clock::now() < next_check) continue;
        next_check = Clock::now() + kPollInterval;
        if (!client.Alive()) {
          CancelAll();
          Account(RequestOutcome::kCancelled);
          SetError(response, InternalServerError("The client closed the connection."));
          return;
        }
      }
      if (*c.finish == FinishKind::kError) {
        CancelAll();
        Account(RequestOutcome::kError);
        SetError(response, InternalServerError("Generation failed: " + c.error));
        return;
      }
    }
    std::vector<ChoiceOutput> outputs;
    for (ChoiceState& c : choices_) {
      ChoiceOutput out;
      out.index = c.index;
      out.text = std::move(c.text);
      out.finish_reason = FinishReason(*c.finish);
      if (want_logprobs_) out.logprobs = std::move(c.logprobs);
      outputs.push_back(std::move(out));
    }
    const Usage usage = TotalUsage();
    Account(RequestOutcome::kOk);
    SetJson(response, 200,
            JsonText(chat_ ? ChatCompletionResponse(header_, outputs, usage)
                           : CompletionResponse(header_, outputs, usage)));
  }

  // Streaming: one call of httplib's chunked content provider. Writes what
  // the engine has produced (waiting up to kPollInterval for it); false
  // ends the connection.
  bool Pump(httplib::DataSink& sink) {
    if (done_) return true;
    if (!started_) {
      started_ = true;
      if (chat_) {
        for (const ChoiceState& c : choices_) {
          if (!Write(sink, SseEvent(JsonText(ChatRoleChunk(header_, c.index, include_usage_))))) return false;
        }
      }
    }
    bool progressed = false;
    for (ChoiceState& c : choices_) {
      while (!c.finish && !done_) {
        std::optional<StreamEvent> event = c.stream->Next(std::chrono::milliseconds(0));
        if (!event) break;
        if (!Emit(c, *event, sink)) return false;
        progressed = true;
      }
    }
    if (done_) return true;
    auto waiting = std::find_if(choices_.begin(), choices_.end(), [](const ChoiceState& c) { return !c.finish; });
    if (waiting == choices_.end()) return Finish(sink);
    if (!progressed) {
      std::optional<StreamEvent> event = waiting->stream->Next(kPollInterval);
      if (event) return Emit(*waiting, *event, sink);
      if (waiting->stream->finished()) {
        StreamEvent lost;
        lost.finish = FinishKind::kError;
        lost.error = "the request ended without a result";
        return Emit(*waiting, lost, sink);
      }
    }
    // A failed write shows a client that went away; this catches one that
    // left while nothing was written (queued, or tokens without text yet).
    if (Clock::now() >= next_client_check_) {
      next_client_check_ = Clock::now() + kPollInterval;
      if (!sink.is_writable()) {
        CancelAll();
        Account(RequestOutcome::kCancelled);
        return false;
      }
    }
    return true;
  }

  // httplib is done with the response (written, failed, or server stopping).
  void Release() {
    CancelAll();
    Account(RequestOutcome::kCancelled);  // no-op when already accounted
  }

 private:
  // Adds `event` to choice `c`; returns the part of it a stream sends.
  ChoiceOutput Apply(ChoiceState& c, const StreamEvent& event, bool accumulate) {
    const Clock::time_point now = Clock::now();
    if (!event.token_ids.empty()) {
      if (!c.first_token) c.first_token = now;
      c.last_token = now;
      c.completion_tokens += static_cast<int64_t>(event.token_ids.size());
    }
    ChoiceOutput delta;
    delta.index = c.index;
    delta.text = event.text;
    if (want_logprobs_) delta.logprobs = Logprobs(event);
    if (event.finish) {
      c.finish = *event.finish;
      c.error = event.error;
      if (event.completion_tokens > 0) c.completion_tokens = event.completion_tokens;
      if (*event.finish != FinishKind::kError) delta.finish_reason = FinishReason(*event.finish);
    }
    if (accumulate) {
      c.text += event.text;
      if (delta.logprobs) {
        c.logprobs.insert(c.logprobs.end(), std::make_move_iterator(delta.logprobs->begin()),
                          std::make_move_iterator(delta.logprobs->end()));
      }
    }
    return delta;
  }

  std::vector<TokenLogprob> Logprobs(const StreamEvent& event) const {
    const Tokenizer& tokenizer = context_.engine->tokenizer();
    std::vector<TokenLogprob> out;
    const size_t count = std::min(event.token_ids.size(), event.logprobs.size());
    out.reserve(count);
    for (size_t i = 0; i < count; ++i) {
      TokenLogprob t;
      t.token = TokenText(tokenizer, event.token_ids[i]);
      t.logprob = event.logprobs[i];
      if (i < event.top_logprobs.size()) {
        for (const auto& alternative : event.top_logprobs[i]) {
          t.top.push_back({TokenText(tokenizer, alternative.token_id), alternative.logprob});
        }
      }
      out.push_back(std::move(t));
    }
    return out;
  }

  bool Emit(ChoiceState& c, const StreamEvent& event, httplib::DataSink& sink) {
    ChoiceOutput delta = Apply(c, event, /*accumulate=*/false);
    if (c.finish == FinishKind::kError) {
      // Mid-stream failure: an error event ends the stream (no [DONE]).
      CancelAll();
      Account(RequestOutcome::kError);
      const bool written = Write(sink, SseErrorEvent(InternalServerError("Generation failed: " + c.error)));
      done_ = true;
      if (written) sink.done();
      return written;
    }
    const bool has_logprobs = delta.logprobs && !delta.logprobs->empty();
    if (delta.text.empty() && !has_logprobs && delta.finish_reason.empty()) return true;
    if (!has_logprobs) delta.logprobs.reset();
    std::string chunk;
    if (chat_) {
      chunk = JsonText(ChatContentChunk(header_, delta, include_usage_));
    } else {
      delta.text_offset = c.sent_code_points;
      c.sent_code_points += CodePoints(delta.text);
      chunk = JsonText(CompletionChunk(header_, delta, include_usage_));
    }
    return Write(sink, SseEvent(chunk));
  }

  bool Finish(httplib::DataSink& sink) {
    if (include_usage_) {
      const std::string_view object = chat_ ? "chat.completion.chunk" : "text_completion";
      if (!Write(sink, SseEvent(JsonText(UsageChunk(header_, object, TotalUsage()))))) return false;
    }
    if (!Write(sink, std::string(kSseDone))) return false;
    done_ = true;
    Account(RequestOutcome::kOk);
    sink.done();
    return true;
  }

  bool Write(httplib::DataSink& sink, const std::string& bytes) {
    if (sink.write(bytes.data(), bytes.size())) return true;
    CancelAll();
    Account(RequestOutcome::kCancelled);
    done_ = true;
    return false;
  }

  Usage TotalUsage() const {
    Usage usage;
    usage.prompt_tokens = prompt_tokens_;
    for (const ChoiceState& c : choices_) usage.completion_tokens += c.completion_tokens;
    return usage;
  }

  void Account(RequestOutcome outcome) {
    if (accounted_) return;
    accounted_ = true;
    metrics::ServerMetrics& m = *context_.metrics;
    m.requests(outcome).Inc();
    m.prompt_tokens().Inc(static_cast<double>(prompt_tokens_));
    const Usage usage = TotalUsage();
    m.generation_tokens().Inc(static_cast<double>(usage.completion_tokens));
    std::optional<Clock::time_point> first;
    for (const ChoiceState& c : choices_) {
      if (!c.first_token) continue;
      if (!first || *c.first_token < *first) first = c.first_token;
      if (c.completion_tokens > 1) {
        const std::chrono::duration<double> span = c.last_token - *c.first_token;
        m.time_per_output_token().Observe(span.count() / static_cast<double>(c.completion_tokens - 1));
      }
    }
    if (first) m.time_to_first_token().Observe(std::chrono::duration<double>(*first - arrival_).count());
    if (outcome == RequestOutcome::kOk) {
      m.e2e_request_latency().Observe(std::chrono::duration<double>(Clock::now() - arrival_).count());
    }
  }

  const RouteContext& context_;
  const bool chat_;
  const bool include_usage_;
  const Clock::time_point arrival_;
  bool want_logprobs_ = false;
  ResponseHeader header_;
  int64_t prompt_tokens_ = 0;
  std::vector<ChoiceState> choices_;
  bool started_ = false;
  bool done_ = false;
  Clock::time_point next_client_check_{};
  bool accounted_ = false;
};

void Reject(const RouteContext& context, httplib::Response& response, const ApiError& error) {
  context.metrics->requests(RequestOutcome::kRejected).Inc();
  SetError(response, error, context.retry_after_seconds);
}

// Submits the plan and answers, streaming or not.
void Run(const RouteContext& context, bool chat, const GenerationPlan& plan, Clock::time_point arrival,
         const httplib::Request& request, InFlightToken in_flight, httplib::Response& response) {
  auto generation = std::make_shared<Generation>(context, chat, plan, arrival);
  if (std::optional<ApiError> error = generation->Submit(plan)) return Reject(context, response, *error);
  if (!plan.stream) return generation->Respond(request, response);
  response.status = 200;
  response.set_header("Cache-Control", "no-cache");
  // Exactly "text/event-stream": httplib would gzip any other text/* type,
  // holding events back in the compressor.
  response.set_chunked_content_provider(
      "text/event-stream",
      [generation, in_flight](size_t, httplib::DataSink& sink) { return generation->Pump(sink); },
      [generation](bool) { generation->Release(); });
}

// The tokens to generate: an explicit max_tokens must fit whole; an absent
// one takes the room left, capped at `default_max_tokens` when given.
std::variant<int64_t, ApiError> MaxTokensFor(size_t prompt_tokens, std::optional<int64_t> max_tokens,
                                             std::optional<int64_t> default_max_tokens, int64_t max_model_len,
                                             std::string_view prompt_param) {
  ParseResult<int64_t> fitted =
      FitMaxTokens(static_cast<int64_t>(prompt_tokens), max_tokens, max_model_len, prompt_param);
  if (auto* error = std::get_if<ApiError>(&fitted)) return *error;
  int64_t tokens = std::get<int64_t>(fitted);
  if (!max_tokens && default_max_tokens) tokens = std::min(tokens, *default_max_tokens);
  return tokens;
}

}  // namespace

void HandleCompletions(const RouteContext& context, const httplib::Request& request, const std::string& body,
                       InFlightToken in_flight, httplib::Response& response) {
  const Clock::time_point arrival = Clock::now();
  ParseResult<CompletionRequest> parsed = ParseCompletionRequest(body, context.limits);
  if (auto* error = std::get_if<ApiError>(&parsed)) return Reject(context, response, *error);
  CompletionRequest& req = std::get<CompletionRequest>(parsed);
  const Engine& engine = *context.engine;
  if (std::optional<ApiError> error = CheckModel(req.model, engine.model_info())) {
    return Reject(context, response, *error);
  }
  GenerationPlan plan;
  plan.prompt_param = "prompt";
  for (PromptInput& input : req.prompts) {
    PreparedPrompt prompt;
    if (input.is_tokens) {
      prompt.ids = std::move(input.ids);
    } else {
      Result<std::vector<int32_t>> ids = engine.tokenizer().Encode(input.text, /*add_special_tokens=*/true);
      if (!ids.ok()) return Reject(context, response, ApiErrorFromStatus(ids.status(), "prompt"));
      prompt.ids = std::move(*ids);
    }
    if (prompt.ids.empty()) return Reject(context, response, InvalidRequest("prompt", "prompt encodes to no tokens"));
    std::variant<int64_t, ApiError> max_tokens = MaxTokensFor(prompt.ids.size(), req.max_tokens, req.sampling.max_tokens,
                                                              engine.model_info().max_model_len, "prompt");
    if (auto* error = std::get_if<ApiError>(&max_tokens)) return Reject(context, response, *error);
    prompt.max_tokens = std::get<int64_t>(max_tokens);
    plan.prompts.push_back(std::move(prompt));
  }
  plan.sampling = std::move(req.sampling);
  plan.n = req.n;
  plan.stream = req.stream;
  plan.include_usage = req.include_usage;
  plan.skip_special_tokens = req.skip_special_tokens;
  Run(context, /*chat=*/false, plan, arrival, request, std::move(in_flight), response);
}

void HandleChatCompletions(const RouteContext& context, const httplib::Request& request, const std::string& body,
                           InFlightToken in_flight, httplib::Response& response) {
  const Clock::time_point arrival = Clock::now();
  ParseResult<ChatCompletionRequest> parsed = ParseChatCompletionRequest(body, context.limits);
  if (auto* error = std::get_if<ApiError>(&parsed)) return Reject(context, response, *error);
  ChatCompletionRequest& req = std::get<ChatCompletionRequest>(parsed);
  const Engine& engine = *context.engine;
  if (std::optional<ApiError> error = CheckModel(req.model, engine.model_info())) {
    return Reject(context, response, *error);
  }
  ParseResult<RenderedChat> rendered = RenderRequestChat(engine, req.messages_json, req.add_generation_prompt,
                                                        req.chat_template, req.chat_template_kwargs);
  if (auto* error = std::get_if<ApiError>(&rendered)) return Reject(context, response, *error);
  RenderedChat& chat = std::get<RenderedChat>(rendered);
  if (chat.ids.empty()) return Reject(context, response, InvalidRequest("messages", "messages render to no tokens"));
  std::variant<int64_t, ApiError> max_tokens = MaxTokensFor(chat.ids.size(), req.max_tokens, std::nullopt,
                                                            engine.model_info().max_model_len, "messages");
  if (auto* error = std::get_if<ApiError>(&max_tokens)) return Reject(context, response, *error);
  GenerationPlan plan;
  plan.prompt_param = "messages";
  plan.prompts.push_back(PreparedPrompt{std::move(chat.ids), std::get<int64_t>(max_tokens)});
  plan.sampling = std::move(req.sampling);
  plan.n = req.n;
  plan.stream = req.stream;
  plan.include_usage = req.include_usage;
  plan.skip_special_tokens = req.skip_special_tokens;
  Run(context, /*chat=*/true, plan, arrival, request, std::move(in_flight), response);
}

}  // namespace lserve::http
