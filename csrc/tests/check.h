// Minimal checking helpers for the torch-free C++ unit tests (run by ctest).
#pragma once

#include <cstdio>
#include <cstdlib>

namespace af2::test {
inline int& failures() {
  static int n = 0;
  return n;
}
}  // namespace af2::test

#define AF2_EXPECT(cond, ...)                                                  \
  do {                                                                         \
    if (!(cond)) {                                                             \
      std::fprintf(stderr, "%s:%d: expected %s: ", __FILE__, __LINE__, #cond); \
      std::fprintf(stderr, __VA_ARGS__);                                       \
      std::fprintf(stderr, "\n");                                              \
      if (++af2::test::failures() > 20) std::exit(1);                          \
    }                                                                          \
  } while (0)

#define AF2_TEST_MAIN_END()                                                \
  do {                                                                     \
    if (af2::test::failures()) {                                           \
      std::fprintf(stderr, "%d check(s) failed\n", af2::test::failures()); \
      return 1;                                                            \
    }                                                                      \
    std::printf("all checks passed\n");                                    \
    return 0;                                                              \
  } while (0)
