#include "kernels/buffer_pool.h"

#include <unistd.h>

#if defined(__GLIBC__)
#include <malloc.h>
#endif

#include <algorithm>
#include <cstdlib>
#include <new>

// Under AddressSanitizer nothing is cached: a reused block would hide a
// use after free from it.
#if defined(__SANITIZE_ADDRESS__)
#define QUANTD_BUFFER_POOL_CACHES 0
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define QUANTD_BUFFER_POOL_CACHES 0
#endif
#endif
#ifndef QUANTD_BUFFER_POOL_CACHES
#define QUANTD_BUFFER_POOL_CACHES 1
#endif

namespace quantd {
namespace {

void* AlignedOrThrow(size_t bytes) {
  void* p = std::aligned_alloc(BufferPool::kAlignment, bytes);
  if (p == nullptr) throw std::bad_alloc();
  return p;
}

int64_t DefaultCap() {
  const int64_t pages = sysconf(_SC_PHYS_PAGES);
  const int64_t page = sysconf(_SC_PAGESIZE);
  const int64_t physical = pages > 0 && page > 0 ? pages * page : 0;
  return std::min<int64_t>(int64_t{4} << 30, physical / 8);
}

}  // namespace

BufferPool::BufferPool(int64_t max_cached_bytes)
    : max_cached_bytes_(QUANTD_BUFFER_POOL_CACHES ? max_cached_bytes : 0) {}

BufferPool::~BufferPool() { Release(); }

BufferPool& BufferPool::Default() {
  static BufferPool* const pool = new BufferPool(DefaultCap());
  return *pool;
}

size_t BufferPool::SizeClass(size_t bytes) {
  const size_t aligned = std::max<size_t>(
      kAlignment, (bytes + kAlignment - 1) & ~(kAlignment - 1));
  if (aligned < kMinPooledBytes) return aligned;
  // The largest power of two <= aligned, then the next quarter step.
  size_t power = size_t{1} << (63 - __builtin_clzll(aligned));
  const size_t step = power / 4;
  return (aligned + step - 1) / step * step;
}

std::shared_ptr<void> BufferPool::Allocate(size_t bytes) {
  const size_t size_class = SizeClass(bytes);
  if (size_class < kMinPooledBytes) {
    return std::shared_ptr<void>(AlignedOrThrow(size_class),
                                 [](void* p) { std::free(p); });
  }
  void* p = nullptr;
  std::vector<void*> evicted;
  {
    absl::MutexLock lock(&mu_);
    auto it = free_.find(size_class);
    if (it != free_.end() && !it->second.empty()) {
      p = it->second.back();
      it->second.pop_back();
      cached_bytes_ -= static_cast<int64_t>(size_class);
      ++hits_;
    } else {
      ++misses_;
    }
    in_use_bytes_ += static_cast<int64_t>(size_class);
    high_water_bytes_ = std::max(high_water_bytes_, in_use_bytes_);
    // A miss with stale blocks cached: free them, largest first, until in
    // use + cached fits the high-water mark again.
    while (in_use_bytes_ + cached_bytes_ > high_water_bytes_ &&
           cached_bytes_ > 0) {
      auto largest = free_.end();
      for (auto f = free_.begin(); f != free_.end(); ++f) {
        if (!f->second.empty() &&
            (largest == free_.end() || f->first > largest->first)) {
          largest = f;
        }
      }
      evicted.push_back(largest->second.back());
      largest->second.pop_back();
      cached_bytes_ -= static_cast<int64_t>(largest->first);
    }
  }
  for (void* q : evicted) std::free(q);
  if (p == nullptr) {
    try {
      p = AlignedOrThrow(size_class);
    } catch (const std::bad_alloc&) {
      absl::MutexLock lock(&mu_);
      in_use_bytes_ -= static_cast<int64_t>(size_class);
      throw;
    }
  }
  return std::shared_ptr<void>(
      p, [this, size_class](void* q) { Return(q, size_class); });
}

void BufferPool::Return(void* p, size_t size_class) {
  {
    absl::MutexLock lock(&mu_);
    // Kept, the block moves from in use to cached: the total is unchanged,
    // and stays within the high-water mark that Allocate maintains.
    in_use_bytes_ -= static_cast<int64_t>(size_class);
    if (cached_bytes_ + static_cast<int64_t>(size_class) <= max_cached_bytes_ &&
        in_use_bytes_ + cached_bytes_ + static_cast<int64_t>(size_class) <=
            high_water_bytes_) {
      free_[size_class].push_back(p);
      cached_bytes_ += static_cast<int64_t>(size_class);
      return;
    }
  }
  std::free(p);
}

void BufferPool::Release() {
  absl::flat_hash_map<size_t, std::vector<void*>> taken;
  {
    absl::MutexLock lock(&mu_);
    taken.swap(free_);
    cached_bytes_ = 0;
  }
  for (auto& [size_class, blocks] : taken) {
    for (void* p : blocks) std::free(p);
  }
#if defined(__GLIBC__)
  // glibc serves blocks under its (dynamic, up to 32 MiB) mmap threshold
  // from its heaps and keeps their pages after free: without this, a 4-block
  // decoder job kept ~0.9 GB of freed activations and GPTQ buffers resident
  // into every later stage.
  malloc_trim(0);
#endif
}

int64_t BufferPool::cached_bytes() const {
  absl::MutexLock lock(&mu_);
  return cached_bytes_;
}

int64_t BufferPool::in_use_bytes() const {
  absl::MutexLock lock(&mu_);
  return in_use_bytes_;
}

int64_t BufferPool::high_water_bytes() const {
  absl::MutexLock lock(&mu_);
  return high_water_bytes_;
}

int64_t BufferPool::hits() const {
  absl::MutexLock lock(&mu_);
  return hits_;
}

int64_t BufferPool::misses() const {
  absl::MutexLock lock(&mu_);
  return misses_;
}

}  // namespace quantd
