#include "tokenizer/jinja_interpreter.h"

#include <algorithm>
#include <climits>
#include <cmath>
#include <utility>

#include "tokenizer/jinja_builtins.h"
#include "tokenizer/jinja_text.h"

namespace lserve::jinja {

const Value* Scope::Find(std::string_view name) const {
  for (const Scope* s = this; s != nullptr; s = s->parent.get()) {
    if (s->symbols != nullptr && s->symbols->Find(name) == nullptr) continue;
    for (const auto& [key, value] : s->vars) {
      if (key == name) return &value;
    }
    if (s->symbols != nullptr) return nullptr;  // this frame owns the name but has not set it
  }
  return nullptr;
}

void Scope::Set(std::string_view name, Value value) {
  for (auto& [key, existing] : vars) {
    if (key == name) {
      existing = std::move(value);
      return;
    }
  }
  vars.emplace_back(std::string(name), std::move(value));
}

const Value* CallArgs::Keyword(std::string_view name) const {
  for (const auto& [key, value] : keywords) {
    if (key == name) return &value;
  }
  return nullptr;
}

namespace {

// "__class__", "__mro__" ...: attributes every Python object has and the
// sandbox refuses.
bool IsDunder(std::string_view name) {
  return name.size() > 4 && name.substr(0, 2) == "__" && name.substr(name.size() - 2) == "__";
}

Value UnsafeAttribute(const Value& obj, std::string_view name) {
  return Value::Undefined("access to attribute '" + std::string(name) + "' of '" + std::string(TypeName(obj)) +
                              "' object is unsafe.",
                          /*security=*/true);
}

Value MissingAttribute(const Value& obj, std::string_view name) {
  return Value::Undefined("'" + ObjectTypeRepr(obj) + "' has no attribute '" + std::string(name) + "'");
}

Value MissingElement(const Value& obj, const std::string& key_repr) {
  return Value::Undefined(ObjectTypeRepr(obj) + " has no element " + key_repr);
}

Value BoundCallable(Callable::Kind kind, std::string name, BuiltinFunction builtin, Value receiver) {
  auto c = std::make_shared<Callable>();
  c->kind = kind;
  c->name = std::move(name);
  c->builtin = builtin;
  c->bound.push_back(std::move(receiver));
  return Value::FromCallable(std::move(c));
}

std::string_view CompareSymbol(CompareOp op) {
  switch (op) {
    case CompareOp::kLt: return "<";
    case CompareOp::kLe: return "<=";
    case CompareOp::kGt: return ">";
    case CompareOp::kGe: return ">=";
    default: return "==";
  }
}

std::string_view BinarySymbol(BinaryOp op) {
  switch (op) {
    case BinaryOp::kAdd: return "+";
    case BinaryOp::kSub: return "-";
    case BinaryOp::kMul: return "*";
    case BinaryOp::kDiv: return "/";
    case BinaryOp::kFloorDiv: return "//";
    case BinaryOp::kMod: return "%";
    case BinaryOp::kPow: return "**";
  }
  return "?";
}

bool Orderable(const Value& a, const Value& b) {
  if (a.is_number() && b.is_number()) return true;
  if (a.is_string() && b.is_string()) return true;
  return a.is_sequence() && b.is_sequence() && a.seq().kind == b.seq().kind &&
         (a.seq().kind == SequenceKind::kList || a.seq().kind == SequenceKind::kTuple);
}

bool IsListOrTuple(const Value& v) {
  return v.is_sequence() && (v.seq().kind == SequenceKind::kList || v.seq().kind == SequenceKind::kTuple);
}

// Python's slice.indices(): the start and stop of [start:stop:step] over a
// sequence of `length` items, negative indices counted from the end and both
// clamped into the walkable range.
std::pair<int64_t, int64_t> SliceBounds(int64_t length, std::optional<int64_t> start, std::optional<int64_t> stop,
                                        int64_t step) {
  int64_t lower = step > 0 ? 0 : -1;
  int64_t upper = step > 0 ? length : length - 1;
  auto clamp = [&](std::optional<int64_t> v, int64_t fallback) {
    if (!v) return fallback;
    int64_t x = *v;
    if (x < 0) {
      x += length;
      if (x < lower) x = lower;
    } else if (x > upper) {
      x = upper;
    }
    return x;
  };
  return {clamp(start, step < 0 ? upper : lower), clamp(stop, step < 0 ? lower : upper)};
}

// Python's range slicing: r[i:j:k] is again a range.
Value SliceRange(const Sequence& r, std::optional<int64_t> start, std::optional<int64_t> stop, int64_t step) {
  auto [s, e] = SliceBounds(static_cast<int64_t>(r.items.size()), start, stop, step);
  return Value::Range(r.range_start + s * r.range_step, r.range_start + e * r.range_step, r.range_step * step);
}

// The indices [start:stop:step] visits, in order.
std::vector<size_t> SliceIndices(int64_t length, std::optional<int64_t> start, std::optional<int64_t> stop,
                                 int64_t step) {
  auto [s, e] = SliceBounds(length, start, stop, step);
  std::vector<size_t> out;
  if (step > 0) {
    for (int64_t i = s; i < e; i += step) out.push_back(static_cast<size_t>(i));
  } else {
    for (int64_t i = s; i > e; i += step) out.push_back(static_cast<size_t>(i));
  }
  return out;
}

}  // namespace

// Counts interpreter recursion; deep templates fail instead of exhausting
// the native stack.
class DepthCounter {
 public:
  explicit DepthCounter(int* depth) : depth_(depth) { ++*depth_; }
  ~DepthCounter() { --*depth_; }
  DepthCounter(const DepthCounter&) = delete;
  DepthCounter& operator=(const DepthCounter&) = delete;

 private:
  int* depth_;
};

Renderer::Renderer(const RenderLimits& limits, std::time_t now)
    : limits_(limits), now_(now), deadline_(std::chrono::steady_clock::now() + limits.max_wall_time) {}

Renderer::~Renderer() {
  // Break the cycles a template can build (ns.self = ns, a macro stored in
  // the scope it closes over, loop.changed(loop)).
  for (const auto& ns : namespaces_) ns->attrs.Clear();
  for (const auto& loop : loops_) {
    loop->items = Value();
    loop->changed_value = Value();
  }
  for (const auto& scope : captured_scopes_) scope->vars.clear();
}

Result<std::string> Renderer::Render(const ParsedTemplate& parsed, std::shared_ptr<Scope> context) {
  context_ = std::move(context);
  std::shared_ptr<Scope> root = EnterFrame(parsed.symbols, context_);
  captured_scopes_.push_back(root);
  std::string out;
  LSERVE_ASSIGN_OR_RETURN(Flow flow, Exec(parsed.body, root, &out));
  (void)flow;
  return out;
}

Status Renderer::Step(uint64_t amount) {
  steps_ += amount;
  if (steps_ > limits_.max_steps) {
    return ResourceExhausted("chat template rendering exceeded its budget of " + std::to_string(limits_.max_steps) +
                             " steps");
  }
  if (steps_ >= next_clock_check_) {
    next_clock_check_ = steps_ + 1024;
    if (std::chrono::steady_clock::now() > deadline_) {
      return ResourceExhausted("chat template rendering exceeded its time budget of " +
                               std::to_string(limits_.max_wall_time.count()) + " ms");
    }
  }
  return Status::Ok();
}

Status Renderer::ChargeBytes(size_t bytes) {
  if (bytes > limits_.max_value_bytes) {
    return ResourceExhausted("chat template built a value of " + std::to_string(bytes) + " bytes (limit " +
                             std::to_string(limits_.max_value_bytes) + ")");
  }
  total_bytes_ += bytes;
  if (total_bytes_ > limits_.max_total_bytes) {
    return ResourceExhausted("chat template built more than " + std::to_string(limits_.max_total_bytes) +
                             " bytes of values");
  }
  return Step(1 + bytes / 4096);
}

Result<Value> Renderer::MakeString(std::string s) {
  LSERVE_RETURN_IF_ERROR(ChargeBytes(s.size()));
  return Value::String(std::move(s));
}

Result<Value> Renderer::MakeList(std::vector<Value> items, SequenceKind kind) {
  LSERVE_RETURN_IF_ERROR(ChargeBytes(items.size() * sizeof(Value)));
  Value list = Value::List(std::move(items), kind);
  if (list.depth() > limits_.max_value_depth) return Error("value nested too deeply");
  return list;
}

Status Renderer::Error(const std::string& message) const {
  return InvalidArgument("chat template error (line " + std::to_string(current_line_) + "): " + message);
}

Status Renderer::UndefinedError(const Value& undefined) const {
  const UndefinedInfo* info = undefined.undefined_info();
  return Error(info != nullptr ? info->message : std::string("undefined value"));
}

Status Renderer::Append(std::string* out, std::string_view text) const {
  if (out->size() + text.size() > limits_.max_output_bytes) {
    return ResourceExhausted("chat template output exceeds " + std::to_string(limits_.max_output_bytes) + " bytes");
  }
  out->append(text);
  return Status::Ok();
}

// ---------------------------------------------------------------- statements

Result<Renderer::Flow> Renderer::Exec(const Body& body, const std::shared_ptr<Scope>& scope, std::string* out) {
  DepthCounter depth(&eval_depth_);
  if (eval_depth_ > limits_.max_eval_depth) return ResourceExhausted("chat template nested too deeply");
  for (const StmtPtr& stmt : body) {
    LSERVE_ASSIGN_OR_RETURN(Flow flow, ExecStmt(*stmt, scope, out));
    if (flow != Flow::kNormal) return flow;
  }
  return Flow::kNormal;
}

std::shared_ptr<Scope> Renderer::EnterFrame(const FrameSymbols& symbols,
                                            const std::shared_ptr<Scope>& parent) const {
  auto scope = std::make_shared<Scope>();
  scope->parent = parent;
  scope->symbols = &symbols;
  for (const auto& [name, kind] : symbols.names) {
    const Value* initial = nullptr;
    if (kind == LoadKind::kAlias) {
      initial = parent->Find(name);
    } else if (kind == LoadKind::kResolve) {
      initial = context_->Find(name);
    }
    if (initial != nullptr) scope->vars.emplace_back(name, *initial);
  }
  return scope;
}

Result<std::string> Renderer::RenderBlock(const Body& body, const FrameSymbols& symbols,
                                          const std::shared_ptr<Scope>& parent) {
  std::shared_ptr<Scope> scope = EnterFrame(symbols, parent);
  std::string buffer;
  LSERVE_ASSIGN_OR_RETURN(Flow flow, Exec(body, scope, &buffer));
  (void)flow;
  LSERVE_RETURN_IF_ERROR(ChargeBytes(buffer.size()));
  return buffer;
}

Result<Renderer::Flow> Renderer::ExecStmt(const Stmt& stmt, const std::shared_ptr<Scope>& scope, std::string* out) {
  LSERVE_RETURN_IF_ERROR(Step());
  current_line_ = stmt.line;
  switch (stmt.kind) {
    case StmtKind::kData:
      LSERVE_RETURN_IF_ERROR(Append(out, stmt.text));
      return Flow::kNormal;
    case StmtKind::kPrint: {
      LSERVE_ASSIGN_OR_RETURN(Value v, Eval(*stmt.expr, scope));
      if (v.is_string()) {
        LSERVE_RETURN_IF_ERROR(Append(out, v.str()));
      } else {
        std::string text = PyStr(v);
        LSERVE_RETURN_IF_ERROR(Append(out, text));
      }
      return Flow::kNormal;
    }
    case StmtKind::kIf:
      for (const IfBranch& branch : stmt.branches) {
        LSERVE_ASSIGN_OR_RETURN(Value test, Eval(*branch.test, scope));
        if (Truthy(test)) return Exec(branch.body, scope, out);
      }
      return Exec(stmt.else_body, scope, out);
    case StmtKind::kFor:
      return ExecFor(stmt, scope, out);
    case StmtKind::kSet: {
      LSERVE_ASSIGN_OR_RETURN(Value v, Eval(*stmt.expr, scope));
      LSERVE_RETURN_IF_ERROR(ExecSet(*stmt.target, std::move(v), scope.get()));
      return Flow::kNormal;
    }
    case StmtKind::kSetBlock: {
      LSERVE_ASSIGN_OR_RETURN(std::string text, RenderBlock(stmt.body, stmt.body_symbols, scope));
      Value v = Value::String(std::move(text));
      if (stmt.expr) {
        const Value* saved = filter_block_subject_;
        filter_block_subject_ = &v;
        Result<Value> filtered = Eval(*stmt.expr, scope);
        filter_block_subject_ = saved;
        if (!filtered.ok()) return filtered.status();
        v = std::move(filtered).value();
      }
      LSERVE_RETURN_IF_ERROR(ExecSet(*stmt.target, std::move(v), scope.get()));
      return Flow::kNormal;
    }
    case StmtKind::kMacro: {
      auto macro = std::make_shared<Callable>();
      macro->kind = Callable::Kind::kMacro;
      macro->name = stmt.macro->name;
      macro->macro = stmt.macro.get();
      macro->closure = scope;
      captured_scopes_.push_back(scope);
      scope->Set(stmt.macro->name, Value::FromCallable(std::move(macro)));
      return Flow::kNormal;
    }
    case StmtKind::kCallBlock: {
      auto caller = std::make_shared<Callable>();
      caller->kind = Callable::Kind::kMacro;
      caller->name = "caller";
      caller->macro = stmt.macro.get();
      caller->closure = scope;
      captured_scopes_.push_back(scope);
      LSERVE_ASSIGN_OR_RETURN(Value result, EvalCall(*stmt.expr, scope, Value::FromCallable(std::move(caller))));
      LSERVE_RETURN_IF_ERROR(Append(out, PyStr(result)));
      return Flow::kNormal;
    }
    case StmtKind::kFilterBlock: {
      LSERVE_ASSIGN_OR_RETURN(std::string text, RenderBlock(stmt.body, stmt.body_symbols, scope));
      Value v = Value::String(std::move(text));
      const Value* saved = filter_block_subject_;
      filter_block_subject_ = &v;
      Result<Value> filtered = Eval(*stmt.expr, scope);
      filter_block_subject_ = saved;
      if (!filtered.ok()) return filtered.status();
      LSERVE_RETURN_IF_ERROR(Append(out, PyStr(*filtered)));
      return Flow::kNormal;
    }
    case StmtKind::kBreak: return Flow::kBreak;
    case StmtKind::kContinue: return Flow::kContinue;
    case StmtKind::kWith: {
      std::shared_ptr<Scope> inner = EnterFrame(stmt.body_symbols, scope);
      for (const auto& [target, value_expr] : stmt.assignments) {
        LSERVE_ASSIGN_OR_RETURN(Value v, Eval(*value_expr, scope));
        LSERVE_RETURN_IF_ERROR(Bind(*target, v, inner.get()));
      }
      return Exec(stmt.body, inner, out);
    }
    case StmtKind::kScope: {
      std::shared_ptr<Scope> inner = EnterFrame(stmt.body_symbols, scope);
      return Exec(stmt.body, inner, out);
    }
  }
  return Flow::kNormal;
}

Result<Renderer::Flow> Renderer::ExecFor(const Stmt& stmt, const std::shared_ptr<Scope>& scope, std::string* out) {
  LSERVE_ASSIGN_OR_RETURN(Value iterable, Eval(*stmt.expr, scope));
  auto loop = std::make_shared<LoopState>();
  if (iterable.is_sequence() && !stmt.loop_filter) {
    loop->items = iterable;
  } else {
    LSERVE_ASSIGN_OR_RETURN(std::vector<Value> items, Iterate(iterable));
    if (stmt.loop_filter) {
      std::vector<Value> kept;
      for (Value& item : items) {
        std::shared_ptr<Scope> test_scope = EnterFrame(stmt.filter_symbols, scope);
        LSERVE_RETURN_IF_ERROR(Bind(*stmt.target, item, test_scope.get()));
        LSERVE_ASSIGN_OR_RETURN(Value keep, Eval(*stmt.loop_filter, test_scope));
        if (Truthy(keep)) kept.push_back(std::move(item));
      }
      items = std::move(kept);
    }
    LSERVE_ASSIGN_OR_RETURN(loop->items, MakeList(std::move(items)));
  }
  const std::vector<Value>& items = loop->items.items();
  if (items.empty()) {
    std::shared_ptr<Scope> else_scope = EnterFrame(stmt.else_symbols, scope);
    LSERVE_ASSIGN_OR_RETURN(Flow flow, Exec(stmt.else_body, else_scope, out));
    (void)flow;
    return Flow::kNormal;
  }
  loops_.push_back(loop);
  Value loop_value = Value::FromLoop(loop);
  for (size_t i = 0; i < items.size(); ++i) {
    if (++loop_iterations_ > limits_.max_loop_iterations) {
      return ResourceExhausted("chat template loops exceeded " + std::to_string(limits_.max_loop_iterations) +
                               " iterations");
    }
    loop->index0 = i;
    std::shared_ptr<Scope> iteration = EnterFrame(stmt.body_symbols, scope);
    current_line_ = stmt.line;
    LSERVE_RETURN_IF_ERROR(Bind(*stmt.target, items[i], iteration.get()));
    iteration->Set("loop", loop_value);
    LSERVE_ASSIGN_OR_RETURN(Flow flow, Exec(stmt.body, iteration, out));
    if (flow == Flow::kBreak) break;
  }
  return Flow::kNormal;
}

Status Renderer::Bind(const Expr& target, const Value& value, Scope* scope) {
  if (target.kind == ExprKind::kName) {
    scope->Set(target.name, value);
    return Status::Ok();
  }
  // Tuple unpacking.
  if (!value.is_sequence() && !value.is_dict() && !value.is_string() && !value.is_undefined()) {
    return Error("cannot unpack non-iterable " + ObjectTypeRepr(value));
  }
  LSERVE_ASSIGN_OR_RETURN(std::vector<Value> parts, Iterate(value));
  const size_t expected = target.operands.size();
  if (parts.size() > expected) return Error("too many values to unpack (expected " + std::to_string(expected) + ")");
  if (parts.size() < expected) {
    return Error("not enough values to unpack (expected " + std::to_string(expected) + ", got " +
                 std::to_string(parts.size()) + ")");
  }
  for (size_t i = 0; i < expected; ++i) LSERVE_RETURN_IF_ERROR(Bind(*target.operands[i], parts[i], scope));
  return Status::Ok();
}

Status Renderer::ExecSet(const Expr& target, Value value, Scope* scope) {
  if (target.kind != ExprKind::kGetAttr) return Bind(target, value, scope);
  const std::string& ns_name = target.operands[0]->name;
  const Value* ns = scope->Find(ns_name);
  if (ns == nullptr || !ns->is_namespace()) return Error("cannot assign attribute on non-namespace object");
  if (!target.name.empty() && target.name[0] == '_') {
    return Error("Chat templates cannot store underscore-prefixed attributes on a namespace, but got '" +
                 target.name + "'. Please rename the attribute.");
  }
  if (value.depth() >= limits_.max_value_depth) return Error("value nested too deeply");
  return ns->ns().attrs.Set(Value::String(target.name), std::move(value));
}

// --------------------------------------------------------------- expressions

Result<Value> Renderer::Eval(const Expr& e, const std::shared_ptr<Scope>& scope) {
  LSERVE_RETURN_IF_ERROR(Step());
  DepthCounter depth(&eval_depth_);
  if (eval_depth_ > limits_.max_eval_depth) return ResourceExhausted("chat template nested too deeply");
  current_line_ = e.line;
  switch (e.kind) {
    case ExprKind::kLiteral: return e.literal;
    case ExprKind::kName: {
      const Value* v = scope->Find(e.name);
      if (v != nullptr) return *v;
      return Value::Undefined("'" + e.name + "' is undefined");
    }
    case ExprKind::kList:
    case ExprKind::kTuple: {
      std::vector<Value> items;
      items.reserve(e.operands.size());
      for (const ExprPtr& op : e.operands) {
        LSERVE_ASSIGN_OR_RETURN(Value v, Eval(*op, scope));
        items.push_back(std::move(v));
      }
      return MakeList(std::move(items), e.kind == ExprKind::kTuple ? SequenceKind::kTuple : SequenceKind::kList);
    }
    case ExprKind::kDict: {
      Dict dict;
      for (size_t i = 0; i + 1 < e.operands.size(); i += 2) {
        LSERVE_ASSIGN_OR_RETURN(Value key, Eval(*e.operands[i], scope));
        LSERVE_ASSIGN_OR_RETURN(Value value, Eval(*e.operands[i + 1], scope));
        Status set = dict.Set(std::move(key), std::move(value));
        if (!set.ok()) return Error(set.message());
      }
      LSERVE_RETURN_IF_ERROR(ChargeBytes(dict.size() * 2 * sizeof(Value)));
      if (dict.depth() > limits_.max_value_depth) return Error("value nested too deeply");
      return Value::FromDict(std::move(dict));
    }
    case ExprKind::kGetAttr: {
      LSERVE_ASSIGN_OR_RETURN(Value obj, Eval(*e.operands[0], scope));
      return GetAttr(obj, e.name);
    }
    case ExprKind::kGetItem: {
      LSERVE_ASSIGN_OR_RETURN(Value obj, Eval(*e.operands[0], scope));
      const Expr& key = *e.operands[1];
      if (key.kind == ExprKind::kSlice) {
        Value parts[3];
        for (int i = 0; i < 3; ++i) {
          if (key.operands[i]) {
            LSERVE_ASSIGN_OR_RETURN(parts[i], Eval(*key.operands[i], scope));
          } else {
            parts[i] = Value::None();
          }
        }
        return Slice(obj, parts[0], parts[1], parts[2]);
      }
      LSERVE_ASSIGN_OR_RETURN(Value k, Eval(key, scope));
      return GetItem(obj, k);
    }
    case ExprKind::kSlice: return Error("slice outside a subscript");
    case ExprKind::kCall: return EvalCall(e, scope, Value());
    case ExprKind::kFilter: return EvalFilter(e, scope);
    case ExprKind::kTest: {
      if (e.unknown_callee) return Error("No test named '" + e.name + "' found.");
      LSERVE_ASSIGN_OR_RETURN(Value subject, Eval(*e.operands[0], scope));
      LSERVE_ASSIGN_OR_RETURN(CallArgs args, EvalArgs(e.args, scope));
      LSERVE_ASSIGN_OR_RETURN(bool result, ApplyTest(e.name, subject, args));
      return Value::Bool(result);
    }
    case ExprKind::kNot: {
      LSERVE_ASSIGN_OR_RETURN(Value v, Eval(*e.operands[0], scope));
      return Value::Bool(!Truthy(v));
    }
    case ExprKind::kNeg:
    case ExprKind::kPos: {
      LSERVE_ASSIGN_OR_RETURN(Value v, Eval(*e.operands[0], scope));
      if (v.is_undefined()) return UndefinedError(v);
      if (!v.is_number()) {
        return Error(std::string("bad operand type for unary ") + (e.kind == ExprKind::kNeg ? "-" : "+") + ": '" +
                     std::string(TypeName(v)) + "'");
      }
      if (e.kind == ExprKind::kPos) return v.is_bool() ? Value::Int(v.int_value()) : v;
      if (v.is_float()) return Value::Float(-v.float_value());
      if (v.int_value() == INT64_MIN) return Error("integer result out of the supported range");
      return Value::Int(-v.int_value());
    }
    case ExprKind::kBinary: {
      LSERVE_ASSIGN_OR_RETURN(Value a, Eval(*e.operands[0], scope));
      LSERVE_ASSIGN_OR_RETURN(Value b, Eval(*e.operands[1], scope));
      return EvalBinary(e.binary_op, a, b);
    }
    case ExprKind::kConcat: {
      std::string text;
      for (const ExprPtr& op : e.operands) {
        LSERVE_ASSIGN_OR_RETURN(Value v, Eval(*op, scope));
        AppendPyStr(v, &text);
        if (text.size() > limits_.max_value_bytes) {
          return ResourceExhausted("chat template built a value of more than " +
                                   std::to_string(limits_.max_value_bytes) + " bytes");
        }
      }
      return MakeString(std::move(text));
    }
    case ExprKind::kCompare: {
      LSERVE_ASSIGN_OR_RETURN(Value left, Eval(*e.operands[0], scope));
      for (size_t i = 0; i < e.compare_ops.size(); ++i) {
        LSERVE_ASSIGN_OR_RETURN(Value right, Eval(*e.operands[i + 1], scope));
        LSERVE_ASSIGN_OR_RETURN(bool holds, EvalCompare(e.compare_ops[i], left, right));
        if (!holds) return Value::Bool(false);
        left = std::move(right);
      }
      return Value::Bool(true);
    }
    case ExprKind::kAnd: {
      LSERVE_ASSIGN_OR_RETURN(Value left, Eval(*e.operands[0], scope));
      if (!Truthy(left)) return left;
      return Eval(*e.operands[1], scope);
    }
    case ExprKind::kOr: {
      LSERVE_ASSIGN_OR_RETURN(Value left, Eval(*e.operands[0], scope));
      if (Truthy(left)) return left;
      return Eval(*e.operands[1], scope);
    }
    case ExprKind::kCondExpr: {
      LSERVE_ASSIGN_OR_RETURN(Value test, Eval(*e.operands[0], scope));
      if (Truthy(test)) return Eval(*e.operands[1], scope);
      if (e.operands[2]) return Eval(*e.operands[2], scope);
      return Value::Undefined("the inline if-expression on line " + std::to_string(e.line) +
                              " evaluated to false and no else section was defined.");
    }
  }
  return Error("unknown expression");
}

Result<CallArgs> Renderer::EvalArgs(const CallArgsNode& node, const std::shared_ptr<Scope>& scope) {
  CallArgs args;
  args.positional.reserve(node.positional.size());
  for (const ExprPtr& p : node.positional) {
    LSERVE_ASSIGN_OR_RETURN(Value v, Eval(*p, scope));
    args.positional.push_back(std::move(v));
  }
  for (const auto& [key, expr] : node.keywords) {
    LSERVE_ASSIGN_OR_RETURN(Value v, Eval(*expr, scope));
    args.keywords.emplace_back(key, std::move(v));
  }
  if (node.star_args) {
    LSERVE_ASSIGN_OR_RETURN(Value v, Eval(*node.star_args, scope));
    LSERVE_ASSIGN_OR_RETURN(std::vector<Value> extra, Iterate(v));
    for (Value& x : extra) args.positional.push_back(std::move(x));
  }
  if (node.star_kwargs) {
    LSERVE_ASSIGN_OR_RETURN(Value v, Eval(*node.star_kwargs, scope));
    if (!v.is_dict()) return Error("argument after ** must be a mapping, not " + std::string(TypeName(v)));
    for (const auto& [key, value] : v.dict().entries()) {
      if (!key.is_string()) return Error("keywords must be strings");
      args.keywords.emplace_back(key.str(), value);
    }
  }
  return args;
}

Result<Value> Renderer::EvalCall(const Expr& e, const std::shared_ptr<Scope>& scope, Value caller) {
  LSERVE_ASSIGN_OR_RETURN(Value callee, Eval(*e.operands[0], scope));
  LSERVE_ASSIGN_OR_RETURN(CallArgs args, EvalArgs(e.args, scope));
  if (caller.is_callable()) args.keywords.emplace_back("caller", std::move(caller));
  current_line_ = e.line;
  return Call(callee, std::move(args));
}

Result<Value> Renderer::EvalFilter(const Expr& e, const std::shared_ptr<Scope>& scope) {
  if (e.unknown_callee) return Error("No filter named '" + e.name + "' found.");
  Value subject;
  if (e.operands[0]) {
    LSERVE_ASSIGN_OR_RETURN(subject, Eval(*e.operands[0], scope));
  } else if (filter_block_subject_ != nullptr) {
    subject = *filter_block_subject_;
  }
  LSERVE_ASSIGN_OR_RETURN(CallArgs args, EvalArgs(e.args, scope));
  current_line_ = e.line;
  return ApplyFilter(e.name, subject, args);
}

Result<Value> Renderer::ApplyFilter(std::string_view name, const Value& subject, const CallArgs& args) {
  return CallFilter(*this, name, subject, args);
}

Result<bool> Renderer::ApplyTest(std::string_view name, const Value& subject, const CallArgs& args) {
  return CallTest(*this, name, subject, args);
}

// ------------------------------------------------------------------ operators

namespace {

int64_t CheckedPow(int64_t base, int64_t exp, bool* overflow) {
  int64_t result = 1;
  *overflow = false;
  while (exp > 0) {
    if (exp & 1) {
      if (__builtin_mul_overflow(result, base, &result)) {
        *overflow = true;
        return 0;
      }
    }
    exp >>= 1;
    if (exp > 0 && __builtin_mul_overflow(base, base, &base)) {
      *overflow = true;
      return 0;
    }
  }
  return result;
}

double PyFloatMod(double a, double b) {
  double mod = std::fmod(a, b);
  if (mod != 0.0) {
    if ((b < 0) != (mod < 0)) mod += b;
  } else {
    mod = std::copysign(0.0, b);
  }
  return mod;
}

double PyFloatFloorDiv(double a, double b) {
  double mod = std::fmod(a, b);
  double div = (a - mod) / b;
  if (mod != 0.0 && ((b < 0) != (mod < 0))) div -= 1.0;
  if (div == 0.0) return std::copysign(0.0, a / b);
  double floordiv = std::floor(div);
  if (div - floordiv > 0.5) floordiv += 1.0;
  return floordiv;
}

}  // namespace

Result<Value> Renderer::EvalBinary(BinaryOp op, const Value& a, const Value& b) {
  if (a.is_undefined()) return UndefinedError(a);
  if (b.is_undefined()) return UndefinedError(b);
  auto unsupported = [&]() {
    return Error("unsupported operand type(s) for " + std::string(BinarySymbol(op)) + ": '" +
                 std::string(TypeName(a)) + "' and '" + std::string(TypeName(b)) + "'");
  };
  auto overflow = [&]() { return Error("integer result out of the supported range"); };
  const bool ints = a.is_integral() && b.is_integral();
  const bool numbers = a.is_number() && b.is_number();
  switch (op) {
    case BinaryOp::kAdd: {
      if (ints) {
        int64_t r;
        if (__builtin_add_overflow(a.int_value(), b.int_value(), &r)) return overflow();
        return Value::Int(r);
      }
      if (numbers) return Value::Float(a.float_value() + b.float_value());
      if (a.is_string() && b.is_string()) {
        LSERVE_RETURN_IF_ERROR(ChargeBytes(a.str().size() + b.str().size()));
        std::string s;
        s.reserve(a.str().size() + b.str().size());
        s.append(a.str());
        s.append(b.str());
        return Value::String(std::move(s));
      }
      if (IsListOrTuple(a) && IsListOrTuple(b) && a.seq().kind == b.seq().kind) {
        std::vector<Value> items = a.items();
        items.insert(items.end(), b.items().begin(), b.items().end());
        return MakeList(std::move(items), a.seq().kind);
      }
      if (a.is_string() || IsListOrTuple(a)) {
        std::string kind(TypeName(a));
        return Error("can only concatenate " + kind + " (not \"" + std::string(TypeName(b)) + "\") to " + kind);
      }
      return unsupported();
    }
    case BinaryOp::kSub: {
      if (ints) {
        int64_t r;
        if (__builtin_sub_overflow(a.int_value(), b.int_value(), &r)) return overflow();
        return Value::Int(r);
      }
      if (numbers) return Value::Float(a.float_value() - b.float_value());
      return unsupported();
    }
    case BinaryOp::kMul: {
      if (ints) {
        int64_t r;
        if (__builtin_mul_overflow(a.int_value(), b.int_value(), &r)) return overflow();
        return Value::Int(r);
      }
      if (numbers) return Value::Float(a.float_value() * b.float_value());
      const Value* seq = nullptr;
      const Value* count = nullptr;
      if ((a.is_string() || IsListOrTuple(a)) && b.is_integral()) {
        seq = &a;
        count = &b;
      } else if ((b.is_string() || IsListOrTuple(b)) && a.is_integral()) {
        seq = &b;
        count = &a;
      }
      if (seq == nullptr) return unsupported();
      int64_t n = std::max<int64_t>(0, count->int_value());
      size_t unit = seq->is_string() ? seq->str().size() : seq->items().size() * sizeof(Value);
      // Check the size before building anything: 'x' * 10**9 must fail fast.
      if (unit != 0 && static_cast<uint64_t>(n) > limits_.max_value_bytes / unit) {
        return ResourceExhausted("chat template built a value of more than " +
                                 std::to_string(limits_.max_value_bytes) + " bytes");
      }
      if (seq->is_string()) {
        LSERVE_RETURN_IF_ERROR(ChargeBytes(unit * static_cast<size_t>(n)));
        const size_t total = unit * static_cast<size_t>(n);
        std::string s;
        s.reserve(total);
        if (total > 0) s.append(seq->str());
        while (s.size() < total) s.append(s, 0, std::min(s.size(), total - s.size()));  // doubling copies
        return Value::String(std::move(s));
      }
      std::vector<Value> items;
      items.reserve(seq->items().size() * static_cast<size_t>(n));
      for (int64_t i = 0; i < n; ++i) items.insert(items.end(), seq->items().begin(), seq->items().end());
      return MakeList(std::move(items), seq->seq().kind);
    }
    case BinaryOp::kDiv: {
      if (!numbers) return unsupported();
      if (b.float_value() == 0.0) return Error("division by zero");
      return Value::Float(a.float_value() / b.float_value());
    }
    case BinaryOp::kFloorDiv: {
      if (ints) {
        int64_t x = a.int_value();
        int64_t y = b.int_value();
        if (y == 0) return Error("integer division or modulo by zero");
        if (x == INT64_MIN && y == -1) return overflow();
        int64_t q = x / y;
        if (x % y != 0 && ((x < 0) != (y < 0))) --q;
        return Value::Int(q);
      }
      if (!numbers) return unsupported();
      if (b.float_value() == 0.0) return Error("float floor division by zero");
      return Value::Float(PyFloatFloorDiv(a.float_value(), b.float_value()));
    }
    case BinaryOp::kMod: {
      if (a.is_string()) return PercentFormat(*this, a.str(), b);
      if (ints) {
        int64_t x = a.int_value();
        int64_t y = b.int_value();
        if (y == 0) return Error("integer modulo by zero");
        if (y == -1) return Value::Int(0);
        int64_t r = x % y;
        if (r != 0 && ((r < 0) != (y < 0))) r += y;
        return Value::Int(r);
      }
      if (!numbers) return unsupported();
      if (b.float_value() == 0.0) return Error("float modulo");
      return Value::Float(PyFloatMod(a.float_value(), b.float_value()));
    }
    case BinaryOp::kPow: {
      if (ints && b.int_value() >= 0) {
        bool overflowed = false;
        int64_t r = CheckedPow(a.int_value(), b.int_value(), &overflowed);
        if (overflowed) return overflow();
        return Value::Int(r);
      }
      if (!numbers) return unsupported();
      double x = a.float_value();
      double y = b.float_value();
      if (x == 0.0 && y < 0) return Error("0.0 cannot be raised to a negative power");
      if (x < 0 && y != std::floor(y)) return Error("complex results are not supported");
      double r = std::pow(x, y);
      if (std::isinf(r) && std::isfinite(x) && std::isfinite(y)) return Error("(34, 'Numerical result out of range')");
      return Value::Float(r);
    }
  }
  return unsupported();
}

Result<bool> Renderer::EvalCompare(CompareOp op, const Value& a, const Value& b) {
  switch (op) {
    case CompareOp::kEq: return PyEquals(a, b);
    case CompareOp::kNe: return !PyEquals(a, b);
    case CompareOp::kIn: return Contains(b, a);
    case CompareOp::kNotIn: {
      LSERVE_ASSIGN_OR_RETURN(bool in, Contains(b, a));
      return !in;
    }
    default: break;
  }
  if (a.is_undefined()) return UndefinedError(a);
  if (b.is_undefined()) return UndefinedError(b);
  if (!Orderable(a, b)) {
    return Error("'" + std::string(CompareSymbol(op)) + "' not supported between instances of '" +
                 std::string(TypeName(a)) + "' and '" + std::string(TypeName(b)) + "'");
  }
  const Value& x = (op == CompareOp::kLt || op == CompareOp::kLe) ? a : b;
  const Value& y = (op == CompareOp::kLt || op == CompareOp::kLe) ? b : a;
  Result<bool> less = PyLess(x, y);
  if (!less.ok()) return Error(less.status().message());
  if (*less) return true;
  if (op == CompareOp::kLe || op == CompareOp::kGe) return PyEquals(a, b);
  return false;
}

Result<bool> Renderer::Contains(const Value& container, const Value& item) {
  switch (container.kind()) {
    case Value::Kind::kString:
      if (!item.is_string()) {
        return Error("'in <string>' requires string as left operand, not " + std::string(TypeName(item)));
      }
      return container.str().find(item.str()) != std::string::npos;
    case Value::Kind::kSequence:
      LSERVE_RETURN_IF_ERROR(Step(container.items().size()));
      for (const Value& v : container.items()) {
        if (PyEquals(v, item)) return true;
      }
      return false;
    case Value::Kind::kDict:
      if (!HashKey(item)) return Error("unhashable type: '" + std::string(TypeName(item)) + "'");
      return container.dict().Find(item) != nullptr;
    case Value::Kind::kUndefined: return false;
    case Value::Kind::kLoop: {
      for (const Value& v : container.loop().items.items()) {
        if (PyEquals(v, item)) return true;
      }
      return false;
    }
    default:
      return Error("argument of type '" + std::string(TypeName(container)) + "' is not iterable");
  }
}

// ------------------------------------------------------- attributes and items

Result<Value> Renderer::GetAttr(const Value& obj, std::string_view name) {
  if (obj.is_undefined()) return UndefinedError(obj);
  return AttributeLookup(obj, name);
}

// jinja2's SandboxedEnvironment.getattr: the Python attribute if the object
// has one (refused when unsafe), else the item of that name, else Undefined.
Result<Value> Renderer::AttributeLookup(const Value& obj, std::string_view name) {
  switch (obj.kind()) {
    case Value::Kind::kNamespace: {
      if (const Value* v = obj.ns().attrs.Find(name)) return *v;
      if (IsDunder(name)) return UnsafeAttribute(obj, name);
      return MissingAttribute(obj, name);
    }
    case Value::Kind::kLoop: return LoopAttribute(obj, name);
    case Value::Kind::kCallable: {
      const Callable& c = obj.callable();
      if (c.kind == Callable::Kind::kBuiltin && c.builtin == BuiltinFunction::kDict && name == "fromkeys") {
        auto fn = std::make_shared<Callable>();
        fn->kind = Callable::Kind::kBuiltin;
        fn->name = "fromkeys";
        fn->builtin = BuiltinFunction::kDictFromKeys;
        return Value::FromCallable(std::move(fn));
      }
      if (IsDunder(name)) return UnsafeAttribute(obj, name);
      return MissingAttribute(obj, name);
    }
    default: break;
  }
  switch (ClassifyMethod(obj, name)) {
    case MethodSafety::kSafe:
      return BoundCallable(Callable::Kind::kMethod, std::string(name), BuiltinFunction::kRange, obj);
    case MethodSafety::kUnsafe: return UnsafeAttribute(obj, name);
    case MethodSafety::kNotAMethod: break;
  }
  if (IsDunder(name)) return UnsafeAttribute(obj, name);
  if (obj.is_dict()) {
    if (const Value* v = obj.dict().Find(name)) return *v;
  }
  return MissingAttribute(obj, name);
}

// jinja2's SandboxedEnvironment.getitem: obj[key], else for a string key the
// attribute of that name, else Undefined.
Result<Value> Renderer::GetItem(const Value& obj, const Value& key) {
  if (obj.is_undefined()) return UndefinedError(obj);
  switch (obj.kind()) {
    case Value::Kind::kDict:
      if (const Value* v = obj.dict().Find(key)) return *v;
      break;
    case Value::Kind::kSequence:
      if (key.is_integral() && obj.is_indexable_sequence()) {
        int64_t n = static_cast<int64_t>(obj.items().size());
        int64_t i = key.int_value();
        if (i < 0) i += n;
        if (i >= 0 && i < n) return obj.items()[static_cast<size_t>(i)];
      }
      break;
    case Value::Kind::kString:
      if (key.is_integral()) {
        std::vector<size_t> offsets = CodePointOffsets(obj.str());
        int64_t n = static_cast<int64_t>(offsets.size()) - 1;
        int64_t i = key.int_value();
        if (i < 0) i += n;
        if (i >= 0 && i < n) {
          size_t begin = offsets[static_cast<size_t>(i)];
          return MakeString(obj.str().substr(begin, offsets[static_cast<size_t>(i) + 1] - begin));
        }
      }
      break;
    default: break;
  }
  if (key.is_string()) {
    const std::string& name = key.str();
    if (obj.is_namespace()) {
      if (const Value* v = obj.ns().attrs.Find(name)) return *v;
    } else if (obj.is_loop()) {
      return LoopAttribute(obj, name);
    } else {
      switch (ClassifyMethod(obj, name)) {
        case MethodSafety::kSafe:
          return BoundCallable(Callable::Kind::kMethod, name, BuiltinFunction::kRange, obj);
        case MethodSafety::kUnsafe: return UnsafeAttribute(obj, name);
        case MethodSafety::kNotAMethod: break;
      }
    }
    if (IsDunder(name)) return UnsafeAttribute(obj, name);
    return MissingAttribute(obj, name);
  }
  return MissingElement(obj, PyRepr(key));
}

Result<Value> Renderer::Slice(const Value& obj, const Value& start, const Value& stop, const Value& step) {
  if (obj.is_undefined()) return UndefinedError(obj);
  auto bound = [&](const Value& v) -> Result<std::optional<int64_t>> {
    if (v.is_none()) return std::optional<int64_t>();
    if (!v.is_integral()) return Error("slice indices must be integers or None or have an __index__ method");
    return std::optional<int64_t>(v.int_value());
  };
  LSERVE_ASSIGN_OR_RETURN(std::optional<int64_t> s, bound(start));
  LSERVE_ASSIGN_OR_RETURN(std::optional<int64_t> e, bound(stop));
  LSERVE_ASSIGN_OR_RETURN(std::optional<int64_t> st, bound(step));
  int64_t stride = st.value_or(1);
  if (stride == 0) return Error("slice step cannot be zero");
  if (obj.is_string()) {
    std::vector<size_t> offsets = CodePointOffsets(obj.str());
    int64_t n = static_cast<int64_t>(offsets.size()) - 1;
    std::string out;
    if (stride == 1) {
      std::vector<size_t> idx = SliceIndices(n, s, e, 1);
      if (!idx.empty()) out = obj.str().substr(offsets[idx.front()], offsets[idx.back() + 1] - offsets[idx.front()]);
    } else {
      for (size_t i : SliceIndices(n, s, e, stride)) out.append(obj.str(), offsets[i], offsets[i + 1] - offsets[i]);
    }
    return MakeString(std::move(out));
  }
  if (obj.is_range()) {
    Value sliced = SliceRange(obj.seq(), s, e, stride);
    LSERVE_RETURN_IF_ERROR(ChargeBytes(sliced.items().size() * sizeof(Value)));
    return sliced;
  }
  if (IsListOrTuple(obj)) {
    std::vector<Value> items;
    for (size_t i : SliceIndices(static_cast<int64_t>(obj.items().size()), s, e, stride)) {
      items.push_back(obj.items()[i]);
    }
    return MakeList(std::move(items), obj.seq().kind);
  }
  // jinja2 compiles slices to plain Python subscription, bypassing the
  // environment's getitem: other objects raise instead of going undefined.
  if (obj.is_dict()) return Error("unhashable type: 'slice'");
  return Error("'" + std::string(TypeName(obj)) + "' object is not subscriptable");
}

Result<Value> Renderer::LoopAttribute(const Value& loop_value, std::string_view name) {
  const LoopState& loop = loop_value.loop();
  const std::vector<Value>& items = loop.items.items();
  const int64_t n = static_cast<int64_t>(items.size());
  const int64_t i = static_cast<int64_t>(loop.index0);
  if (name == "index") return Value::Int(i + 1);
  if (name == "index0") return Value::Int(i);
  if (name == "revindex") return Value::Int(n - i);
  if (name == "revindex0") return Value::Int(n - i - 1);
  if (name == "first") return Value::Bool(i == 0);
  if (name == "last") return Value::Bool(i == n - 1);
  if (name == "length") return Value::Int(n);
  if (name == "depth") return Value::Int(1);
  if (name == "depth0") return Value::Int(0);
  if (name == "previtem") {
    if (i > 0) return items[static_cast<size_t>(i - 1)];
    return Value::Undefined("there is no previous item");
  }
  if (name == "nextitem") {
    if (i + 1 < n) return items[static_cast<size_t>(i + 1)];
    return Value::Undefined("there is no next item");
  }
  if (name == "cycle") {
    return BoundCallable(Callable::Kind::kBuiltin, "cycle", BuiltinFunction::kLoopCycle, loop_value);
  }
  if (name == "changed") {
    return BoundCallable(Callable::Kind::kBuiltin, "changed", BuiltinFunction::kLoopChanged, loop_value);
  }
  if (IsDunder(name) || (!name.empty() && name[0] == '_')) return UnsafeAttribute(loop_value, name);
  return MissingAttribute(loop_value, name);
}

// --------------------------------------------------------------------- calls

Result<Value> Renderer::Call(const Value& callee, CallArgs args) {
  if (callee.is_undefined()) return UndefinedError(callee);
  if (!callee.is_callable()) return Error("'" + std::string(TypeName(callee)) + "' object is not callable");
  const Callable& c = callee.callable();
  switch (c.kind) {
    case Callable::Kind::kMacro: return CallMacro(c, std::move(args));
    case Callable::Kind::kBuiltin: return CallGlobalFunction(*this, c, args);
    case Callable::Kind::kMethod: return CallMethod(*this, c.bound[0], c.name, args);
  }
  return Error("object is not callable");
}

Result<Value> Renderer::CallMacro(const Callable& c, CallArgs args) {
  if (call_depth_ >= limits_.max_call_depth) {
    return ResourceExhausted("chat template macro calls nested deeper than " +
                             std::to_string(limits_.max_call_depth));
  }
  DepthCounter calls(&call_depth_);
  const MacroNode& m = *c.macro;
  std::shared_ptr<Scope> scope = EnterFrame(m.symbols, c.closure);
  const size_t n = m.params.size();
  std::vector<bool> bound(n, false);
  for (size_t i = 0; i < n && i < args.positional.size(); ++i) {
    scope->Set(m.params[i], args.positional[i]);
    bound[i] = true;
  }
  std::vector<Value> varargs;
  for (size_t i = n; i < args.positional.size(); ++i) varargs.push_back(args.positional[i]);
  Dict kwargs;
  Value caller;
  for (auto& [key, value] : args.keywords) {
    auto it = std::find(m.params.begin(), m.params.end(), key);
    if (it != m.params.end()) {
      size_t index = static_cast<size_t>(it - m.params.begin());
      if (bound[index]) return Error("macro '" + m.name + "' got multiple values for argument '" + key + "'");
      scope->Set(key, std::move(value));
      bound[index] = true;
    } else if (key == "caller") {
      caller = std::move(value);
    } else {
      LSERVE_RETURN_IF_ERROR(kwargs.Set(Value::String(key), std::move(value)));
    }
  }
  for (size_t i = 0; i < n; ++i) {
    if (bound[i]) continue;
    if (m.defaults[i]) {
      LSERVE_ASSIGN_OR_RETURN(Value v, Eval(*m.defaults[i], scope));
      scope->Set(m.params[i], std::move(v));
    } else {
      scope->Set(m.params[i], Value::Undefined("parameter '" + m.params[i] + "' was not provided"));
    }
  }
  LSERVE_ASSIGN_OR_RETURN(Value varargs_value, MakeList(std::move(varargs), SequenceKind::kTuple));
  scope->Set("varargs", std::move(varargs_value));
  scope->Set("kwargs", Value::FromDict(std::move(kwargs)));
  if (!caller.is_undefined()) scope->Set("caller", std::move(caller));
  std::string buffer;
  LSERVE_ASSIGN_OR_RETURN(Flow flow, Exec(m.body, scope, &buffer));
  (void)flow;
  return MakeString(std::move(buffer));
}

Result<std::vector<Value>> Renderer::Iterate(const Value& v) {
  switch (v.kind()) {
    case Value::Kind::kSequence:
      LSERVE_RETURN_IF_ERROR(ChargeBytes(v.items().size() * sizeof(Value)));
      return v.items();
    case Value::Kind::kDict: {
      std::vector<Value> keys;
      keys.reserve(v.dict().size());
      for (const auto& entry : v.dict().entries()) keys.push_back(entry.first);
      LSERVE_RETURN_IF_ERROR(ChargeBytes(keys.size() * sizeof(Value)));
      return keys;
    }
    case Value::Kind::kString: {
      std::vector<size_t> offsets = CodePointOffsets(v.str());
      LSERVE_RETURN_IF_ERROR(ChargeBytes(offsets.size() * (sizeof(Value) + 32)));
      std::vector<Value> chars;
      chars.reserve(offsets.size());
      for (size_t i = 0; i + 1 < offsets.size(); ++i) {
        chars.push_back(Value::String(v.str().substr(offsets[i], offsets[i + 1] - offsets[i])));
      }
      return chars;
    }
    case Value::Kind::kUndefined: return std::vector<Value>();
    case Value::Kind::kLoop: return v.loop().items.items();
    default: return Error("'" + std::string(TypeName(v)) + "' object is not iterable");
  }
}

}  // namespace lserve::jinja
