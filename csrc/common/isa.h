// The CPU-variant namespace of a translation unit.
//
// The CPU kernels are compiled once per instruction-set variant (x86-64: avx2 = x86-64-v3,
// avx512 = x86-64-v4; a single "native", "custom" or "generic" variant for -march builds), each
// with its own compiler flags, and linked into one library; csrc/cpu/dispatch.cpp picks a
// variant at run time. The build defines AF2_ISA (the variant's name) for those translation
// units; everything else (the dispatcher, the bindings, the CUDA sources) sees AF2_ISA = base.
//
// Code that a header defines inline (conversions, micro-kernels, exp) may be compiled with
// different instructions in different variants, so it lives in the inline namespace
// af2::<AF2_ISA> (AF2_ISA_BEGIN ... AF2_ISA_END): the same spelling (af2::vexp) everywhere, but
// a distinct symbol per variant, so the linker never merges an AVX-512 copy into AVX2 code.
// (Inline functions of the standard library that two variants share are merged: the linker
// keeps the first copy, and the build links the variants lowest first; docs/cpu_dispatch.md.)
#pragma once

#ifndef AF2_ISA
#define AF2_ISA base
#endif

#define AF2_ISA_BEGIN inline namespace AF2_ISA {
#define AF2_ISA_END }
