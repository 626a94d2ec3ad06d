// common/dtype_dispatch.h: each DType reaches the callable with its storage type, a result
// comes back through the returning form, and a value outside the enum runs nothing and returns
// `otherwise`.
#include <type_traits>

#include "common/dtype_dispatch.h"
#include "tests/check.h"

using namespace af2;

template <typename T>
int type_code() {
  if constexpr (std::is_same_v<T, float>) return 0;
  if constexpr (std::is_same_v<T, fp16_t>) return 1;
  if constexpr (std::is_same_v<T, bf16_t>) return 2;
  if constexpr (std::is_same_v<T, double>) return 3;
  return -1;
}

int main() {
  const DType all[] = {DType::kFloat32, DType::kFloat16, DType::kBFloat16, DType::kFloat64};
  const int sizes[] = {4, 2, 2, 8};
  for (int i = 0; i < 4; ++i) {
    int seen = -1, calls = 0;
    dispatch_dtype(all[i], [&](auto t) {
      seen = type_code<decltype(t)>();
      ++calls;
    });
    AF2_EXPECT(seen == static_cast<int>(all[i]) && calls == 1, "dtype %d ran type %d, %d call(s)",
               i, seen, calls);
    const int bytes = dispatch_dtype(all[i], -1, [](auto t) { return int(sizeof(t)); });
    AF2_EXPECT(bytes == sizes[i], "dtype %d: element size %d, expected %d", i, bytes, sizes[i]);
  }
  const auto bad = static_cast<DType>(7);
  int calls = 0;
  dispatch_dtype(bad, [&](auto) { ++calls; });
  const double r = dispatch_dtype(bad, -2.5, [&](auto) {
    ++calls;
    return 1.0;
  });
  AF2_EXPECT(calls == 0 && r == -2.5, "a value outside DType ran %d call(s), returned %g", calls,
             r);
  int n = 0;
#define AF2_COUNT(T) n += type_code<T>() >= 0;
  AF2_FOR_EACH_DTYPE(AF2_COUNT)
#undef AF2_COUNT
  AF2_EXPECT(n == 4, "AF2_FOR_EACH_DTYPE expanded %d known types", n);
  AF2_TEST_MAIN_END();
}
