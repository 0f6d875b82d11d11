// jinja2's built-in filters and tests, the str/dict/list methods templates
// call, Python's "%" formatting and str.format, and the globals transformers
// provides (range, namespace, dict, raise_exception, strftime_now).
// Behaviour follows jinja2 3.1 (filters.py, tests.py, sandbox.py) and
// CPython; deviations are noted where they are made.
#pragma once

#include <initializer_list>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/status.h"
#include "tokenizer/jinja_interpreter.h"
#include "tokenizer/jinja_value.h"

namespace lserve::jinja {

bool IsKnownFilter(std::string_view name);
bool IsKnownTest(std::string_view name);

Result<Value> CallFilter(Renderer& r, std::string_view name, const Value& subject, const CallArgs& args);
Result<bool> CallTest(Renderer& r, std::string_view name, const Value& subject, const CallArgs& args);

// Whether `name` is a method of the receiver's Python type, and whether the
// immutable sandbox lets a template use it (list.append, dict.pop ... are
// unsafe because they mutate).
enum class MethodSafety { kNotAMethod, kSafe, kUnsafe };
MethodSafety ClassifyMethod(const Value& receiver, std::string_view name);
Result<Value> CallMethod(Renderer& r, const Value& receiver, std::string_view name, const CallArgs& args);
Result<Value> CallGlobalFunction(Renderer& r, const Callable& fn, const CallArgs& args);

// format % args (printf-style), as str.__mod__ does.
Result<Value> PercentFormat(Renderer& r, const std::string& format, const Value& args);

// Binds call arguments to named parameters as Python does for a def:
// positionals first, then keywords; `required` leading parameters must be
// given. Unknown keywords and surplus positionals fail.
Status BindParams(const Renderer& r, std::string_view function, const CallArgs& args,
                  std::initializer_list<std::string_view> names, size_t required,
                  std::vector<std::optional<Value>>* out);

// An int argument (bool counts) or a TypeError.
Result<int64_t> IntArg(const Renderer& r, const Value& v, std::string_view what);

}  // namespace lserve::jinja
