// Builds the syntax tree from tokens following jinja2's parser.py rule by
// rule (operator precedence, tuple parsing, test arguments without
// parentheses, assignment targets), for the statements chat templates use:
// if/elif/else, for/else (with `if` filter), set (plain, tuple, namespace
// attribute, block), macro, call, filter, with, break/continue and
// transformers' {% generation %}. include/import/extends need a loader,
// which transformers' environment does not have; they are rejected here.
#pragma once

#include <memory>
#include <vector>

#include "core/status.h"
#include "tokenizer/jinja_ast.h"
#include "tokenizer/jinja_lexer.h"

namespace lserve::jinja {

struct ParseLimits {
  int max_nesting = 128;  // blocks inside blocks, expression tree height
};

// Parses and then computes every frame's symbols (jinja_symbols.h).
Result<ParsedTemplate> Parse(std::vector<Token> tokens, const ParseLimits& limits);

}  // namespace lserve::jinja
