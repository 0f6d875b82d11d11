#include "tokenizer/jinja_symbols.h"

#include <algorithm>
#include <map>
#include <set>
#include <string>
#include <vector>

namespace lserve::jinja {

const LoadKind* FrameSymbols::Find(std::string_view name) const {
  auto it = std::lower_bound(names.begin(), names.end(), name,
                             [](const auto& entry, std::string_view key) { return entry.first < key; });
  if (it == names.end() || it->first != name) return nullptr;
  return &it->second;
}

namespace {

// jinja2's Symbols during analysis: refs (with their load instruction) and
// stores of one frame, chained to the enclosing frame's finished table.
struct SymbolTable {
  const SymbolTable* parent = nullptr;
  std::map<std::string, LoadKind> refs;
  std::set<std::string> stores;

  bool FindRef(const std::string& name) const {
    for (const SymbolTable* t = this; t != nullptr; t = t->parent) {
      if (t->refs.count(name) != 0) return true;
    }
    return false;
  }
  void Load(const std::string& name) {
    if (!FindRef(name)) refs[name] = LoadKind::kResolve;
  }
  void Store(const std::string& name) {
    stores.insert(name);
    if (refs.count(name) != 0) return;
    refs[name] = (parent != nullptr && parent->FindRef(name)) ? LoadKind::kAlias : LoadKind::kUndefined;
  }
  void Parameter(const std::string& name) {
    stores.insert(name);
    refs[name] = LoadKind::kParameter;
  }
  // Names assigned in only some branches of an if start from the enclosing
  // frame's variable, or else from the render context.
  void BranchUpdate(const std::vector<SymbolTable>& branches) {
    std::set<std::string> new_stores;
    for (const SymbolTable& b : branches) {
      for (const std::string& name : b.stores) {
        if (stores.count(name) == 0) new_stores.insert(name);
      }
    }
    for (const SymbolTable& b : branches) {
      for (const auto& [name, kind] : b.refs) refs[name] = kind;
      stores.insert(b.stores.begin(), b.stores.end());
    }
    for (const std::string& name : new_stores) {
      refs[name] = (parent != nullptr && parent->FindRef(name)) ? LoadKind::kAlias : LoadKind::kResolve;
    }
  }
  FrameSymbols Finish() const {
    FrameSymbols out;
    out.names.assign(refs.begin(), refs.end());  // std::map iterates sorted
    return out;
  }
};

// A frame nested in the one being analysed; analysed once the enclosing
// frame's table is complete (jinja2 does it when compiling that node).
struct PendingFrame {
  enum class Kind { kForBody, kForElse, kForFilter, kMacro, kBlock, kWith };
  Kind kind;
  Stmt* stmt = nullptr;
  MacroNode* macro = nullptr;
};

class Analyzer {
 public:
  void Frame(const Body& body, SymbolTable* table, std::vector<PendingFrame>* pending) {
    for (const StmtPtr& s : body) Statement(s.get(), table, pending);
  }

  // Analyses the nested frames found while analysing `table`'s frame.
  void Nested(const std::vector<PendingFrame>& pending, const SymbolTable* parent) {
    for (const PendingFrame& f : pending) {
      SymbolTable table;
      table.parent = parent;
      std::vector<PendingFrame> inner;
      switch (f.kind) {
        case PendingFrame::Kind::kForBody:
          Targets(*f.stmt->target, &table);
          table.Parameter("loop");
          Frame(f.stmt->body, &table, &inner);
          Nested(inner, &table);
          f.stmt->body_symbols = table.Finish();
          break;
        case PendingFrame::Kind::kForElse:
          Frame(f.stmt->else_body, &table, &inner);
          Nested(inner, &table);
          f.stmt->else_symbols = table.Finish();
          break;
        case PendingFrame::Kind::kForFilter:
          Targets(*f.stmt->target, &table);
          Expression(f.stmt->loop_filter.get(), &table);
          f.stmt->filter_symbols = table.Finish();
          break;
        case PendingFrame::Kind::kMacro: {
          MacroNode& m = *f.macro;
          for (const std::string& param : m.params) table.Parameter(param);
          for (const char* implicit : {"varargs", "kwargs", "caller"}) table.Parameter(implicit);
          for (const ExprPtr& d : m.defaults) Expression(d.get(), &table);
          Frame(m.body, &table, &inner);
          Nested(inner, &table);
          m.symbols = table.Finish();
          break;
        }
        case PendingFrame::Kind::kWith:
          for (const auto& assignment : f.stmt->assignments) Targets(*assignment.first, &table);
          Frame(f.stmt->body, &table, &inner);
          Nested(inner, &table);
          f.stmt->body_symbols = table.Finish();
          break;
        case PendingFrame::Kind::kBlock:
          Frame(f.stmt->body, &table, &inner);
          Expression(f.stmt->expr.get(), &table);  // filter arguments, after the body as jinja2 visits them
          Nested(inner, &table);
          f.stmt->body_symbols = table.Finish();
          break;
      }
    }
  }

 private:
  void Targets(const Expr& target, SymbolTable* table) {
    if (target.kind == ExprKind::kName) {
      table->Parameter(target.name);
    } else {
      for (const ExprPtr& item : target.operands) Targets(*item, table);
    }
  }

  void StoreTarget(const Expr& target, SymbolTable* table) {
    if (target.kind == ExprKind::kName) {
      table->Store(target.name);
    } else if (target.kind == ExprKind::kGetAttr) {
      table->Load(target.operands[0]->name);  // ns.attr = ... reads ns
    } else {
      for (const ExprPtr& item : target.operands) StoreTarget(*item, table);
    }
  }

  void Expression(const Expr* e, SymbolTable* table) {
    if (e == nullptr) return;
    if (e->kind == ExprKind::kName) {
      table->Load(e->name);
      return;
    }
    for (const ExprPtr& child : e->operands) Expression(child.get(), table);
    for (const ExprPtr& child : e->args.positional) Expression(child.get(), table);
    for (const auto& kw : e->args.keywords) Expression(kw.second.get(), table);
    Expression(e->args.star_args.get(), table);
    Expression(e->args.star_kwargs.get(), table);
  }

  // jinja2 parses "elif" as nested If nodes (test, body) in the elif list.
  void IfChain(Stmt* s, SymbolTable* table, std::vector<PendingFrame>* pending) {
    Expression(s->branches[0].test.get(), table);
    std::vector<SymbolTable> branches(3, *table);
    Frame(s->branches[0].body, &branches[0], pending);
    for (size_t i = 1; i < s->branches.size(); ++i) {
      SymbolTable& elifs = branches[1];
      Expression(s->branches[i].test.get(), &elifs);
      std::vector<SymbolTable> elif_branches(3, elifs);
      Frame(s->branches[i].body, &elif_branches[0], pending);
      elifs.BranchUpdate(elif_branches);
    }
    Frame(s->else_body, &branches[2], pending);
    table->BranchUpdate(branches);
  }

  void Statement(Stmt* s, SymbolTable* table, std::vector<PendingFrame>* pending) {
    switch (s->kind) {
      case StmtKind::kData:
      case StmtKind::kBreak:
      case StmtKind::kContinue: return;
      case StmtKind::kPrint: Expression(s->expr.get(), table); return;
      case StmtKind::kIf: IfChain(s, table, pending); return;
      case StmtKind::kFor:
        Expression(s->expr.get(), table);
        pending->push_back({PendingFrame::Kind::kForBody, s, nullptr});
        pending->push_back({PendingFrame::Kind::kForElse, s, nullptr});
        if (s->loop_filter) pending->push_back({PendingFrame::Kind::kForFilter, s, nullptr});
        return;
      case StmtKind::kSet:
        Expression(s->expr.get(), table);
        StoreTarget(*s->target, table);
        return;
      case StmtKind::kSetBlock:
        StoreTarget(*s->target, table);
        pending->push_back({PendingFrame::Kind::kBlock, s, nullptr});
        return;
      case StmtKind::kMacro:
        table->Store(s->macro->name);
        pending->push_back({PendingFrame::Kind::kMacro, s, s->macro.get()});
        return;
      case StmtKind::kCallBlock:
        Expression(s->expr.get(), table);
        pending->push_back({PendingFrame::Kind::kMacro, s, s->macro.get()});
        return;
      case StmtKind::kFilterBlock:
        Expression(s->expr.get(), table);
        pending->push_back({PendingFrame::Kind::kBlock, s, nullptr});
        return;
      case StmtKind::kWith:
        for (const auto& assignment : s->assignments) Expression(assignment.second.get(), table);
        pending->push_back({PendingFrame::Kind::kWith, s, nullptr});
        return;
      case StmtKind::kScope: pending->push_back({PendingFrame::Kind::kBlock, s, nullptr}); return;
    }
  }
};

}  // namespace

void AnalyzeSymbols(ParsedTemplate* parsed) {
  Analyzer analyzer;
  SymbolTable root;
  std::vector<PendingFrame> pending;
  analyzer.Frame(parsed->body, &root, &pending);
  analyzer.Nested(pending, &root);
  parsed->symbols = root.Finish();
}

}  // namespace lserve::jinja
