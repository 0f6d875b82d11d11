// LSERVE_CHECK: internal invariants only. A failed check is a bug in lserve,
// never the consequence of bad input (bad input gets a Status).
#pragma once

#include <cstdio>
#include <cstdlib>

#define LSERVE_CHECK(cond)                                                              \
  do {                                                                                  \
    if (!(cond)) {                                                                      \
      std::fprintf(stderr, "lserve: internal check failed at %s:%d: %s\n", __FILE__, \
                   __LINE__, #cond);                                                    \
      std::abort();                                                                     \
    }                                                                                   \
  } while (0)
