// ApiError: an OpenAI-shaped error, the one way the server reports a failed
// request. Every maker fixes the HTTP status and the OpenAI "type" so that
// the same failure always looks the same to clients:
//
//   400 invalid_request_error   bad field (param names it), bad JSON, context too long
//   401 authentication_error    missing or wrong API key
//   404 invalid_request_error   unknown route or model (code "not_found" / "model_not_found")
//   413 invalid_request_error   body over the size cap
//   415 invalid_request_error   body not declared as JSON
//   429 rate_limit_error        a per-key limit (the caller adds Retry-After)
//   431 invalid_request_error   request headers over the caps
//   500 server_error            a bug or an engine fault local to the request
//   503 unavailable_error       loading, shutting down, or the queue is full
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "core/status.h"

namespace lserve {

struct ApiError {
  int http_status = 500;
  std::string type;     // OpenAI error type, e.g. "invalid_request_error"
  std::string message;  // a sentence for people
  std::string param;    // the request field at fault ("temperature", "messages[2].role"); empty: null
  std::string code;     // a machine-readable code ("context_length_exceeded"); empty: null
};

// 400 invalid_request_error naming `param` (may be empty for whole-body faults).
ApiError InvalidRequest(std::string_view param, std::string_view message);
// 400 with code "context_length_exceeded"; the message holds the three numbers.
// `param` is the field that carried the prompt ("prompt" or "messages").
ApiError ContextLengthExceeded(std::string_view param, int64_t prompt_tokens, int64_t max_tokens,
                               int64_t max_model_len);
// 404 invalid_request_error, code "model_not_found" when `param` is "model", else "not_found".
ApiError NotFoundError(std::string_view param, std::string_view message);
// 401 authentication_error, code "invalid_api_key".
ApiError Unauthorized(std::string_view message);
// 413 invalid_request_error, code "payload_too_large"; `limit_bytes` goes into the message.
ApiError PayloadTooLarge(int64_t limit_bytes);
// 415 invalid_request_error for a body that is not declared as JSON.
ApiError UnsupportedMediaType(std::string_view content_type);
// 429 rate_limit_error, code "rate_limit_exceeded".
ApiError RateLimited(std::string_view message);
// 431 invalid_request_error, code "headers_too_large".
ApiError HeadersTooLarge(std::string_view message);
// 503 unavailable_error (model loading, shutting down).
ApiError ServiceUnavailable(std::string_view message);
// 503 unavailable_error, code "overloaded": the queue is full (the caller adds Retry-After).
ApiError Overloaded(std::string_view message);
// 500 server_error.
ApiError InternalServerError(std::string_view message);

// The ApiError for a failed Status from a module below the server (the
// tokenizer, the chat template, the engine): bad input (InvalidArgument,
// OutOfRange, Unimplemented, and ResourceExhausted, which is a request
// exceeding a render or size budget) is a 400 naming `param`; NotFound a 404;
// Unavailable a 503; anything else a 500. `status` must not be OK.
//
// (The makers carry an Error/Service prefix or suffix where status.h already
// has a function of the plain name in this namespace.)
ApiError ApiErrorFromStatus(const Status& status, std::string_view param = {});

// {"error":{"message":..,"type":..,"param":..,"code":..}}; param and code are
// null when empty. Always valid UTF-8 JSON (invalid bytes become U+FFFD).
std::string ApiErrorBody(const ApiError& error);

}  // namespace lserve
