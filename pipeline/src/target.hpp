// SPDX-License-Identifier: Apache-2.0
// The instruction sets the pipeline's kernels are compiled for, function by
// function; which one runs is chosen at run time (kernels_avx2(),
// metrology.hpp). Private to the pipeline's sources.
#pragma once

#if defined(__x86_64__)
#include <immintrin.h>
#define WP_AVX2 __attribute__((target("avx2,fma")))
#define WP_AVX512 __attribute__((target("avx512f,avx512dq,avx512vl,avx2,fma")))
#else
// Elsewhere (aarch64) these are portable copies that the run-time choice never picks.
#define WP_AVX2
#define WP_AVX512
#endif
