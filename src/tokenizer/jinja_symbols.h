// Static variable analysis of a parsed template, mirroring jinja2's
// idtracking.py: which names each frame (the template, a loop body, a loop
// `else`, a loop filter, a macro, a call block's caller, a set/filter
// block, a with block) owns, and how each is initialised on entry.
#pragma once

#include "tokenizer/jinja_ast.h"

namespace lserve::jinja {

void AnalyzeSymbols(ParsedTemplate* parsed);

}  // namespace lserve::jinja
