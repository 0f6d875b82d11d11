#include "tokenizer/jinja_value.h"

#include <algorithm>
#include <cmath>
#include <cstdio>

#include "tokenizer/jinja_text.h"

namespace lserve::jinja {
namespace {

// repr() of a namespace can reach itself again (ns.x = ns); Python would
// raise RecursionError, we print "..." past this depth instead.
constexpr int kMaxReprDepth = 512;

int MaxDepth(const std::vector<Value>& items) {
  int depth = 0;
  for (const Value& v : items) depth = std::max(depth, v.depth());
  return depth;
}

std::string_view SequenceTypeName(SequenceKind kind) {
  switch (kind) {
    case SequenceKind::kList: return "list";
    case SequenceKind::kTuple: return "tuple";
    case SequenceKind::kRange: return "range";
    case SequenceKind::kDictKeys: return "dict_keys";
    case SequenceKind::kDictValues: return "dict_values";
    case SequenceKind::kDictItems: return "dict_items";
  }
  return "list";
}

void AppendRepr(const Value& v, std::string* out, int depth);

void AppendSequenceRepr(const Sequence& seq, std::string* out, int depth) {
  if (seq.kind == SequenceKind::kRange) {
    out->append("range(" + std::to_string(seq.range_start) + ", " + std::to_string(seq.range_stop));
    if (seq.range_step != 1) out->append(", " + std::to_string(seq.range_step));
    out->push_back(')');
    return;
  }
  const bool is_tuple = seq.kind == SequenceKind::kTuple;
  const bool is_view = seq.kind != SequenceKind::kList && !is_tuple;
  if (is_view) {
    out->append(SequenceTypeName(seq.kind));
    out->push_back('(');
  }
  out->push_back(is_tuple ? '(' : '[');
  for (size_t i = 0; i < seq.items.size(); ++i) {
    if (i > 0) out->append(", ");
    AppendRepr(seq.items[i], out, depth + 1);
  }
  if (is_tuple && seq.items.size() == 1) out->push_back(',');
  out->push_back(is_tuple ? ')' : ']');
  if (is_view) out->push_back(')');
}

void AppendDictRepr(const Dict& dict, std::string* out, int depth) {
  out->push_back('{');
  bool first = true;
  for (const auto& [key, value] : dict.entries()) {
    if (!first) out->append(", ");
    first = false;
    AppendRepr(key, out, depth + 1);
    out->append(": ");
    AppendRepr(value, out, depth + 1);
  }
  out->push_back('}');
}

void AppendRepr(const Value& v, std::string* out, int depth) {
  if (depth > kMaxReprDepth) {
    out->append("...");
    return;
  }
  switch (v.kind()) {
    case Value::Kind::kUndefined: out->append("Undefined"); return;
    case Value::Kind::kString: out->append(PyStrRepr(v.str())); return;
    case Value::Kind::kSequence: AppendSequenceRepr(v.seq(), out, depth); return;
    case Value::Kind::kDict: AppendDictRepr(v.dict(), out, depth); return;
    case Value::Kind::kNamespace:
      out->append("<Namespace ");
      AppendDictRepr(v.ns().attrs, out, depth);
      out->push_back('>');
      return;
    default: AppendPyStr(v, out); return;
  }
}

bool SequencesEqual(const Sequence& a, const Sequence& b) {
  if (a.kind != b.kind || a.items.size() != b.items.size()) return false;
  for (size_t i = 0; i < a.items.size(); ++i) {
    if (!PyEquals(a.items[i], b.items[i])) return false;
  }
  return true;
}

bool DictsEqual(const Dict& a, const Dict& b) {
  if (a.size() != b.size()) return false;
  for (const auto& [key, value] : a.entries()) {
    const Value* other = b.Find(key);
    if (other == nullptr || !PyEquals(value, *other)) return false;
  }
  return true;
}

}  // namespace

Value Value::Undefined(std::string message, bool security) {
  Value v;
  auto info = std::make_shared<UndefinedInfo>();
  info->message = std::move(message);
  info->security = security;
  v.ptr_ = std::move(info);
  return v;
}

Value Value::None() {
  Value v;
  v.kind_ = Kind::kNone;
  return v;
}

Value Value::Bool(bool b) {
  Value v;
  v.kind_ = Kind::kBool;
  v.b_ = b;
  return v;
}

Value Value::Int(int64_t i) {
  Value v;
  v.kind_ = Kind::kInt;
  v.i_ = i;
  return v;
}

Value Value::Float(double f) {
  Value v;
  v.kind_ = Kind::kFloat;
  v.f_ = f;
  return v;
}

Value Value::String(std::string s) {
  Value v;
  v.kind_ = Kind::kString;
  v.ptr_ = std::make_shared<std::string>(std::move(s));
  return v;
}

Value Value::List(std::vector<Value> items, SequenceKind kind) {
  Value v;
  v.kind_ = Kind::kSequence;
  auto seq = std::make_shared<Sequence>();
  seq->depth = 1 + MaxDepth(items);
  seq->items = std::move(items);
  seq->kind = kind;
  v.ptr_ = std::move(seq);
  return v;
}

Value Value::Range(int64_t start, int64_t stop, int64_t step) {
  std::vector<Value> items;
  if (step > 0) {
    for (int64_t i = start; i < stop; i += step) items.push_back(Value::Int(i));
  } else if (step < 0) {
    for (int64_t i = start; i > stop; i += step) items.push_back(Value::Int(i));
  }
  Value v = List(std::move(items), SequenceKind::kRange);
  auto* seq = static_cast<Sequence*>(v.ptr_.get());
  seq->range_start = start;
  seq->range_stop = stop;
  seq->range_step = step;
  return v;
}

Value Value::FromDict(Dict dict) {
  Value v;
  v.kind_ = Kind::kDict;
  v.ptr_ = std::make_shared<Dict>(std::move(dict));
  return v;
}

Value Value::FromNamespace(std::shared_ptr<Namespace> ns) {
  Value v;
  v.kind_ = Kind::kNamespace;
  v.ptr_ = std::move(ns);
  return v;
}

Value Value::FromCallable(std::shared_ptr<Callable> callable) {
  Value v;
  v.kind_ = Kind::kCallable;
  v.ptr_ = std::move(callable);
  return v;
}

Value Value::FromLoop(std::shared_ptr<LoopState> loop) {
  Value v;
  v.kind_ = Kind::kLoop;
  v.ptr_ = std::move(loop);
  return v;
}

int Value::depth() const {
  switch (kind_) {
    case Kind::kSequence: return seq().depth;
    case Kind::kDict: return dict().depth();
    case Kind::kLoop: return 1 + loop().items.depth();
    case Kind::kCallable: return 1 + MaxDepth(callable().bound);
    default: return 1;
  }
}

const Value* Dict::Find(const Value& key) const {
  if (key.is_string()) return Find(std::string_view(key.str()));
  std::optional<std::string> hash = HashKey(key);
  if (!hash) return nullptr;
  auto it = index_.find(*hash);
  return it == index_.end() ? nullptr : &entries_[it->second].second;
}

const Value* Dict::Find(std::string_view key) const {
  std::string hash;
  hash.reserve(key.size() + 2);
  hash.append("s:");
  hash.append(key);
  auto it = index_.find(hash);
  return it == index_.end() ? nullptr : &entries_[it->second].second;
}

Status Dict::Set(Value key, Value value) {
  std::optional<std::string> hash = HashKey(key);
  if (!hash) return InvalidArgument(std::string("unhashable type: '") + std::string(TypeName(key)) + "'");
  depth_ = std::max({depth_, 1 + key.depth(), 1 + value.depth()});
  auto [it, inserted] = index_.emplace(std::move(*hash), entries_.size());
  if (inserted) {
    entries_.emplace_back(std::move(key), std::move(value));
  } else {
    entries_[it->second].second = std::move(value);
  }
  return Status::Ok();
}

void Dict::Clear() {
  entries_.clear();
  index_.clear();
  depth_ = 1;
}

std::optional<std::string> HashKey(const Value& v) {
  switch (v.kind()) {
    case Value::Kind::kUndefined: return std::string("U");
    case Value::Kind::kNone: return std::string("N");
    case Value::Kind::kBool:
    case Value::Kind::kInt: return "n:" + std::to_string(v.int_value());
    case Value::Kind::kFloat: {
      double f = v.float_value();
      if (std::isfinite(f) && f == std::floor(f) && std::fabs(f) < 9.2e18) {
        return "n:" + std::to_string(static_cast<int64_t>(f));
      }
      return "f:" + PyFloatRepr(f);
    }
    case Value::Kind::kString: return "s:" + v.str();
    case Value::Kind::kSequence: {
      if (v.seq().kind == SequenceKind::kRange) return "r:" + PyRepr(v);
      if (v.seq().kind != SequenceKind::kTuple) return std::nullopt;
      std::string key = "t:";
      for (const Value& item : v.items()) {
        std::optional<std::string> part = HashKey(item);
        if (!part) return std::nullopt;
        key += std::to_string(part->size());
        key.push_back(':');
        key += *part;
      }
      return key;
    }
    case Value::Kind::kDict: return std::nullopt;
    default: {
      char buf[32];
      std::snprintf(buf, sizeof(buf), "p:%p", v.identity());
      return std::string(buf);
    }
  }
}

std::string_view TypeName(const Value& v) {
  switch (v.kind()) {
    case Value::Kind::kUndefined: return "Undefined";
    case Value::Kind::kNone: return "NoneType";
    case Value::Kind::kBool: return "bool";
    case Value::Kind::kInt: return "int";
    case Value::Kind::kFloat: return "float";
    case Value::Kind::kString: return "str";
    case Value::Kind::kSequence: return SequenceTypeName(v.seq().kind);
    case Value::Kind::kDict: return "dict";
    case Value::Kind::kNamespace: return "Namespace";
    case Value::Kind::kCallable:
      return v.callable().kind == Callable::Kind::kMacro ? "Macro" : "builtin_function_or_method";
    case Value::Kind::kLoop: return "LoopContext";
  }
  return "object";
}

std::string ObjectTypeRepr(const Value& v) {
  if (v.is_none()) return "None";
  return std::string(TypeName(v)) + " object";
}

bool Truthy(const Value& v) {
  switch (v.kind()) {
    case Value::Kind::kUndefined:
    case Value::Kind::kNone: return false;
    case Value::Kind::kBool: return v.bool_value();
    case Value::Kind::kInt: return v.int_value() != 0;
    case Value::Kind::kFloat: return v.float_value() != 0.0;
    case Value::Kind::kString: return !v.str().empty();
    case Value::Kind::kSequence: return !v.items().empty();
    case Value::Kind::kDict: return !v.dict().empty();
    default: return true;
  }
}

bool PyEquals(const Value& a, const Value& b) {
  if (a.is_number() && b.is_number()) {
    if (a.is_integral() && b.is_integral()) return a.int_value() == b.int_value();
    if (a.is_float() && b.is_float()) return a.float_value() == b.float_value();
    // int vs float: exact comparison, as Python does.
    const Value& i = a.is_float() ? b : a;
    double f = a.is_float() ? a.float_value() : b.float_value();
    if (!std::isfinite(f) || f != std::floor(f)) return false;
    if (std::fabs(f) >= 9.2e18) return false;
    return static_cast<int64_t>(f) == i.int_value();
  }
  if (a.kind() != b.kind()) return false;
  switch (a.kind()) {
    case Value::Kind::kUndefined:
    case Value::Kind::kNone: return true;
    case Value::Kind::kString: return a.str() == b.str();
    case Value::Kind::kSequence: return a.identity() == b.identity() || SequencesEqual(a.seq(), b.seq());
    case Value::Kind::kDict: return a.identity() == b.identity() || DictsEqual(a.dict(), b.dict());
    default: return a.identity() == b.identity();
  }
}

Result<bool> PyLess(const Value& a, const Value& b) {
  if (a.is_number() && b.is_number()) {
    if (a.is_integral() && b.is_integral()) return a.int_value() < b.int_value();
    return a.float_value() < b.float_value();
  }
  if (a.is_string() && b.is_string()) return a.str() < b.str();  // UTF-8 order == code point order
  if (a.is_sequence() && b.is_sequence() && a.seq().kind == b.seq().kind &&
      (a.seq().kind == SequenceKind::kList || a.seq().kind == SequenceKind::kTuple)) {
    const auto& x = a.items();
    const auto& y = b.items();
    for (size_t i = 0; i < x.size() && i < y.size(); ++i) {
      if (PyEquals(x[i], y[i])) continue;
      return PyLess(x[i], y[i]);
    }
    return x.size() < y.size();
  }
  return InvalidArgument("'<' not supported between instances of '" + std::string(TypeName(a)) + "' and '" +
                         std::string(TypeName(b)) + "'");
}

void AppendPyStr(const Value& v, std::string* out) {
  switch (v.kind()) {
    case Value::Kind::kUndefined: return;
    case Value::Kind::kNone: out->append("None"); return;
    case Value::Kind::kBool: out->append(v.bool_value() ? "True" : "False"); return;
    case Value::Kind::kInt: out->append(std::to_string(v.int_value())); return;
    case Value::Kind::kFloat: out->append(PyFloatRepr(v.float_value())); return;
    case Value::Kind::kString: out->append(v.str()); return;
    case Value::Kind::kSequence:
    case Value::Kind::kDict:
    case Value::Kind::kNamespace: AppendRepr(v, out, 0); return;
    case Value::Kind::kCallable: {
      const Callable& c = v.callable();
      if (c.kind == Callable::Kind::kMacro) {
        out->append("<Macro '" + c.name + "'>");
      } else if (c.kind == Callable::Kind::kMethod && !c.bound.empty()) {
        out->append("<built-in method " + c.name + " of " + std::string(TypeName(c.bound[0])) + " object>");
      } else {
        out->append("<function " + c.name + ">");
      }
      return;
    }
    case Value::Kind::kLoop: {
      const LoopState& loop = v.loop();
      out->append("<LoopContext " + std::to_string(loop.index0 + 1) + "/" +
                  std::to_string(loop.items.items().size()) + ">");
      return;
    }
  }
}

void AppendPyRepr(const Value& v, std::string* out) { AppendRepr(v, out, 0); }

std::string PyStr(const Value& v) {
  if (v.is_string()) return v.str();
  std::string out;
  AppendPyStr(v, &out);
  return out;
}

std::string PyRepr(const Value& v) {
  std::string out;
  AppendRepr(v, &out, 0);
  return out;
}

}  // namespace lserve::jinja
