#include "tokenizer/jinja_parser.h"

#include <algorithm>
#include <string_view>

#include "tokenizer/jinja_builtins.h"
#include "tokenizer/jinja_symbols.h"

namespace lserve::jinja {
namespace {

bool IsOp(const Token& t, std::string_view op) { return t.type == TokenType::kOperator && t.text == op; }
bool IsName(const Token& t, std::string_view name) { return t.type == TokenType::kName && t.text == name; }

std::string Describe(const Token& t) {
  switch (t.type) {
    case TokenType::kData: return "template data";
    case TokenType::kVariableBegin: return "begin of print statement";
    case TokenType::kVariableEnd: return "end of print statement";
    case TokenType::kBlockBegin: return "begin of statement block";
    case TokenType::kBlockEnd: return "end of statement block";
    case TokenType::kEof: return "end of template";
    case TokenType::kString: return "string";
    case TokenType::kInteger: return "integer";
    case TokenType::kFloat: return "float";
    default: return "'" + t.text + "'";
  }
}

class Parser {
 public:
  Parser(std::vector<Token> tokens, const ParseLimits& limits) : tokens_(std::move(tokens)), limits_(limits) {}

  Result<Body> ParseTemplate() {
    LSERVE_ASSIGN_OR_RETURN(Body body, ParseStatements({}));
    if (Current().type != TokenType::kEof) return Fail("unexpected " + Describe(Current()));
    return body;
  }

 private:
  // ---- token stream ----
  const Token& Current() const { return tokens_[pos_]; }
  const Token& Look() const { return tokens_[std::min(pos_ + 1, tokens_.size() - 1)]; }
  void Next() {
    if (pos_ + 1 < tokens_.size()) ++pos_;
  }
  bool SkipOp(std::string_view op) {
    if (!IsOp(Current(), op)) return false;
    Next();
    return true;
  }
  bool SkipName(std::string_view name) {
    if (!IsName(Current(), name)) return false;
    Next();
    return true;
  }
  Status Fail(const std::string& message) const {
    return InvalidArgument("chat template syntax error (line " + std::to_string(Current().line) + "): " + message);
  }
  Status ExpectOp(std::string_view op) {
    if (SkipOp(op)) return Status::Ok();
    return Fail("expected '" + std::string(op) + "', got " + Describe(Current()));
  }
  Status ExpectType(TokenType type, const char* what) {
    if (Current().type == type) {
      Next();
      return Status::Ok();
    }
    return Fail(std::string("expected ") + what + ", got " + Describe(Current()));
  }
  Result<std::string> ExpectName() {
    if (Current().type != TokenType::kName) return Fail("expected a name, got " + Describe(Current()));
    std::string name = Current().text;
    Next();
    return name;
  }

  // Recursion guard for nested blocks and expressions.
  class DepthGuard {
   public:
    explicit DepthGuard(Parser* p) : p_(p) { ++p_->depth_; }
    ~DepthGuard() { --p_->depth_; }
    DepthGuard(const DepthGuard&) = delete;
    DepthGuard& operator=(const DepthGuard&) = delete;

   private:
    Parser* p_;
  };
  Status CheckDepth() const {
    if (depth_ > limits_.max_nesting) return Fail("template nested too deeply");
    return Status::Ok();
  }

  ExprPtr NewExpr(ExprKind kind, int line) {
    auto e = std::make_unique<Expr>();
    e->kind = kind;
    e->line = line;
    return e;
  }

  // Sets e->height from its children; fails past the nesting limit.
  Result<ExprPtr> Finish(ExprPtr e) {
    int h = 0;
    auto add = [&h](const ExprPtr& child) {
      if (child) h = std::max(h, child->height);
    };
    for (const ExprPtr& child : e->operands) add(child);
    for (const ExprPtr& child : e->args.positional) add(child);
    for (const auto& kw : e->args.keywords) add(kw.second);
    add(e->args.star_args);
    add(e->args.star_kwargs);
    e->height = h + 1;
    if (e->height > limits_.max_nesting) return Fail("expression nested too deeply");
    return e;
  }

  // ---- statements ----
  // Parses until one of `end_names` follows a "{%" (left unconsumed: the
  // current token is then that name) or the end of input.
  Result<Body> ParseStatements(std::initializer_list<std::string_view> end_names) {
    DepthGuard guard(this);
    LSERVE_RETURN_IF_ERROR(CheckDepth());
    Body body;
    while (true) {
      const Token& t = Current();
      if (t.type == TokenType::kEof) {
        if (end_names.size() != 0) {
          return Fail("unexpected end of template, expected '" + std::string(*end_names.begin()) + "'");
        }
        return body;
      }
      if (t.type == TokenType::kData) {
        auto s = std::make_unique<Stmt>();
        s->kind = StmtKind::kData;
        s->line = t.line;
        s->text = t.text;
        body.push_back(std::move(s));
        Next();
        continue;
      }
      if (t.type == TokenType::kVariableBegin) {
        int line = t.line;
        Next();
        LSERVE_ASSIGN_OR_RETURN(ExprPtr e, ParseTuple(false, true, {}, false));
        LSERVE_RETURN_IF_ERROR(ExpectType(TokenType::kVariableEnd, "end of print statement"));
        auto s = std::make_unique<Stmt>();
        s->kind = StmtKind::kPrint;
        s->line = line;
        s->expr = std::move(e);
        body.push_back(std::move(s));
        continue;
      }
      if (t.type != TokenType::kBlockBegin) return Fail("unexpected " + Describe(t));
      Next();
      for (std::string_view end : end_names) {
        if (IsName(Current(), end)) return body;
      }
      LSERVE_ASSIGN_OR_RETURN(StmtPtr stmt, ParseStatement());
      body.push_back(std::move(stmt));
    }
  }

  // Consumes "name %}" closing a block statement.
  Status EndBlock(std::string_view name) {
    if (!SkipName(name)) return Fail("expected '" + std::string(name) + "'");
    return ExpectType(TokenType::kBlockEnd, "end of statement block");
  }

  Result<StmtPtr> ParseStatement() {
    const Token& t = Current();
    if (t.type != TokenType::kName) return Fail("tag name expected");
    const std::string keyword = t.text;
    auto s = std::make_unique<Stmt>();
    s->line = t.line;
    Next();
    if (keyword == "if") {
      LSERVE_RETURN_IF_ERROR(ParseIf(s.get()));
    } else if (keyword == "for") {
      LSERVE_RETURN_IF_ERROR(ParseFor(s.get()));
    } else if (keyword == "set") {
      LSERVE_RETURN_IF_ERROR(ParseSet(s.get()));
    } else if (keyword == "macro") {
      LSERVE_RETURN_IF_ERROR(ParseMacro(s.get()));
    } else if (keyword == "call") {
      LSERVE_RETURN_IF_ERROR(ParseCallBlock(s.get()));
    } else if (keyword == "filter") {
      s->kind = StmtKind::kFilterBlock;
      LSERVE_ASSIGN_OR_RETURN(s->expr, ParseFilter(nullptr, true));
      LSERVE_RETURN_IF_ERROR(ExpectType(TokenType::kBlockEnd, "end of statement block"));
      LSERVE_ASSIGN_OR_RETURN(s->body, ParseStatements({"endfilter"}));
      LSERVE_RETURN_IF_ERROR(EndBlock("endfilter"));
    } else if (keyword == "with") {
      LSERVE_RETURN_IF_ERROR(ParseWith(s.get()));
    } else if (keyword == "generation") {
      s->kind = StmtKind::kScope;
      LSERVE_RETURN_IF_ERROR(ExpectType(TokenType::kBlockEnd, "end of statement block"));
      LSERVE_ASSIGN_OR_RETURN(s->body, ParseStatements({"endgeneration"}));
      LSERVE_RETURN_IF_ERROR(EndBlock("endgeneration"));
    } else if (keyword == "break" || keyword == "continue") {
      if (loop_depth_ == 0) return Fail("'" + keyword + "' outside of a loop");
      s->kind = keyword == "break" ? StmtKind::kBreak : StmtKind::kContinue;
      LSERVE_RETURN_IF_ERROR(ExpectType(TokenType::kBlockEnd, "end of statement block"));
    } else if (keyword == "include" || keyword == "import" || keyword == "from" || keyword == "extends" ||
               keyword == "block") {
      return Fail("'" + keyword + "' is not available to chat templates (there is no template loader)");
    } else {
      return Fail("Encountered unknown tag '" + keyword + "'");
    }
    return s;
  }

  Status ParseIf(Stmt* s) {
    s->kind = StmtKind::kIf;
    while (true) {
      IfBranch branch;
      LSERVE_ASSIGN_OR_RETURN(branch.test, ParseTuple(false, false, {}, false));
      LSERVE_RETURN_IF_ERROR(ExpectType(TokenType::kBlockEnd, "end of statement block"));
      LSERVE_ASSIGN_OR_RETURN(branch.body, ParseStatements({"elif", "else", "endif"}));
      s->branches.push_back(std::move(branch));
      std::string which = Current().text;
      Next();
      if (which == "elif") continue;
      if (which == "else") {
        LSERVE_RETURN_IF_ERROR(ExpectType(TokenType::kBlockEnd, "end of statement block"));
        LSERVE_ASSIGN_OR_RETURN(s->else_body, ParseStatements({"endif"}));
        Next();
      }
      return ExpectType(TokenType::kBlockEnd, "end of statement block");
    }
  }

  Status ParseFor(Stmt* s) {
    s->kind = StmtKind::kFor;
    LSERVE_ASSIGN_OR_RETURN(s->target, ParseAssignTarget(false, {"in"}));
    if (!SkipName("in")) return Fail("expected 'in'");
    LSERVE_ASSIGN_OR_RETURN(s->expr, ParseTuple(false, false, {"recursive"}, false));
    if (SkipName("if")) {
      LSERVE_ASSIGN_OR_RETURN(s->loop_filter, ParseExpression(true));
    }
    if (SkipName("recursive")) return Fail("recursive for loops are not supported");
    LSERVE_RETURN_IF_ERROR(ExpectType(TokenType::kBlockEnd, "end of statement block"));
    ++loop_depth_;
    Result<Body> body = ParseStatements({"endfor", "else"});
    --loop_depth_;
    if (!body.ok()) return body.status();
    s->body = std::move(body).value();
    std::string which = Current().text;
    Next();
    if (which == "else") {
      LSERVE_RETURN_IF_ERROR(ExpectType(TokenType::kBlockEnd, "end of statement block"));
      int saved = loop_depth_;
      loop_depth_ = 0;  // break/continue in a for-else belong to no loop
      Result<Body> else_body = ParseStatements({"endfor"});
      loop_depth_ = saved;
      if (!else_body.ok()) return else_body.status();
      s->else_body = std::move(else_body).value();
      Next();
    }
    return ExpectType(TokenType::kBlockEnd, "end of statement block");
  }

  Status ParseSet(Stmt* s) {
    LSERVE_ASSIGN_OR_RETURN(s->target, ParseAssignTarget(true, {}));
    if (SkipOp("=")) {
      s->kind = StmtKind::kSet;
      LSERVE_ASSIGN_OR_RETURN(s->expr, ParseTuple(false, true, {}, false));
      return ExpectType(TokenType::kBlockEnd, "end of statement block");
    }
    s->kind = StmtKind::kSetBlock;
    if (IsOp(Current(), "|")) {
      LSERVE_ASSIGN_OR_RETURN(s->expr, ParseFilter(nullptr, false));
    }
    LSERVE_RETURN_IF_ERROR(ExpectType(TokenType::kBlockEnd, "end of statement block"));
    LSERVE_ASSIGN_OR_RETURN(s->body, ParseStatements({"endset"}));
    return EndBlock("endset");
  }

  // "(a, b=1)" of a macro or of a call block's caller.
  Status ParseSignature(MacroNode* macro) {
    LSERVE_RETURN_IF_ERROR(ExpectOp("("));
    while (!IsOp(Current(), ")")) {
      if (!macro->params.empty()) LSERVE_RETURN_IF_ERROR(ExpectOp(","));
      LSERVE_ASSIGN_OR_RETURN(std::string name, ExpectName());
      ExprPtr def;
      if (SkipOp("=")) {
        LSERVE_ASSIGN_OR_RETURN(def, ParseExpression(true));
      } else if (!macro->defaults.empty() && macro->defaults.back() != nullptr) {
        return Fail("non-default argument follows default argument");
      }
      macro->params.push_back(std::move(name));
      macro->defaults.push_back(std::move(def));
    }
    return ExpectOp(")");
  }

  Status ParseMacroBody(MacroNode* macro, std::string_view end_name) {
    int saved = loop_depth_;
    loop_depth_ = 0;
    Result<Body> body = ParseStatements({end_name});
    loop_depth_ = saved;
    if (!body.ok()) return body.status();
    macro->body = std::move(body).value();
    return EndBlock(end_name);
  }

  Status ParseMacro(Stmt* s) {
    s->kind = StmtKind::kMacro;
    s->macro = std::make_unique<MacroNode>();
    s->macro->line = s->line;
    LSERVE_ASSIGN_OR_RETURN(s->macro->name, ExpectName());
    LSERVE_RETURN_IF_ERROR(ParseSignature(s->macro.get()));
    LSERVE_RETURN_IF_ERROR(ExpectType(TokenType::kBlockEnd, "end of statement block"));
    return ParseMacroBody(s->macro.get(), "endmacro");
  }

  Status ParseCallBlock(Stmt* s) {
    s->kind = StmtKind::kCallBlock;
    s->macro = std::make_unique<MacroNode>();
    s->macro->name = "caller";
    s->macro->line = s->line;
    if (IsOp(Current(), "(")) LSERVE_RETURN_IF_ERROR(ParseSignature(s->macro.get()));
    LSERVE_ASSIGN_OR_RETURN(s->expr, ParseExpression(true));
    if (s->expr->kind != ExprKind::kCall) return Fail("expected call");
    LSERVE_RETURN_IF_ERROR(ExpectType(TokenType::kBlockEnd, "end of statement block"));
    return ParseMacroBody(s->macro.get(), "endcall");
  }

  Status ParseWith(Stmt* s) {
    s->kind = StmtKind::kWith;
    while (Current().type != TokenType::kBlockEnd) {
      if (!s->assignments.empty()) LSERVE_RETURN_IF_ERROR(ExpectOp(","));
      LSERVE_ASSIGN_OR_RETURN(ExprPtr target, ParseAssignTarget(false, {}));
      LSERVE_RETURN_IF_ERROR(ExpectOp("="));
      LSERVE_ASSIGN_OR_RETURN(ExprPtr value, ParseExpression(true));
      s->assignments.emplace_back(std::move(target), std::move(value));
    }
    Next();
    LSERVE_ASSIGN_OR_RETURN(s->body, ParseStatements({"endwith"}));
    return EndBlock("endwith");
  }

  // A name, a tuple of names (for/set unpacking) or, for set, ns.attr.
  Result<ExprPtr> ParseAssignTarget(bool with_namespace, std::initializer_list<std::string_view> extra_end) {
    if (with_namespace && Current().type == TokenType::kName && IsOp(Look(), ".")) {
      auto ns = NewExpr(ExprKind::kName, Current().line);
      ns->name = Current().text;
      Next();
      Next();
      auto attr = NewExpr(ExprKind::kGetAttr, ns->line);
      LSERVE_ASSIGN_OR_RETURN(attr->name, ExpectName());
      attr->operands.push_back(std::move(ns));
      return Finish(std::move(attr));
    }
    LSERVE_ASSIGN_OR_RETURN(ExprPtr target, ParseTuple(true, false, extra_end, false));
    LSERVE_RETURN_IF_ERROR(CheckAssignable(*target));
    return target;
  }

  Status CheckAssignable(const Expr& e) const {
    if (e.kind == ExprKind::kName) {
      if (e.name == "true" || e.name == "false" || e.name == "none" || e.name == "True" || e.name == "False" ||
          e.name == "None") {
        return Fail("Can't assign to " + e.name);
      }
      return Status::Ok();
    }
    if (e.kind == ExprKind::kTuple) {
      for (const ExprPtr& item : e.operands) LSERVE_RETURN_IF_ERROR(CheckAssignable(*item));
      return Status::Ok();
    }
    return Fail("can't assign to this expression");
  }

  // ---- expressions ----
  bool IsTupleEnd(std::initializer_list<std::string_view> extra_end) const {
    const Token& t = Current();
    if (t.type == TokenType::kVariableEnd || t.type == TokenType::kBlockEnd || IsOp(t, ")")) return true;
    for (std::string_view name : extra_end) {
      if (IsName(t, name)) return true;
    }
    return false;
  }

  Result<ExprPtr> ParseTuple(bool simplified, bool with_condexpr, std::initializer_list<std::string_view> extra_end,
                             bool explicit_parentheses) {
    int line = Current().line;
    std::vector<ExprPtr> items;
    bool is_tuple = false;
    while (true) {
      if (!items.empty()) LSERVE_RETURN_IF_ERROR(ExpectOp(","));
      if (IsTupleEnd(extra_end)) break;
      ExprPtr item;
      if (simplified) {
        LSERVE_ASSIGN_OR_RETURN(item, ParsePrimary());
      } else {
        LSERVE_ASSIGN_OR_RETURN(item, ParseExpression(with_condexpr));
      }
      items.push_back(std::move(item));
      if (IsOp(Current(), ",")) {
        is_tuple = true;
      } else {
        break;
      }
    }
    if (!is_tuple) {
      if (!items.empty()) return std::move(items[0]);
      if (!explicit_parentheses) return Fail("Expected an expression, got " + Describe(Current()));
    }
    auto tuple = NewExpr(ExprKind::kTuple, line);
    tuple->operands = std::move(items);
    return Finish(std::move(tuple));
  }

  Result<ExprPtr> ParseExpression(bool with_condexpr) {
    DepthGuard guard(this);
    LSERVE_RETURN_IF_ERROR(CheckDepth());
    if (with_condexpr) return ParseCondExpr();
    return ParseOr();
  }

  Result<ExprPtr> ParseCondExpr() {
    int line = Current().line;
    LSERVE_ASSIGN_OR_RETURN(ExprPtr expr1, ParseOr());
    while (IsName(Current(), "if")) {
      Next();
      auto cond = NewExpr(ExprKind::kCondExpr, line);
      LSERVE_ASSIGN_OR_RETURN(ExprPtr test, ParseOr());
      ExprPtr expr2;
      if (SkipName("else")) {
        LSERVE_ASSIGN_OR_RETURN(expr2, ParseCondExpr());
      }
      cond->operands.push_back(std::move(test));
      cond->operands.push_back(std::move(expr1));
      cond->operands.push_back(std::move(expr2));
      LSERVE_ASSIGN_OR_RETURN(expr1, Finish(std::move(cond)));
    }
    return expr1;
  }

  Result<ExprPtr> MakeBinaryNode(ExprKind kind, int line, ExprPtr left, ExprPtr right,
                                 BinaryOp op = BinaryOp::kAdd) {
    auto node = NewExpr(kind, line);
    node->binary_op = op;
    node->operands.push_back(std::move(left));
    node->operands.push_back(std::move(right));
    return Finish(std::move(node));
  }

  Result<ExprPtr> ParseOr() {
    LSERVE_ASSIGN_OR_RETURN(ExprPtr left, ParseAnd());
    while (IsName(Current(), "or")) {
      int line = Current().line;
      Next();
      LSERVE_ASSIGN_OR_RETURN(ExprPtr right, ParseAnd());
      LSERVE_ASSIGN_OR_RETURN(left, MakeBinaryNode(ExprKind::kOr, line, std::move(left), std::move(right)));
    }
    return left;
  }

  Result<ExprPtr> ParseAnd() {
    LSERVE_ASSIGN_OR_RETURN(ExprPtr left, ParseNot());
    while (IsName(Current(), "and")) {
      int line = Current().line;
      Next();
      LSERVE_ASSIGN_OR_RETURN(ExprPtr right, ParseNot());
      LSERVE_ASSIGN_OR_RETURN(left, MakeBinaryNode(ExprKind::kAnd, line, std::move(left), std::move(right)));
    }
    return left;
  }

  Result<ExprPtr> ParseNot() {
    if (IsName(Current(), "not")) {
      DepthGuard guard(this);
      LSERVE_RETURN_IF_ERROR(CheckDepth());
      int line = Current().line;
      Next();
      auto node = NewExpr(ExprKind::kNot, line);
      LSERVE_ASSIGN_OR_RETURN(ExprPtr operand, ParseNot());
      node->operands.push_back(std::move(operand));
      return Finish(std::move(node));
    }
    return ParseCompare();
  }

  Result<ExprPtr> ParseCompare() {
    int line = Current().line;
    LSERVE_ASSIGN_OR_RETURN(ExprPtr expr, ParseMath1());
    ExprPtr cmp;
    while (true) {
      const Token& t = Current();
      CompareOp op;
      if (IsOp(t, "==")) {
        op = CompareOp::kEq;
      } else if (IsOp(t, "!=")) {
        op = CompareOp::kNe;
      } else if (IsOp(t, "<")) {
        op = CompareOp::kLt;
      } else if (IsOp(t, "<=")) {
        op = CompareOp::kLe;
      } else if (IsOp(t, ">")) {
        op = CompareOp::kGt;
      } else if (IsOp(t, ">=")) {
        op = CompareOp::kGe;
      } else if (IsName(t, "in")) {
        op = CompareOp::kIn;
      } else if (IsName(t, "not") && IsName(Look(), "in")) {
        Next();
        op = CompareOp::kNotIn;
      } else {
        break;
      }
      Next();
      if (!cmp) {
        cmp = NewExpr(ExprKind::kCompare, line);
        cmp->operands.push_back(std::move(expr));
      }
      LSERVE_ASSIGN_OR_RETURN(ExprPtr right, ParseMath1());
      cmp->operands.push_back(std::move(right));
      cmp->compare_ops.push_back(op);
    }
    if (!cmp) return expr;
    return Finish(std::move(cmp));
  }

  Result<ExprPtr> ParseMath1() {
    LSERVE_ASSIGN_OR_RETURN(ExprPtr left, ParseConcat());
    while (IsOp(Current(), "+") || IsOp(Current(), "-")) {
      BinaryOp op = Current().text == "+" ? BinaryOp::kAdd : BinaryOp::kSub;
      int line = Current().line;
      Next();
      LSERVE_ASSIGN_OR_RETURN(ExprPtr right, ParseConcat());
      LSERVE_ASSIGN_OR_RETURN(left, MakeBinaryNode(ExprKind::kBinary, line, std::move(left), std::move(right), op));
    }
    return left;
  }

  Result<ExprPtr> ParseConcat() {
    int line = Current().line;
    LSERVE_ASSIGN_OR_RETURN(ExprPtr first, ParseMath2());
    if (!IsOp(Current(), "~")) return first;
    auto node = NewExpr(ExprKind::kConcat, line);
    node->operands.push_back(std::move(first));
    while (SkipOp("~")) {
      LSERVE_ASSIGN_OR_RETURN(ExprPtr next, ParseMath2());
      node->operands.push_back(std::move(next));
    }
    return Finish(std::move(node));
  }

  Result<ExprPtr> ParseMath2() {
    LSERVE_ASSIGN_OR_RETURN(ExprPtr left, ParsePow());
    while (true) {
      const Token& t = Current();
      BinaryOp op;
      if (IsOp(t, "*")) {
        op = BinaryOp::kMul;
      } else if (IsOp(t, "/")) {
        op = BinaryOp::kDiv;
      } else if (IsOp(t, "//")) {
        op = BinaryOp::kFloorDiv;
      } else if (IsOp(t, "%")) {
        op = BinaryOp::kMod;
      } else {
        break;
      }
      int line = t.line;
      Next();
      LSERVE_ASSIGN_OR_RETURN(ExprPtr right, ParsePow());
      LSERVE_ASSIGN_OR_RETURN(left, MakeBinaryNode(ExprKind::kBinary, line, std::move(left), std::move(right), op));
    }
    return left;
  }

  Result<ExprPtr> ParsePow() {
    LSERVE_ASSIGN_OR_RETURN(ExprPtr left, ParseUnary(true));
    while (IsOp(Current(), "**")) {
      int line = Current().line;
      Next();
      LSERVE_ASSIGN_OR_RETURN(ExprPtr right, ParseUnary(true));
      LSERVE_ASSIGN_OR_RETURN(
          left, MakeBinaryNode(ExprKind::kBinary, line, std::move(left), std::move(right), BinaryOp::kPow));
    }
    return left;
  }

  Result<ExprPtr> ParseUnary(bool with_filter) {
    DepthGuard guard(this);
    LSERVE_RETURN_IF_ERROR(CheckDepth());
    int line = Current().line;
    ExprPtr node;
    if (IsOp(Current(), "-") || IsOp(Current(), "+")) {
      ExprKind kind = Current().text == "-" ? ExprKind::kNeg : ExprKind::kPos;
      Next();
      node = NewExpr(kind, line);
      LSERVE_ASSIGN_OR_RETURN(ExprPtr operand, ParseUnary(false));
      node->operands.push_back(std::move(operand));
      LSERVE_ASSIGN_OR_RETURN(node, Finish(std::move(node)));
    } else {
      LSERVE_ASSIGN_OR_RETURN(node, ParsePrimary());
    }
    LSERVE_ASSIGN_OR_RETURN(node, ParsePostfix(std::move(node)));
    if (with_filter) return ParseFilterExpr(std::move(node));
    return node;
  }

  Result<ExprPtr> ParsePrimary() {
    DepthGuard guard(this);
    LSERVE_RETURN_IF_ERROR(CheckDepth());
    const Token& t = Current();
    int line = t.line;
    if (t.type == TokenType::kName) {
      auto node = NewExpr(ExprKind::kLiteral, line);
      if (t.text == "true" || t.text == "True") {
        node->literal = Value::Bool(true);
      } else if (t.text == "false" || t.text == "False") {
        node->literal = Value::Bool(false);
      } else if (t.text == "none" || t.text == "None") {
        node->literal = Value::None();
      } else {
        node->kind = ExprKind::kName;
        node->name = t.text;
      }
      Next();
      return node;
    }
    if (t.type == TokenType::kString) {
      std::string value = t.text;
      Next();
      while (Current().type == TokenType::kString) {  // adjacent literals concatenate
        value += Current().text;
        Next();
      }
      auto node = NewExpr(ExprKind::kLiteral, line);
      node->literal = Value::String(std::move(value));
      return node;
    }
    if (t.type == TokenType::kInteger || t.type == TokenType::kFloat) {
      auto node = NewExpr(ExprKind::kLiteral, line);
      node->literal = t.type == TokenType::kInteger ? Value::Int(t.int_value) : Value::Float(t.float_value);
      Next();
      return node;
    }
    if (IsOp(t, "(")) {
      Next();
      LSERVE_ASSIGN_OR_RETURN(ExprPtr inner, ParseTuple(false, true, {}, true));
      LSERVE_RETURN_IF_ERROR(ExpectOp(")"));
      return inner;
    }
    if (IsOp(t, "[")) {
      Next();
      auto node = NewExpr(ExprKind::kList, line);
      while (!IsOp(Current(), "]")) {
        if (!node->operands.empty()) LSERVE_RETURN_IF_ERROR(ExpectOp(","));
        if (IsOp(Current(), "]")) break;
        LSERVE_ASSIGN_OR_RETURN(ExprPtr item, ParseExpression(true));
        node->operands.push_back(std::move(item));
      }
      LSERVE_RETURN_IF_ERROR(ExpectOp("]"));
      return Finish(std::move(node));
    }
    if (IsOp(t, "{")) {
      Next();
      auto node = NewExpr(ExprKind::kDict, line);
      while (!IsOp(Current(), "}")) {
        if (!node->operands.empty()) LSERVE_RETURN_IF_ERROR(ExpectOp(","));
        if (IsOp(Current(), "}")) break;
        LSERVE_ASSIGN_OR_RETURN(ExprPtr key, ParseExpression(true));
        LSERVE_RETURN_IF_ERROR(ExpectOp(":"));
        LSERVE_ASSIGN_OR_RETURN(ExprPtr value, ParseExpression(true));
        node->operands.push_back(std::move(key));
        node->operands.push_back(std::move(value));
      }
      LSERVE_RETURN_IF_ERROR(ExpectOp("}"));
      return Finish(std::move(node));
    }
    return Fail("unexpected " + Describe(t));
  }

  Result<ExprPtr> ParsePostfix(ExprPtr node) {
    while (true) {
      if (IsOp(Current(), ".") || IsOp(Current(), "[")) {
        LSERVE_ASSIGN_OR_RETURN(node, ParseSubscript(std::move(node)));
      } else if (IsOp(Current(), "(")) {
        LSERVE_ASSIGN_OR_RETURN(node, ParseCall(std::move(node)));
      } else {
        return node;
      }
    }
  }

  Result<ExprPtr> ParseFilterExpr(ExprPtr node) {
    while (true) {
      if (IsOp(Current(), "|")) {
        LSERVE_ASSIGN_OR_RETURN(node, ParseFilter(std::move(node), false));
      } else if (IsName(Current(), "is")) {
        LSERVE_ASSIGN_OR_RETURN(node, ParseTest(std::move(node)));
      } else if (IsOp(Current(), "(")) {
        LSERVE_ASSIGN_OR_RETURN(node, ParseCall(std::move(node)));
      } else {
        return node;
      }
    }
  }

  Result<ExprPtr> ParseSubscript(ExprPtr node) {
    int line = Current().line;
    if (SkipOp(".")) {
      const Token& t = Current();
      if (t.type == TokenType::kName) {
        auto attr = NewExpr(ExprKind::kGetAttr, line);
        attr->name = t.text;
        attr->operands.push_back(std::move(node));
        Next();
        return Finish(std::move(attr));
      }
      if (t.type == TokenType::kInteger) {
        auto item = NewExpr(ExprKind::kGetItem, line);
        auto key = NewExpr(ExprKind::kLiteral, line);
        key->literal = Value::Int(t.int_value);
        item->operands.push_back(std::move(node));
        item->operands.push_back(std::move(key));
        Next();
        return Finish(std::move(item));
      }
      return Fail("expected name or number");
    }
    LSERVE_RETURN_IF_ERROR(ExpectOp("["));
    std::vector<ExprPtr> keys;
    while (!IsOp(Current(), "]")) {
      if (!keys.empty()) LSERVE_RETURN_IF_ERROR(ExpectOp(","));
      LSERVE_ASSIGN_OR_RETURN(ExprPtr key, ParseSubscribed());
      keys.push_back(std::move(key));
    }
    LSERVE_RETURN_IF_ERROR(ExpectOp("]"));
    auto item = NewExpr(ExprKind::kGetItem, line);
    item->operands.push_back(std::move(node));
    if (keys.size() == 1) {
      item->operands.push_back(std::move(keys[0]));
    } else {
      auto tuple = NewExpr(ExprKind::kTuple, line);
      tuple->operands = std::move(keys);
      LSERVE_ASSIGN_OR_RETURN(tuple, Finish(std::move(tuple)));
      item->operands.push_back(std::move(tuple));
    }
    return Finish(std::move(item));
  }

  // One subscript: an expression or a slice a:b:c with optional parts.
  Result<ExprPtr> ParseSubscribed() {
    int line = Current().line;
    std::vector<ExprPtr> parts;
    if (IsOp(Current(), ":")) {
      Next();
      parts.push_back(nullptr);
    } else {
      LSERVE_ASSIGN_OR_RETURN(ExprPtr node, ParseExpression(true));
      if (!IsOp(Current(), ":")) return node;
      Next();
      parts.push_back(std::move(node));
    }
    auto slice_part_ends = [this] { return IsOp(Current(), "]") || IsOp(Current(), ","); };
    if (IsOp(Current(), ":")) {
      parts.push_back(nullptr);
    } else if (!slice_part_ends()) {
      LSERVE_ASSIGN_OR_RETURN(ExprPtr stop, ParseExpression(true));
      parts.push_back(std::move(stop));
    } else {
      parts.push_back(nullptr);
    }
    if (SkipOp(":")) {
      if (!slice_part_ends()) {
        LSERVE_ASSIGN_OR_RETURN(ExprPtr step, ParseExpression(true));
        parts.push_back(std::move(step));
      } else {
        parts.push_back(nullptr);
      }
    } else {
      parts.push_back(nullptr);
    }
    auto slice = NewExpr(ExprKind::kSlice, line);
    slice->operands = std::move(parts);
    return Finish(std::move(slice));
  }

  Status ParseCallArgs(CallArgsNode* args) {
    LSERVE_RETURN_IF_ERROR(ExpectOp("("));
    bool require_comma = false;
    while (!IsOp(Current(), ")")) {
      if (require_comma) {
        LSERVE_RETURN_IF_ERROR(ExpectOp(","));
        if (IsOp(Current(), ")")) break;
      }
      if (IsOp(Current(), "*")) {
        if (args->star_args || args->star_kwargs) return Fail("invalid syntax for function call expression");
        Next();
        LSERVE_ASSIGN_OR_RETURN(args->star_args, ParseExpression(true));
      } else if (IsOp(Current(), "**")) {
        if (args->star_kwargs) return Fail("invalid syntax for function call expression");
        Next();
        LSERVE_ASSIGN_OR_RETURN(args->star_kwargs, ParseExpression(true));
      } else if (Current().type == TokenType::kName && IsOp(Look(), "=")) {
        if (args->star_kwargs) return Fail("invalid syntax for function call expression");
        std::string key = Current().text;
        Next();
        Next();
        LSERVE_ASSIGN_OR_RETURN(ExprPtr value, ParseExpression(true));
        args->keywords.emplace_back(std::move(key), std::move(value));
      } else {
        if (args->star_args || args->star_kwargs || !args->keywords.empty()) {
          return Fail("invalid syntax for function call expression");
        }
        LSERVE_ASSIGN_OR_RETURN(ExprPtr value, ParseExpression(true));
        args->positional.push_back(std::move(value));
      }
      require_comma = true;
    }
    return ExpectOp(")");
  }

  Result<ExprPtr> ParseCall(ExprPtr node) {
    auto call = NewExpr(ExprKind::kCall, Current().line);
    call->operands.push_back(std::move(node));
    LSERVE_RETURN_IF_ERROR(ParseCallArgs(&call->args));
    return Finish(std::move(call));
  }

  Result<std::string> ParseDottedName() {
    LSERVE_ASSIGN_OR_RETURN(std::string name, ExpectName());
    while (IsOp(Current(), ".")) {
      Next();
      LSERVE_ASSIGN_OR_RETURN(std::string part, ExpectName());
      name += "." + part;
    }
    return name;
  }

  // "| f(args) | g" after `node` (null inside filter and set blocks); with
  // start_inline the first filter has no leading "|".
  Result<ExprPtr> ParseFilter(ExprPtr node, bool start_inline) {
    while (IsOp(Current(), "|") || start_inline) {
      if (!start_inline) Next();
      start_inline = false;
      auto filter = NewExpr(ExprKind::kFilter, Current().line);
      LSERVE_ASSIGN_OR_RETURN(filter->name, ParseDottedName());
      filter->unknown_callee = !IsKnownFilter(filter->name);
      if (IsOp(Current(), "(")) LSERVE_RETURN_IF_ERROR(ParseCallArgs(&filter->args));
      filter->operands.push_back(std::move(node));
      LSERVE_ASSIGN_OR_RETURN(node, Finish(std::move(filter)));
    }
    return node;
  }

  Result<ExprPtr> ParseTest(ExprPtr node) {
    int line = Current().line;
    Next();  // "is"
    bool negated = SkipName("not");
    auto test = NewExpr(ExprKind::kTest, line);
    LSERVE_ASSIGN_OR_RETURN(test->name, ParseDottedName());
    test->unknown_callee = !IsKnownTest(test->name);
    const Token& t = Current();
    if (IsOp(t, "(")) {
      LSERVE_RETURN_IF_ERROR(ParseCallArgs(&test->args));
    } else if ((t.type == TokenType::kName || t.type == TokenType::kString || t.type == TokenType::kInteger ||
                t.type == TokenType::kFloat || IsOp(t, "[") || IsOp(t, "{")) &&
               !IsName(t, "else") && !IsName(t, "or") && !IsName(t, "and")) {
      if (IsName(t, "is")) return Fail("You cannot chain multiple tests with is");
      LSERVE_ASSIGN_OR_RETURN(ExprPtr arg, ParsePrimary());
      LSERVE_ASSIGN_OR_RETURN(arg, ParsePostfix(std::move(arg)));
      test->args.positional.push_back(std::move(arg));
    }
    test->operands.push_back(std::move(node));
    LSERVE_ASSIGN_OR_RETURN(ExprPtr result, Finish(std::move(test)));
    if (!negated) return result;
    auto not_node = NewExpr(ExprKind::kNot, line);
    not_node->operands.push_back(std::move(result));
    return Finish(std::move(not_node));
  }

  std::vector<Token> tokens_;
  ParseLimits limits_;
  size_t pos_ = 0;
  int depth_ = 0;
  int loop_depth_ = 0;
};

// jinja2 rejects an unknown filter or test when it compiles the template,
// except inside a "soft frame" (the test and bodies of an if statement, all
// parts of a conditional expression), where the failure waits until the
// code runs. Blocks with their own frame (for bodies, macros, call, filter
// and set blocks, with) are not soft even inside an if.
class CalleeChecker {
 public:
  Status CheckBody(const Body& body, bool soft) {
    for (const StmtPtr& s : body) LSERVE_RETURN_IF_ERROR(CheckStmt(*s, soft));
    return Status::Ok();
  }

 private:
  Status CheckExpr(const Expr* e, bool soft) {
    if (e == nullptr) return Status::Ok();
    if (e->unknown_callee && !soft) {
      const char* what = e->kind == ExprKind::kFilter ? "filter" : "test";
      return InvalidArgument("chat template syntax error (line " + std::to_string(e->line) + "): No " + what +
                             " named '" + e->name + "'.");
    }
    bool inner_soft = soft || e->kind == ExprKind::kCondExpr;
    for (const ExprPtr& child : e->operands) LSERVE_RETURN_IF_ERROR(CheckExpr(child.get(), inner_soft));
    for (const ExprPtr& child : e->args.positional) LSERVE_RETURN_IF_ERROR(CheckExpr(child.get(), inner_soft));
    for (const auto& kw : e->args.keywords) LSERVE_RETURN_IF_ERROR(CheckExpr(kw.second.get(), inner_soft));
    LSERVE_RETURN_IF_ERROR(CheckExpr(e->args.star_args.get(), inner_soft));
    return CheckExpr(e->args.star_kwargs.get(), inner_soft);
  }

  Status CheckMacro(const MacroNode& m) {
    for (const ExprPtr& d : m.defaults) LSERVE_RETURN_IF_ERROR(CheckExpr(d.get(), false));
    return CheckBody(m.body, false);
  }

  Status CheckStmt(const Stmt& s, bool soft) {
    switch (s.kind) {
      case StmtKind::kIf:
        for (const IfBranch& b : s.branches) {
          LSERVE_RETURN_IF_ERROR(CheckExpr(b.test.get(), true));
          LSERVE_RETURN_IF_ERROR(CheckBody(b.body, true));
        }
        return CheckBody(s.else_body, true);
      case StmtKind::kFor:
        LSERVE_RETURN_IF_ERROR(CheckExpr(s.expr.get(), soft));
        LSERVE_RETURN_IF_ERROR(CheckExpr(s.loop_filter.get(), false));
        LSERVE_RETURN_IF_ERROR(CheckBody(s.body, false));
        return CheckBody(s.else_body, false);
      case StmtKind::kMacro: return CheckMacro(*s.macro);
      case StmtKind::kCallBlock:
        LSERVE_RETURN_IF_ERROR(CheckExpr(s.expr.get(), soft));
        return CheckMacro(*s.macro);
      case StmtKind::kSetBlock:
      case StmtKind::kFilterBlock:
        LSERVE_RETURN_IF_ERROR(CheckExpr(s.expr.get(), false));
        return CheckBody(s.body, false);
      case StmtKind::kWith:
        for (const auto& a : s.assignments) LSERVE_RETURN_IF_ERROR(CheckExpr(a.second.get(), soft));
        return CheckBody(s.body, false);
      case StmtKind::kScope: return CheckBody(s.body, false);
      default: return CheckExpr(s.expr.get(), soft);
    }
  }
};

}  // namespace

Result<ParsedTemplate> Parse(std::vector<Token> tokens, const ParseLimits& limits) {
  if (tokens.empty() || tokens.back().type != TokenType::kEof) {
    Token eof;
    eof.type = TokenType::kEof;
    tokens.push_back(std::move(eof));
  }
  Parser parser(std::move(tokens), limits);
  LSERVE_ASSIGN_OR_RETURN(Body body, parser.ParseTemplate());
  CalleeChecker checker;
  LSERVE_RETURN_IF_ERROR(checker.CheckBody(body, false));
  ParsedTemplate parsed;
  parsed.body = std::move(body);
  AnalyzeSymbols(&parsed);
  return parsed;
}

}  // namespace lserve::jinja
