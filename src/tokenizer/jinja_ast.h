// Syntax tree of a compiled chat template. Node shapes follow jinja2's
// nodes.py closely enough that each interpreter rule can be checked against
// jinja2's code generator. The tree is immutable once parsed; rendering
// only reads it, so one compiled template serves any number of renders.
#pragma once

#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "tokenizer/jinja_value.h"

namespace lserve::jinja {

struct Expr;
using ExprPtr = std::unique_ptr<Expr>;

enum class ExprKind : uint8_t {
  kLiteral,   // literal
  kName,      // name
  kList,      // operands = items
  kTuple,     // operands = items
  kDict,      // operands = key, value, key, value ...
  kGetAttr,   // operands[0] . name
  kGetItem,   // operands[0] [ operands[1] ]
  kSlice,     // operands = start, stop, step (each may be null); only as a kGetItem key
  kCall,      // operands[0] ( args )
  kFilter,    // operands[0] | name(args); operands[0] is null in filter/set blocks
  kTest,      // operands[0] is name(args)
  kNot,       // operands[0]
  kNeg,       // operands[0]
  kPos,       // operands[0]
  kBinary,    // operands[0] binary_op operands[1]
  kConcat,    // operands joined with ~
  kCompare,   // operands[0] compare_ops[i] operands[i + 1] (chained)
  kAnd,       // operands[0] and operands[1]
  kOr,        // operands[0] or operands[1]
  kCondExpr,  // operands[1] if operands[0] else operands[2] (may be null)
};

enum class BinaryOp : uint8_t { kAdd, kSub, kMul, kDiv, kFloorDiv, kMod, kPow };
enum class CompareOp : uint8_t { kEq, kNe, kLt, kLe, kGt, kGe, kIn, kNotIn };

struct CallArgsNode {
  std::vector<ExprPtr> positional;
  std::vector<std::pair<std::string, ExprPtr>> keywords;
  ExprPtr star_args;    // *args
  ExprPtr star_kwargs;  // **kwargs
};

struct Expr {
  ExprKind kind = ExprKind::kLiteral;
  int line = 0;
  Value literal;
  std::string name;
  BinaryOp binary_op = BinaryOp::kAdd;
  std::vector<ExprPtr> operands;
  std::vector<CompareOp> compare_ops;
  CallArgsNode args;
  int height = 1;  // longest path to a leaf; bounded so evaluation recursion is bounded
  // An unknown filter or test inside a conditional: jinja2 compiles it and
  // fails only if that code runs.
  bool unknown_callee = false;
};

// How a frame's variable is initialised when the frame is entered, as
// jinja2's idtracking.py decides it: parameters are bound by the frame
// (loop targets, macro arguments), kResolve reads the render context,
// kAlias copies the enclosing frame's variable, kUndefined starts unset.
// A name read in a frame resolves to the nearest frame that has it; an
// unset variable reads as Undefined. This reproduces jinja2's scoping: a
// {% set %} in a loop body does not leak out, a macro sees the variables
// of the frame it was defined in as they are when it is called, etc.
enum class LoadKind : uint8_t { kParameter, kResolve, kAlias, kUndefined };

struct FrameSymbols {
  std::vector<std::pair<std::string, LoadKind>> names;  // sorted by name

  const LoadKind* Find(std::string_view name) const;
};

struct Stmt;
using StmtPtr = std::unique_ptr<Stmt>;
using Body = std::vector<StmtPtr>;

enum class StmtKind : uint8_t {
  kData,         // text
  kPrint,        // {{ expr }}
  kIf,           // branches, else_body
  kFor,          // for target in expr [if loop_filter] body [else else_body]
  kSet,          // set target = expr
  kSetBlock,     // set target [| filters (expr)] body endset
  kMacro,        // macro
  kCallBlock,    // call[(macro params)] expr body endcall; the caller is `macro`
  kFilterBlock,  // filter expr body endfilter
  kBreak,
  kContinue,
  kWith,         // with assignments body endwith
  kScope,        // a body rendered in place ({% generation %} of transformers)
};

// A macro definition or the `caller` of a call block.
struct MacroNode {
  std::string name;
  std::vector<std::string> params;
  std::vector<ExprPtr> defaults;  // parallel to params; null where none
  Body body;
  int line = 0;
  FrameSymbols symbols;
};

struct IfBranch {
  ExprPtr test;
  Body body;
};

struct Stmt {
  StmtKind kind = StmtKind::kData;
  int line = 0;
  std::string text;
  ExprPtr expr;
  ExprPtr target;  // kName, kTuple of targets, or kGetAttr of a kName (namespace attribute)
  ExprPtr loop_filter;
  std::vector<IfBranch> branches;
  Body body;
  Body else_body;
  std::unique_ptr<MacroNode> macro;
  std::vector<std::pair<ExprPtr, ExprPtr>> assignments;  // kWith
  FrameSymbols body_symbols;    // kFor body, kWith, kSetBlock, kFilterBlock, kScope
  FrameSymbols else_symbols;    // kFor else
  FrameSymbols filter_symbols;  // kFor `if` filter
};

struct ParsedTemplate {
  Body body;
  FrameSymbols symbols;
};

}  // namespace lserve::jinja
