// ParallelFor: an OpenMP loop that enters OpenMP only when it is worth it.
// `#pragma omp parallel for if (n > threshold)` still calls into libgomp
// when the condition is false, and that costs ~1.3 us per loop (GCC 12's
// libgomp on the 2-core VM: 1.53 us vs 0.25 us for a 768-element loop,
// either thread count), more than a small op's whole work. Decoder steps
// at batch 1 run hundreds of such ops.
//
//   ParallelFor(n, n >= kParallelThreshold, [&](int64_t i) { y[i] = x[i]; });
//
// runs fn(0), ..., fn(n - 1) on the calling thread when `parallel` is false,
// else as `omp parallel for schedule(static)`. Iterations must be
// independent. ParallelForSimd adds `omp simd` for loops that vectorize.
#ifndef QUANTD_KERNELS_PARALLEL_FOR_H_
#define QUANTD_KERNELS_PARALLEL_FOR_H_

#include <cstdint>

namespace quantd {

template <typename Fn>
inline void ParallelFor(int64_t n, bool parallel, Fn&& fn) {
  if (!parallel) {
    for (int64_t i = 0; i < n; ++i) fn(i);
    return;
  }
#pragma omp parallel for schedule(static)
  for (int64_t i = 0; i < n; ++i) fn(i);
}

template <typename Fn>
inline void ParallelForSimd(int64_t n, bool parallel, Fn&& fn) {
  if (!parallel) {
#pragma omp simd
    for (int64_t i = 0; i < n; ++i) fn(i);
    return;
  }
#pragma omp parallel for simd schedule(static)
  for (int64_t i = 0; i < n; ++i) fn(i);
}

}  // namespace quantd

#endif  // QUANTD_KERNELS_PARALLEL_FOR_H_
