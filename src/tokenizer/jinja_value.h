// Values of the chat-template language. They model the Python objects a
// Jinja template sees when transformers renders it: None, bool, int, float,
// str, list, tuple, dict (insertion-ordered), jinja2 Undefined, the
// namespace() object, macros and the loop object. Everything except
// namespaces and loop objects is immutable, which mirrors jinja2's
// ImmutableSandboxedEnvironment (list.append, dict.update ... are refused).
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

#include "core/status.h"

namespace lserve::jinja {

class Value;
class Dict;
struct Namespace;
struct Callable;
struct LoopState;

// What an Undefined says when it is misused (called, indexed, added ...).
struct UndefinedInfo {
  std::string message;     // e.g. "'x' is undefined", "'dict object' has no attribute 'y'"
  bool security = false;   // misuse is a sandbox violation (unsafe attribute)
};

// The flavours of Python sequences a template can meet; they differ only in
// repr() and equality.
enum class SequenceKind : uint8_t { kList, kTuple, kRange, kDictKeys, kDictValues, kDictItems };

struct Sequence {
  std::vector<Value> items;
  SequenceKind kind = SequenceKind::kList;
  int depth = 1;  // nesting depth of containers, >= 1
  int64_t range_start = 0;  // kRange: range(start, stop, step), for repr()
  int64_t range_stop = 0;
  int64_t range_step = 1;
};

class Value {
 public:
  enum class Kind : uint8_t {
    kUndefined, kNone, kBool, kInt, kFloat, kString, kSequence, kDict, kNamespace, kCallable, kLoop
  };

  Value() = default;  // a plain Undefined
  static Value Undefined(std::string message, bool security = false);
  static Value None();
  static Value Bool(bool b);
  static Value Int(int64_t i);
  static Value Float(double f);
  static Value String(std::string s);
  static Value List(std::vector<Value> items, SequenceKind kind = SequenceKind::kList);
  static Value Tuple(std::vector<Value> items) { return List(std::move(items), SequenceKind::kTuple); }
  // Python's range(start, stop, step), materialised (the sandbox caps its length).
  static Value Range(int64_t start, int64_t stop, int64_t step);
  static Value FromDict(Dict dict);
  static Value FromNamespace(std::shared_ptr<Namespace> ns);
  static Value FromCallable(std::shared_ptr<Callable> callable);
  static Value FromLoop(std::shared_ptr<LoopState> loop);

  Kind kind() const { return kind_; }
  bool is_undefined() const { return kind_ == Kind::kUndefined; }
  bool is_none() const { return kind_ == Kind::kNone; }
  bool is_bool() const { return kind_ == Kind::kBool; }
  bool is_int() const { return kind_ == Kind::kInt; }
  bool is_float() const { return kind_ == Kind::kFloat; }
  // bool, int or float (Python's numbers.Number; bool is an int there)
  bool is_number() const { return kind_ == Kind::kBool || kind_ == Kind::kInt || kind_ == Kind::kFloat; }
  // bool or int: usable where Python wants an integer
  bool is_integral() const { return kind_ == Kind::kBool || kind_ == Kind::kInt; }
  bool is_string() const { return kind_ == Kind::kString; }
  bool is_sequence() const { return kind_ == Kind::kSequence; }
  bool is_list() const { return is_sequence() && seq().kind == SequenceKind::kList; }
  bool is_tuple() const { return is_sequence() && seq().kind == SequenceKind::kTuple; }
  bool is_range() const { return is_sequence() && seq().kind == SequenceKind::kRange; }
  // list, tuple or range: the sequences that support indexing and slicing
  bool is_indexable_sequence() const { return is_list() || is_tuple() || is_range(); }
  bool is_dict() const { return kind_ == Kind::kDict; }
  bool is_namespace() const { return kind_ == Kind::kNamespace; }
  bool is_callable() const { return kind_ == Kind::kCallable; }
  bool is_loop() const { return kind_ == Kind::kLoop; }

  bool bool_value() const { return b_; }
  int64_t int_value() const { return kind_ == Kind::kBool ? (b_ ? 1 : 0) : i_; }
  double float_value() const { return kind_ == Kind::kFloat ? f_ : static_cast<double>(int_value()); }
  const std::string& str() const { return *static_cast<const std::string*>(ptr_.get()); }
  const Sequence& seq() const { return *static_cast<const Sequence*>(ptr_.get()); }
  const std::vector<Value>& items() const { return seq().items; }
  const Dict& dict() const { return *static_cast<const Dict*>(ptr_.get()); }
  Namespace& ns() const { return *static_cast<Namespace*>(ptr_.get()); }
  const Callable& callable() const { return *static_cast<const Callable*>(ptr_.get()); }
  LoopState& loop() const { return *static_cast<LoopState*>(ptr_.get()); }
  const std::shared_ptr<Namespace> ns_ptr() const { return std::static_pointer_cast<Namespace>(ptr_); }
  std::shared_ptr<LoopState> loop_ptr() const { return std::static_pointer_cast<LoopState>(ptr_); }
  // Message for misuse of an Undefined; empty for a plain one.
  const UndefinedInfo* undefined_info() const { return static_cast<const UndefinedInfo*>(ptr_.get()); }
  // Identity of heap objects (namespaces, macros, loops) for `is sameas`.
  const void* identity() const { return ptr_.get(); }

  // Nesting depth of containers (1 for scalars); bounded while rendering so
  // that printing, comparing and freeing values never recurse without limit.
  int depth() const;

 private:
  Kind kind_ = Kind::kUndefined;
  union {
    bool b_;
    int64_t i_ = 0;
    double f_;
  };
  std::shared_ptr<void> ptr_;
};

// An insertion-ordered dict with Python key semantics (1, 1.0 and True are
// the same key; lists are unhashable).
class Dict {
 public:
  // The stored value for `key`, or nullptr. Unhashable keys are never found.
  const Value* Find(const Value& key) const;
  const Value* Find(std::string_view key) const;
  // Inserts or replaces; a replaced key keeps its first position. Fails on
  // unhashable keys.
  Status Set(Value key, Value value);
  void Clear();
  size_t size() const { return entries_.size(); }
  bool empty() const { return entries_.empty(); }
  const std::vector<std::pair<Value, Value>>& entries() const { return entries_; }
  int depth() const { return depth_; }

 private:
  std::vector<std::pair<Value, Value>> entries_;
  std::unordered_map<std::string, size_t> index_;  // HashKey -> position in entries_
  int depth_ = 1;
};

// jinja2's namespace(): the one mutable object, whose attributes `{% set
// ns.x = ... %}` may assign from inside loops.
struct Namespace {
  Dict attrs;
};

struct Scope;      // jinja_interpreter.h
struct MacroNode;  // jinja_ast.h

enum class BuiltinFunction : uint8_t {
  kRange, kNamespace, kDict, kDictFromKeys, kRaiseException, kStrftimeNow, kLoopCycle, kLoopChanged,
};

// Something a template can call: a macro (or the `caller` of a call block),
// a global function, or a method bound to its receiver ('a,b'.split).
struct Callable {
  enum class Kind : uint8_t { kMacro, kBuiltin, kMethod };
  Kind kind = Kind::kBuiltin;
  std::string name;
  const MacroNode* macro = nullptr;  // kMacro; owned by the compiled template
  std::shared_ptr<Scope> closure;    // kMacro: the scope the macro was defined in
  BuiltinFunction builtin = BuiltinFunction::kRange;
  std::vector<Value> bound;          // kMethod: {receiver}; loop helpers: {loop}
};

// jinja2's LoopContext: the `loop` variable of a for loop.
struct LoopState {
  Value items;  // a list: what the loop iterates, after its `if` filter
  size_t index0 = 0;
  bool has_changed_value = false;
  Value changed_value;  // last argument of loop.changed()
};

// Python hash identity of a value: equal keys for values that compare equal
// (1 == 1.0 == True); nullopt for unhashable values (lists, dicts).
std::optional<std::string> HashKey(const Value& v);

// Python's type(v).__name__ as error messages show it.
std::string_view TypeName(const Value& v);
// jinja2's object_type_repr: "None", "str object", "dict object" ...
std::string ObjectTypeRepr(const Value& v);

// Python truthiness.
bool Truthy(const Value& v);

// Python ==. Containers compare element-wise (their depth is bounded when
// they are built); namespaces, macros and loops compare by identity.
bool PyEquals(const Value& a, const Value& b);

// Python <. Fails with a TypeError message for unorderable operands.
Result<bool> PyLess(const Value& a, const Value& b);

// Python str() and repr(). Undefined prints as "".
std::string PyStr(const Value& v);
std::string PyRepr(const Value& v);
// Appending forms, used for large containers.
void AppendPyStr(const Value& v, std::string* out);
void AppendPyRepr(const Value& v, std::string* out);

}  // namespace lserve::jinja
