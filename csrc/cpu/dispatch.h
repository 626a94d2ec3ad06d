// Run-time choice of the CPU kernel variant (torch-free).
//
// The build compiles the CPU kernels once per variant (common/isa.h) and this library holds all
// of them: on x86-64 "avx2" (x86-64-v3: AVX2, FMA, F16C, BMI1/2, LZCNT, MOVBE) and "avx512"
// (x86-64-v4: AVX-512 F/BW/CD/DQ/VL); a -march build holds one variant ("native", "custom" or
// "generic"). On the first kernel call the fastest variant that the running CPU and OS support
// is chosen (CPUID, and XGETBV for the register state the OS saves), unless the environment
// variable AF2_CPU_ISA names another one (a lower one, for testing or comparison).
#pragma once

#include <string>
#include <vector>

namespace af2::cpu {

// The variants compiled into this build, lowest first.
std::vector<std::string> compiled_variants();
// Those of them that this CPU and OS can run, lowest first.
std::vector<std::string> runnable_variants();
// The variant the kernels use now. Throws std::runtime_error when AF2_CPU_ISA names a variant
// that is not compiled in or cannot run here, or when no compiled variant can run here.
std::string active_variant();
// Use `name` from now on ("" = the automatic choice again, AF2_CPU_ISA included). Throws
// std::invalid_argument, naming the variants there are, when `name` cannot be used.
void force_variant(const std::string& name);
// What the variant was compiled for ("avx2", "avx512", "avx512+bf16", ...), and whether its
// fp16 conversions are hardware instructions. Throws std::invalid_argument for an unknown name.
std::string variant_vector_isa(const std::string& name);
bool variant_float16_native(const std::string& name);
// The vector features of the running CPU that the OS enables, space separated
// ("avx2 fma f16c avx512f ... avx512bf16 amx-bf16"); "" off x86-64.
std::string cpu_features();

}  // namespace af2::cpu
