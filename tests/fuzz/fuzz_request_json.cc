// libFuzzer target: the HTTP API's request bodies (server/openai_protocol.h).
// The first byte picks the route; the rest is the body. Any body must parse
// or give a 400-class ApiError naming a field.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string_view>
#include <variant>

#include "server/openai_protocol.h"

namespace {

template <typename T>
void Check(const lserve::ParseResult<T>& result) {
  if (const auto* error = std::get_if<lserve::ApiError>(&result)) {
    if (error->http_status < 400 || error->http_status >= 500 || error->message.empty()) std::abort();
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  lserve::ProtocolLimits limits;
  limits.vocab_size = 1000;
  limits.trust_request_chat_template = (data[0] & 0x10) != 0;
  limits.allow_unknown_fields = (data[0] & 0x20) != 0;
  const std::string_view body(reinterpret_cast<const char*>(data + 1), size - 1);
  switch (data[0] & 0x3) {
    case 0: Check(lserve::ParseCompletionRequest(body, limits)); break;
    case 1: Check(lserve::ParseChatCompletionRequest(body, limits)); break;
    case 2: Check(lserve::ParseTokenizeRequest(body, limits)); break;
    default: Check(lserve::ParseDetokenizeRequest(body, limits)); break;
  }
  return 0;
}
