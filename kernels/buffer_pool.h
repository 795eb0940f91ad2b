// A process-wide cache of large tensor buffers. Every Tensor allocates
// through it: a freed buffer of 256 KiB or more is kept for the next tensor
// of the same size class instead of being returned to the system.
//
// Why: glibc serves allocations above its mmap threshold (at most 32 MiB)
// with fresh mmap()s and unmaps them on free, so every activation of a
// large model was page-faulted and zeroed by the kernel on every run. On
// ResNet-50 at batch 16 that was 85% of the fp32 time (3.4 s of 3.9 s per
// batch; bench/README.md, "Engine profile").
//
// The pool never holds more than the most the process ever had in use at
// once (its high-water mark of pooled bytes in use): in use + cached stays
// within it, stale blocks of sizes no longer asked for are freed when a
// miss would exceed it. So a job's footprint is its largest live set, not
// that plus a cache of every size it ever used (a ResNet-50 job peaked at
// 4.5 GB through the pool before; bench/README.md, "Whole ResNet-50 job").
//
//   std::shared_ptr<void> p = BufferPool::Default().Allocate(bytes);
//   ...                       // 64-byte aligned, uninitialized
//   p.reset();                // back into the cache (or freed past the cap)
//   BufferPool::Default().Release();  // e.g. when a job ends
#ifndef QUANTD_KERNELS_BUFFER_POOL_H_
#define QUANTD_KERNELS_BUFFER_POOL_H_

#include <cstddef>
#include <cstdint>
#include <memory>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/synchronization/mutex.h"

namespace quantd {

class BufferPool {
 public:
  static constexpr size_t kAlignment = 64;
  // Below this, malloc's own free lists do the job.
  static constexpr size_t kMinPooledBytes = 256 << 10;

  // `max_cached_bytes` bounds the free buffers kept; buffers freed past it
  // go back to the system.
  explicit BufferPool(int64_t max_cached_bytes);
  ~BufferPool();
  BufferPool(const BufferPool&) = delete;
  BufferPool& operator=(const BufferPool&) = delete;

  // Process-wide, never destroyed (tensors may outlive main's locals). Its
  // cap: 1/8 of physical memory, at most 4 GiB.
  static BufferPool& Default();

  // `bytes` (0 allowed) of uninitialized, kAlignment-aligned memory. Throws
  // std::bad_alloc if the system has none.
  std::shared_ptr<void> Allocate(size_t bytes);

  // Frees every cached buffer, and returns malloc's free pages to the
  // system (glibc's malloc_trim): call it between phases of a job.
  void Release();

  // The size class of a request: pooled sizes round up to one of four steps
  // per power of two (at most 25% more than asked), so that tensors whose
  // sizes differ a little share buffers.
  static size_t SizeClass(size_t bytes);

  // 0 under AddressSanitizer, which must see every free.
  int64_t max_cached_bytes() const { return max_cached_bytes_; }
  int64_t cached_bytes() const;
  int64_t in_use_bytes() const;      // pooled-size blocks handed out
  int64_t high_water_bytes() const;  // the most ever in use at once
  int64_t hits() const;              // allocations served from the cache
  int64_t misses() const;  // pooled-size allocations that went to malloc

 private:
  void Return(void* p, size_t size_class);

  const int64_t max_cached_bytes_;
  mutable absl::Mutex mu_;
  absl::flat_hash_map<size_t, std::vector<void*>> free_ ABSL_GUARDED_BY(mu_);
  int64_t cached_bytes_ ABSL_GUARDED_BY(mu_) = 0;
  int64_t in_use_bytes_ ABSL_GUARDED_BY(mu_) = 0;
  int64_t high_water_bytes_ ABSL_GUARDED_BY(mu_) = 0;
  int64_t hits_ ABSL_GUARDED_BY(mu_) = 0;
  int64_t misses_ ABSL_GUARDED_BY(mu_) = 0;
};

}  // namespace quantd

#endif  // QUANTD_KERNELS_BUFFER_POOL_H_
