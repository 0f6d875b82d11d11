// Renders a parsed template the way jinja2 runs the code it compiles: Python
// value semantics, jinja2's Undefined (prints as "", fails when called,
// indexed or added to), the sandbox's attribute rules (no "_" internals, no
// mutating methods), per-iteration loop scopes, macros with their defining
// scope. Every render runs under a budget (steps, loop iterations, wall
// time, bytes built, output size, call depth) and stops with
// ResourceExhausted when any runs out, so hostile templates cannot hang,
// recurse or allocate without bound.
#pragma once

#include <chrono>
#include <cstdint>
#include <ctime>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "core/status.h"
#include "tokenizer/jinja_ast.h"
#include "tokenizer/jinja_value.h"

namespace lserve::jinja {

struct RenderLimits {
  size_t max_output_bytes = 4u << 20;
  int max_call_depth = 64;                  // nested macro / caller calls
  uint64_t max_steps = 1'000'000;           // evaluated nodes, executed statements, items processed
  uint64_t max_loop_iterations = 250'000; // for-loop iterations, all loops together
  std::chrono::milliseconds max_wall_time{100};
  size_t max_value_bytes = 16u << 20;       // any one string or list built while rendering
  size_t max_total_bytes = 256u << 20;      // all strings and lists built while rendering
  int max_value_depth = 128;                // nesting of lists/dicts (input and built)
  int max_eval_depth = 768;                 // interpreter recursion (statements + expressions)
};

// The variables of one entered frame (jinja_symbols.h). Scopes chain to
// the enclosing frame; a macro's chains to the frame it was defined in. The
// outermost scopes (render context, globals) have no symbols: every name
// they hold is visible.
struct Scope {
  std::shared_ptr<Scope> parent;
  const FrameSymbols* symbols = nullptr;
  std::vector<std::pair<std::string, Value>> vars;

  // The variable `name` as the template sees it here, or nullptr when it is
  // undefined (unknown, or owned by a frame that has not set it yet).
  const Value* Find(std::string_view name) const;
  void Set(std::string_view name, Value value);
};

struct CallArgs {
  std::vector<Value> positional;
  std::vector<std::pair<std::string, Value>> keywords;

  const Value* Keyword(std::string_view name) const;
};

class Renderer {
 public:
  Renderer(const RenderLimits& limits, std::time_t now);
  ~Renderer();
  Renderer(const Renderer&) = delete;
  Renderer& operator=(const Renderer&) = delete;

  // Renders the template with `context` (render variables, chained to the
  // globals) as the outermost scope.
  Result<std::string> Render(const ParsedTemplate& parsed, std::shared_ptr<Scope> context);

  // ---- services for filters, tests and methods (jinja_builtins.h) ----
  // Counts work; fails once the step budget or the wall-clock budget is gone.
  Status Step(uint64_t amount = 1);
  // Accounts for a string or list of `bytes` about to be built.
  Status ChargeBytes(size_t bytes);
  Result<Value> MakeString(std::string s);
  Result<Value> MakeList(std::vector<Value> items, SequenceKind kind = SequenceKind::kList);
  // A runtime error, located at the statement being rendered.
  Status Error(const std::string& message) const;
  // The error for misusing an Undefined (calling, indexing, arithmetic).
  Status UndefinedError(const Value& undefined) const;
  Result<Value> GetAttr(const Value& obj, std::string_view name);
  Result<Value> GetItem(const Value& obj, const Value& key);
  Result<Value> Call(const Value& callee, CallArgs args);
  // Python iter(): the items of a sequence, dict keys, a string's
  // characters; an Undefined yields nothing.
  Result<std::vector<Value>> Iterate(const Value& v);
  Result<Value> ApplyFilter(std::string_view name, const Value& subject, const CallArgs& args);
  // Python's binary operators and comparisons (a + b, a < b, a in b ...).
  Result<Value> EvalBinary(BinaryOp op, const Value& a, const Value& b);
  Result<bool> EvalCompare(CompareOp op, const Value& a, const Value& b);
  Result<bool> ApplyTest(std::string_view name, const Value& subject, const CallArgs& args);
  std::time_t now() const { return now_; }
  const RenderLimits& limits() const { return limits_; }
  // Remembers a namespace so its attributes (which may refer back to it)
  // are released when the render ends.
  void Track(const std::shared_ptr<Namespace>& ns) { namespaces_.push_back(ns); }

 private:
  enum class Flow { kNormal, kBreak, kContinue };

  Result<Flow> Exec(const Body& body, const std::shared_ptr<Scope>& scope, std::string* out);
  Result<Flow> ExecStmt(const Stmt& stmt, const std::shared_ptr<Scope>& scope, std::string* out);
  Result<Flow> ExecFor(const Stmt& stmt, const std::shared_ptr<Scope>& scope, std::string* out);
  Status ExecSet(const Expr& target, Value value, Scope* scope);
  Status Bind(const Expr& target, const Value& value, Scope* scope);
  Result<std::string> RenderBlock(const Body& body, const FrameSymbols& symbols,
                                  const std::shared_ptr<Scope>& parent);
  // A new frame scope under `parent`, its variables initialised per `symbols`.
  std::shared_ptr<Scope> EnterFrame(const FrameSymbols& symbols, const std::shared_ptr<Scope>& parent) const;
  Status Append(std::string* out, std::string_view text) const;

  Result<Value> Eval(const Expr& e, const std::shared_ptr<Scope>& scope);
  Result<Value> EvalCall(const Expr& e, const std::shared_ptr<Scope>& scope, Value caller);
  Result<CallArgs> EvalArgs(const CallArgsNode& node, const std::shared_ptr<Scope>& scope);
  Result<Value> EvalFilter(const Expr& e, const std::shared_ptr<Scope>& scope);
  Result<bool> Contains(const Value& container, const Value& item);
  Result<Value> Slice(const Value& obj, const Value& start, const Value& stop, const Value& step);
  Result<Value> CallMacro(const Callable& macro, CallArgs args);
  Result<Value> LoopAttribute(const Value& loop, std::string_view name);
  Result<Value> AttributeLookup(const Value& obj, std::string_view name);

  RenderLimits limits_;
  std::time_t now_;
  std::chrono::steady_clock::time_point deadline_;
  uint64_t steps_ = 0;
  uint64_t next_clock_check_ = 0;
  uint64_t loop_iterations_ = 0;
  size_t total_bytes_ = 0;
  int call_depth_ = 0;
  int eval_depth_ = 0;
  int current_line_ = 0;
  const Value* filter_block_subject_ = nullptr;
  std::shared_ptr<Scope> context_;
  // Objects that can form reference cycles; cleared when the render ends.
  std::vector<std::shared_ptr<Namespace>> namespaces_;
  std::vector<std::shared_ptr<LoopState>> loops_;
  std::vector<std::shared_ptr<Scope>> captured_scopes_;
};

}  // namespace lserve::jinja
