#include "server/api_error.h"

#include <nlohmann/json.hpp>

namespace lserve {
namespace {

constexpr std::string_view kInvalidRequestType = "invalid_request_error";

ApiError Make(int status, std::string_view type, std::string_view message, std::string_view param,
              std::string_view code) {
  return ApiError{status, std::string(type), std::string(message), std::string(param), std::string(code)};
}

}  // namespace

ApiError InvalidRequest(std::string_view param, std::string_view message) {
  return Make(400, kInvalidRequestType, message, param, "");
}

ApiError ContextLengthExceeded(std::string_view param, int64_t prompt_tokens, int64_t max_tokens,
                               int64_t max_model_len) {
  // The wording of OpenAI's and vLLM's message, which clients grep for.
  std::string message = "This model's maximum context length is " + std::to_string(max_model_len) +
                        " tokens. However, you requested " + std::to_string(prompt_tokens + max_tokens) +
                        " tokens (" + std::to_string(prompt_tokens) + " in the " + std::string(param) + ", " +
                        std::to_string(max_tokens) + " in the completion). Please reduce the length of the " +
                        std::string(param) + " or completion.";
  return Make(400, kInvalidRequestType, message, param, "context_length_exceeded");
}

ApiError NotFoundError(std::string_view param, std::string_view message) {
  return Make(404, kInvalidRequestType, message, param, param == "model" ? "model_not_found" : "not_found");
}

ApiError Unauthorized(std::string_view message) {
  return Make(401, "authentication_error", message, "", "invalid_api_key");
}

ApiError PayloadTooLarge(int64_t limit_bytes) {
  return Make(413, kInvalidRequestType,
              "The request body is larger than the limit of " + std::to_string(limit_bytes) + " bytes.", "",
              "payload_too_large");
}

ApiError UnsupportedMediaType(std::string_view content_type) {
  return Make(415, kInvalidRequestType,
              "Content-Type must be application/json, got '" + std::string(content_type.substr(0, 128)) + "'.", "",
              "unsupported_media_type");
}

ApiError RateLimited(std::string_view message) {
  return Make(429, "rate_limit_error", message, "", "rate_limit_exceeded");
}

ApiError HeadersTooLarge(std::string_view message) {
  return Make(431, kInvalidRequestType, message, "", "headers_too_large");
}

ApiError ServiceUnavailable(std::string_view message) { return Make(503, "unavailable_error", message, "", ""); }

ApiError Overloaded(std::string_view message) { return Make(503, "unavailable_error", message, "", "overloaded"); }

ApiError InternalServerError(std::string_view message) { return Make(500, "server_error", message, "", ""); }

ApiError ApiErrorFromStatus(const Status& status, std::string_view param) {
  switch (status.code()) {
    case StatusCode::kInvalidArgument:
    case StatusCode::kOutOfRange:
    case StatusCode::kUnimplemented:
    case StatusCode::kResourceExhausted:
      return InvalidRequest(param, status.message());
    case StatusCode::kNotFound:
      return NotFoundError(param, status.message());
    case StatusCode::kUnavailable:
      return ServiceUnavailable(status.message());
    case StatusCode::kOk:
      return InternalServerError("an operation failed without an error");
    default:
      return InternalServerError(status.message());
  }
}

std::string ApiErrorBody(const ApiError& error) {
  nlohmann::json inner = {
      {"message", error.message},
      {"type", error.type},
      {"param", error.param.empty() ? nlohmann::json(nullptr) : nlohmann::json(error.param)},
      {"code", error.code.empty() ? nlohmann::json(nullptr) : nlohmann::json(error.code)},
  };
  nlohmann::json body = {{"error", std::move(inner)}};
  // Messages may quote request text or model output: never let a stray byte
  // make the body invalid (or the dump throw).
  return body.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

}  // namespace lserve
