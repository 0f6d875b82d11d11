// Errors as values: Status for operations, Result<T> for operations that
// produce a value. Nothing that a model file or a request can trigger may
// reach abort(); internal invariants use LSERVE_CHECK (check.h) instead.
#pragma once

#include <string>
#include <string_view>
#include <utility>
#include <variant>

namespace lserve {

enum class StatusCode {
  kOk = 0,
  kInvalidArgument,   // bad input: a model file, a flag, a request field
  kNotFound,          // a file or a named entity is missing
  kIoError,           // the OS refused a read, an open, a map
  kOutOfRange,        // an index or a size beyond a limit
  kResourceExhausted, // a budget (time, output size, memory) ran out
  kUnimplemented,     // a valid input that this build does not support
  kInternal,          // a broken invariant surfaced as a value
  kFailedPrecondition,// a call in a state that does not allow it
  kUnavailable,       // the service is not ready or is shutting down
};

std::string_view StatusCodeName(StatusCode code);

class [[nodiscard]] Status {
 public:
  Status() = default;
  Status(StatusCode code, std::string message) : code_(code), message_(std::move(message)) {}

  static Status Ok() { return Status(); }
  bool ok() const { return code_ == StatusCode::kOk; }
  StatusCode code() const { return code_; }
  const std::string& message() const { return message_; }
  // "invalid_argument: <message>"
  std::string ToString() const;

  // Prefixes the message with context, e.g. Annotate("model.safetensors").
  Status Annotate(std::string_view context) const;

 private:
  StatusCode code_ = StatusCode::kOk;
  std::string message_;
};

inline Status InvalidArgument(std::string m) { return Status(StatusCode::kInvalidArgument, std::move(m)); }
inline Status NotFound(std::string m) { return Status(StatusCode::kNotFound, std::move(m)); }
inline Status IoError(std::string m) { return Status(StatusCode::kIoError, std::move(m)); }
inline Status OutOfRange(std::string m) { return Status(StatusCode::kOutOfRange, std::move(m)); }
inline Status ResourceExhausted(std::string m) { return Status(StatusCode::kResourceExhausted, std::move(m)); }
inline Status Unimplemented(std::string m) { return Status(StatusCode::kUnimplemented, std::move(m)); }
inline Status Internal(std::string m) { return Status(StatusCode::kInternal, std::move(m)); }
inline Status FailedPrecondition(std::string m) { return Status(StatusCode::kFailedPrecondition, std::move(m)); }
inline Status Unavailable(std::string m) { return Status(StatusCode::kUnavailable, std::move(m)); }

// Result<T>: a T or a non-OK Status.
template <typename T>
class [[nodiscard]] Result {
 public:
  Result(T value) : v_(std::move(value)) {}  // NOLINT(google-explicit-constructor)
  Result(Status status) : v_(std::move(status)) {  // NOLINT(google-explicit-constructor)
    if (std::get<Status>(v_).ok()) v_ = Status(StatusCode::kInternal, "Result built from an OK status");
  }

  bool ok() const { return std::holds_alternative<T>(v_); }
  const Status& status() const {
    static const Status kOk;
    return ok() ? kOk : std::get<Status>(v_);
  }
  T& value() & { return std::get<T>(v_); }
  const T& value() const& { return std::get<T>(v_); }
  T&& value() && { return std::get<T>(std::move(v_)); }
  T* operator->() { return &std::get<T>(v_); }
  const T* operator->() const { return &std::get<T>(v_); }
  T& operator*() & { return value(); }
  const T& operator*() const& { return value(); }

 private:
  std::variant<T, Status> v_;
};

}  // namespace lserve

#define LSERVE_CONCAT_INNER_(a, b) a##b
#define LSERVE_CONCAT_(a, b) LSERVE_CONCAT_INNER_(a, b)

// Returns the Status from the enclosing function if `expr` (a Status) fails.
#define LSERVE_RETURN_IF_ERROR(expr)                 \
  do {                                               \
    ::lserve::Status lserve_status_ = (expr);        \
    if (!lserve_status_.ok()) return lserve_status_; \
  } while (0)

// LSERVE_ASSIGN_OR_RETURN(auto x, F()); or (x, F()) for an existing variable.
#define LSERVE_ASSIGN_OR_RETURN(lhs, expr) \
  LSERVE_ASSIGN_OR_RETURN_IMPL_(LSERVE_CONCAT_(lserve_result_, __LINE__), lhs, expr)
#define LSERVE_ASSIGN_OR_RETURN_IMPL_(tmp, lhs, expr) \
  auto tmp = (expr);                                  \
  if (!tmp.ok()) return tmp.status();                 \
  lhs = std::move(tmp).value()
