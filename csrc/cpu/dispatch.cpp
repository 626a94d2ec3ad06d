// Run-time choice of the CPU kernel variant (cpu/dispatch.h) and the dispatched entry points
// af2::*_cpu of the op headers. Compiled once, for the baseline target of the build.
#include "cpu/dispatch.h"

#include <atomic>
#include <cstdint>
#include <cstdlib>
#include <mutex>
#include <stdexcept>
#include <string>
#include <vector>

#if defined(__x86_64__) || defined(_M_X64)
#include <cpuid.h>
#define AF2_X86_64 1
#else
#define AF2_X86_64 0
#endif

#include "cpu/entry_points.h"

// Which variants the build compiled: AF2_CPU_VARIANT_<NAME> (setup.py, CMakeLists.txt).
#if !defined(AF2_CPU_VARIANT_AVX2) && !defined(AF2_CPU_VARIANT_AVX512) &&   \
    !defined(AF2_CPU_VARIANT_NATIVE) && !defined(AF2_CPU_VARIANT_CUSTOM) && \
    !defined(AF2_CPU_VARIANT_GENERIC)
#error "the build must define AF2_CPU_VARIANT_<NAME> for each compiled CPU variant"
#endif

namespace af2 {

#define AF2_DECLARE(ns, ret, name, params, args) ret name params;
#define AF2_VARIANT_DECLARATIONS(ns)    \
  namespace ns {                        \
  AF2_CPU_ENTRY_POINTS(AF2_DECLARE, ns) \
  const char* variant_vector_isa();     \
  bool variant_float16_native();        \
  }
#ifdef AF2_CPU_VARIANT_GENERIC
AF2_VARIANT_DECLARATIONS(generic)
#endif
#ifdef AF2_CPU_VARIANT_CUSTOM
AF2_VARIANT_DECLARATIONS(custom)
#endif
#ifdef AF2_CPU_VARIANT_NATIVE
AF2_VARIANT_DECLARATIONS(native)
#endif
#ifdef AF2_CPU_VARIANT_AVX2
AF2_VARIANT_DECLARATIONS(avx2)
#endif
#ifdef AF2_CPU_VARIANT_AVX512
AF2_VARIANT_DECLARATIONS(avx512)
#endif

namespace cpu {
namespace {

struct Kernels {
#define AF2_FIELD(ns, ret, name, params, args) ret(*name) params;
  AF2_CPU_ENTRY_POINTS(AF2_FIELD, _)
  const char* (*vector_isa)();
  bool (*float16_native)();
};
#define AF2_ADDRESS(ns, ret, name, params, args) &ns::name,
#define AF2_KERNELS(ns)                                                                         \
  Kernels {                                                                                     \
    AF2_CPU_ENTRY_POINTS(AF2_ADDRESS, ns) & ns::variant_vector_isa, &ns::variant_float16_native \
  }

// ---- what the running CPU and OS support -------------------------------------------------------
struct Features {
  bool v3 = false;  // x86-64-v3 with the AVX register state enabled by the OS
  bool v4 = false;  // x86-64-v4 with the AVX-512 state (opmask, ZMM) enabled by the OS
  std::string names;
};

#if AF2_X86_64
struct Regs {
  unsigned a = 0, b = 0, c = 0, d = 0;
};
Regs cpuid(unsigned leaf, unsigned sub) {
  Regs r;
  if (!__get_cpuid_count(leaf, sub, &r.a, &r.b, &r.c, &r.d)) r = Regs{};
  return r;
}
uint64_t xcr0() {
  unsigned lo = 0, hi = 0;
  __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
  return (static_cast<uint64_t>(hi) << 32) | lo;
}
inline bool bit(unsigned reg, int i) {
  return (reg >> i) & 1u;
}

Features detect() {
  const Regs l1 = cpuid(1, 0), l7 = cpuid(7, 0), l7s1 = cpuid(7, 1), e1 = cpuid(0x80000001u, 0);
  const uint64_t x = bit(l1.c, 27) ? xcr0() : 0;        // OSXSAVE: XGETBV usable
  const bool os_avx = (x & 0x6) == 0x6;                 // XMM and YMM state
  const bool os_avx512 = os_avx && (x & 0xe0) == 0xe0;  // opmask, ZMM_Hi256, Hi16_ZMM state
  const bool os_amx = (x & 0x60000) == 0x60000;  // XTILECFG, XTILEDATA (use also needs arch_prctl)
  struct Named {
    const char* name;
    bool has;
  };
  const Named list[] = {
      {"sse4.2", bit(l1.c, 20)},
      {"popcnt", bit(l1.c, 23)},
      {"avx", os_avx && bit(l1.c, 28)},
      {"avx2", os_avx && bit(l7.b, 5)},
      {"fma", os_avx && bit(l1.c, 12)},
      {"f16c", os_avx && bit(l1.c, 29)},
      {"bmi1", bit(l7.b, 3)},
      {"bmi2", bit(l7.b, 8)},
      {"lzcnt", bit(e1.c, 5)},
      {"movbe", bit(l1.c, 22)},
      {"avx512f", os_avx512 && bit(l7.b, 16)},
      {"avx512dq", os_avx512 && bit(l7.b, 17)},
      {"avx512cd", os_avx512 && bit(l7.b, 28)},
      {"avx512bw", os_avx512 && bit(l7.b, 30)},
      {"avx512vl", os_avx512 && bit(l7.b, 31)},
      {"avx512bf16", os_avx512 && bit(l7s1.a, 5)},
      {"avx512fp16", os_avx512 && bit(l7.d, 23)},
      {"amx-tile", os_amx && bit(l7.d, 24)},
      {"amx-bf16", os_amx && bit(l7.d, 22)},
  };
  Features f;
  bool v3 = true, v4 = true;
  for (const Named& n : list) {
    if (n.has) f.names += (f.names.empty() ? "" : " ") + std::string(n.name);
    const std::string s = n.name;
    const bool in_v3 = s == "sse4.2" || s == "popcnt" || s == "avx" || s == "avx2" || s == "fma" ||
                       s == "f16c" || s == "bmi1" || s == "bmi2" || s == "lzcnt" || s == "movbe";
    const bool in_v4 =
        s == "avx512f" || s == "avx512dq" || s == "avx512cd" || s == "avx512bw" || s == "avx512vl";
    if (in_v3) v3 = v3 && n.has;
    if (in_v3 || in_v4) v4 = v4 && n.has;
  }
  f.v3 = v3;
  f.v4 = v4;
  return f;
}
#else
Features detect() {
  return Features{};
}
#endif

const Features& features() {
  static const Features f = detect();
  return f;
}

[[maybe_unused]] bool always() {
  return true;
}
[[maybe_unused]] bool has_v3() {
  return features().v3;
}
[[maybe_unused]] bool has_v4() {
  return features().v4;
}

// ---- the compiled variants, lowest first
// ---------------------------------------------------------
struct Variant {
  const char* name;
  bool (*runnable)();
  const char* needs;  // what the CPU must have, for error messages
  Kernels kernels;
};

const std::vector<Variant>& variants() {
  static const std::vector<Variant> v = {
#ifdef AF2_CPU_VARIANT_GENERIC
      {"generic", &always, "", AF2_KERNELS(generic)},
#endif
#ifdef AF2_CPU_VARIANT_CUSTOM
      {"custom", &always, "", AF2_KERNELS(custom)},
#endif
#ifdef AF2_CPU_VARIANT_NATIVE
      {"native", &always, "", AF2_KERNELS(native)},
#endif
#ifdef AF2_CPU_VARIANT_AVX2
      {"avx2", &has_v3, "x86-64-v3: AVX, AVX2, FMA, F16C, BMI1, BMI2, LZCNT, MOVBE",
       AF2_KERNELS(avx2)},
#endif
#ifdef AF2_CPU_VARIANT_AVX512
      {"avx512", &has_v4,
       "x86-64-v4: x86-64-v3 and AVX-512 F, BW, CD, DQ, VL with the OS saving ZMM state",
       AF2_KERNELS(avx512)},
#endif
  };
  return v;
}

std::string join(const std::vector<std::string>& names) {
  std::string s;
  for (const auto& n : names) s += (s.empty() ? "" : ", ") + n;
  return s.empty() ? "none" : s;
}

const Variant* find(const std::string& name) {
  for (const Variant& v : variants())
    if (name == v.name) return &v;
  return nullptr;
}

// Why `name` cannot be used here, or "" when it can. `what` names the request in the message.
std::string unusable(const std::string& name, const std::string& what) {
  const Variant* v = find(name);
  if (v == nullptr)
    return what +
           " is not a CPU variant of this build of af2 (compiled: " + join(compiled_variants()) +
           ")";
  if (!v->runnable())
    return what + " needs " + v->needs + "; this CPU/OS has: " + features().names +
           " (runnable variants: " + join(runnable_variants()) + ")";
  return "";
}

std::mutex mu;
std::atomic<const Variant*> current{nullptr};

// The automatic choice: AF2_CPU_ISA if set, else the highest runnable variant.
const Variant* choose() {
  const char* env = std::getenv("AF2_CPU_ISA");
  if (env != nullptr && *env != '\0') {
    const std::string why = unusable(env, std::string("AF2_CPU_ISA=") + env);
    if (!why.empty()) throw std::runtime_error(why);
    return find(env);
  }
  const Variant* best = nullptr;
  for (const Variant& v : variants())
    if (v.runnable()) best = &v;
  if (best == nullptr)
    throw std::runtime_error(
        "af2's CPU kernels need one of these CPU variants: " + join(compiled_variants()) + " (" +
        variants().front().needs + "); this CPU/OS has: " + features().names +
        ". Build af2 from source with AF2_CPU_ARCH=native for this machine");
  return best;
}

const Variant& active() {
  const Variant* v = current.load(std::memory_order_acquire);
  if (v != nullptr) return *v;
  std::lock_guard<std::mutex> lock(mu);
  v = current.load(std::memory_order_relaxed);
  if (v == nullptr) {
    v = choose();
    current.store(v, std::memory_order_release);
  }
  return *v;
}

const Variant& known(const std::string& name) {
  const Variant* v = find(name);
  if (v == nullptr)
    throw std::invalid_argument("'" + name +
                                "' is not a CPU variant of this build of af2 (compiled: " +
                                join(compiled_variants()) + ")");
  return *v;
}

}  // namespace

std::vector<std::string> compiled_variants() {
  std::vector<std::string> names;
  for (const Variant& v : variants()) names.emplace_back(v.name);
  return names;
}

std::vector<std::string> runnable_variants() {
  std::vector<std::string> names;
  for (const Variant& v : variants())
    if (v.runnable()) names.emplace_back(v.name);
  return names;
}

std::string active_variant() {
  return active().name;
}

void force_variant(const std::string& name) {
  std::lock_guard<std::mutex> lock(mu);
  if (name.empty()) {
    current.store(nullptr, std::memory_order_release);
    return;
  }
  const std::string why = unusable(name, "CPU variant '" + name + "'");
  if (!why.empty()) throw std::invalid_argument(why);
  current.store(find(name), std::memory_order_release);
}

std::string variant_vector_isa(const std::string& name) {
  return known(name).kernels.vector_isa();
}
bool variant_float16_native(const std::string& name) {
  return known(name).kernels.float16_native();
}
std::string cpu_features() {
  return features().names;
}

}  // namespace cpu

// The dispatched entry points declared by the op headers.
#define AF2_DISPATCH(ns, ret, name, params, args) \
  ret name params {                               \
    return cpu::active().kernels.name args;       \
  }
AF2_CPU_ENTRY_POINTS(AF2_DISPATCH, _)

}  // namespace af2
