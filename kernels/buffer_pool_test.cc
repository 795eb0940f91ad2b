#include "kernels/buffer_pool.h"

#include <cstdint>
#include <cstring>
#include <thread>
#include <vector>

#include "gtest/gtest.h"

namespace quantd {
namespace {

TEST(BufferPoolTest, SizeClassesRoundUpByAtMostAQuarter) {
  EXPECT_EQ(BufferPool::SizeClass(0), 64u);
  EXPECT_EQ(BufferPool::SizeClass(65), 128u);
  EXPECT_EQ(BufferPool::SizeClass(1 << 20), 1u << 20);
  EXPECT_EQ(BufferPool::SizeClass((1 << 20) + 1), (1u << 20) + (1u << 18));
  for (size_t bytes = BufferPool::kMinPooledBytes; bytes < (size_t{1} << 32);
       bytes = bytes * 3 / 2 + 4097) {
    const size_t c = BufferPool::SizeClass(bytes);
    EXPECT_GE(c, bytes);
    EXPECT_LE(c, bytes + bytes / 4 + BufferPool::kAlignment) << bytes;
    EXPECT_EQ(c % BufferPool::kAlignment, 0u);
    EXPECT_EQ(BufferPool::SizeClass(c), c) << "a class is its own class";
  }
}

TEST(BufferPoolTest, AFreedLargeBufferIsReusedForTheSameClass) {
  if (BufferPool(1 << 20).max_cached_bytes() == 0) {
    GTEST_SKIP() << "built with AddressSanitizer: the pool caches nothing";
  }
  BufferPool pool(int64_t{64} << 20);
  void* first;
  {
    std::shared_ptr<void> a = pool.Allocate(3 << 20);
    first = a.get();
    std::memset(a.get(), 1, 3 << 20);  // all of it is usable
  }
  EXPECT_EQ(pool.cached_bytes(), int64_t{3} << 20);
  std::shared_ptr<void> b = pool.Allocate((3 << 20) - 1000);  // same class
  EXPECT_EQ(b.get(), first);
  EXPECT_EQ(pool.hits(), 1);
  EXPECT_EQ(pool.misses(), 1);
  EXPECT_EQ(pool.cached_bytes(), 0);
  std::shared_ptr<void> c = pool.Allocate(3 << 20);  // the first is in use
  EXPECT_NE(c.get(), first);
}

TEST(BufferPoolTest, SmallBuffersAreNotCached) {
  BufferPool pool(int64_t{64} << 20);
  { std::shared_ptr<void> a = pool.Allocate(1000); }
  EXPECT_EQ(pool.cached_bytes(), 0);
  EXPECT_EQ(pool.hits() + pool.misses(), 0);
}

TEST(BufferPoolTest, BuffersAreAligned) {
  BufferPool pool(int64_t{64} << 20);
  for (size_t bytes :
       {size_t{0}, size_t{1}, size_t{100}, size_t{300000}, size_t{5000000}}) {
    std::shared_ptr<void> p = pool.Allocate(bytes);
    ASSERT_NE(p.get(), nullptr);
    EXPECT_EQ(reinterpret_cast<uintptr_t>(p.get()) % BufferPool::kAlignment,
              0u);
  }
}

TEST(BufferPoolTest, TheCapBoundsWhatIsKept) {
  if (BufferPool(1 << 20).max_cached_bytes() == 0) {
    GTEST_SKIP() << "built with AddressSanitizer: the pool caches nothing";
  }
  BufferPool pool(int64_t{5} << 20);  // room for two 2 MiB buffers
  {
    std::vector<std::shared_ptr<void>> live;
    for (int i = 0; i < 4; ++i) live.push_back(pool.Allocate(2 << 20));
  }
  EXPECT_EQ(pool.cached_bytes(), int64_t{4} << 20);
  pool.Release();
  EXPECT_EQ(pool.cached_bytes(), 0);
  std::shared_ptr<void> p = pool.Allocate(2 << 20);
  EXPECT_EQ(pool.misses(), 5);  // nothing left to reuse
}

// In use + cached never exceeds the most ever in use at once: a miss frees
// stale blocks (largest first) instead of adding to them.
TEST(BufferPoolTest, NeverHoldsMoreThanTheLargestLiveSet) {
  if (BufferPool(1 << 20).max_cached_bytes() == 0) {
    GTEST_SKIP() << "built with AddressSanitizer: the pool caches nothing";
  }
  constexpr int64_t kMiB = 1 << 20;
  BufferPool pool(int64_t{1} << 30);
  {
    std::shared_ptr<void> a = pool.Allocate(kMiB);
    std::shared_ptr<void> b = pool.Allocate(2 * kMiB);
    EXPECT_EQ(pool.in_use_bytes(), 3 * kMiB);
  }
  EXPECT_EQ(pool.high_water_bytes(), 3 * kMiB);
  EXPECT_EQ(pool.cached_bytes(), 3 * kMiB);
  {
    // A new size: 4 MiB in use, so both stale blocks go.
    std::shared_ptr<void> c = pool.Allocate(4 * kMiB);
    EXPECT_EQ(pool.high_water_bytes(), 4 * kMiB);
    EXPECT_EQ(pool.cached_bytes(), 0);
  }
  EXPECT_EQ(pool.cached_bytes(), 4 * kMiB);
  {
    // 1 MiB fits beside... nothing: 1 + 4 cached > 4, the 4 MiB block goes.
    std::shared_ptr<void> d = pool.Allocate(kMiB);
    EXPECT_EQ(pool.cached_bytes(), 0);
    EXPECT_EQ(pool.in_use_bytes(), kMiB);
  }
  EXPECT_EQ(pool.in_use_bytes(), 0);
  EXPECT_LE(pool.cached_bytes(), pool.high_water_bytes());
  // The steady state of a repeated run: every block comes from the cache.
  const int64_t misses = pool.misses();
  for (int run = 0; run < 3; ++run) {
    std::shared_ptr<void> d = pool.Allocate(kMiB);
  }
  EXPECT_EQ(pool.misses(), misses);
}

TEST(BufferPoolTest, ThreadsShareThePoolSafely) {
  BufferPool pool(int64_t{16} << 20);
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&pool, t] {
      for (int i = 0; i < 200; ++i) {
        const size_t bytes = (size_t{1} << 18) * (1 + (i + t) % 5);
        std::shared_ptr<void> p = pool.Allocate(bytes);
        static_cast<char*>(p.get())[bytes - 1] = static_cast<char>(i);
      }
    });
  }
  for (std::thread& t : threads) t.join();
  EXPECT_EQ(pool.hits() + pool.misses(), 800);
  EXPECT_LE(pool.cached_bytes(), int64_t{16} << 20);
}

}  // namespace
}  // namespace quantd
