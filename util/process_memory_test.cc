#include "util/process_memory.h"

#include <sys/mman.h>

#include <cstring>

#include "gtest/gtest.h"

namespace quantd {
namespace {

constexpr int64_t kBlock = int64_t{256} << 20;

// Touches `bytes` of fresh memory and returns it to the system. mmap, not
// new[]: a sanitizer's allocator would keep freed memory in quarantine,
// still resident.
void TouchAndRelease(int64_t bytes) {
  void* block = mmap(nullptr, bytes, PROT_READ | PROT_WRITE,
                     MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  ASSERT_NE(block, MAP_FAILED);
  std::memset(block, 1, bytes);  // touched pages are resident
  EXPECT_GE(*CurrentRssBytes(), bytes);
  ASSERT_EQ(munmap(block, bytes), 0);
}

TEST(ProcessMemoryTest, SamplerSeesAPeakThatIsGoneAndStartsAgain) {
  if (!CurrentRssBytes().has_value() || !PeakRssBytes().has_value()) {
    GTEST_SKIP() << "/proc/self/status is not readable here";
  }
  RssSampler sampler(absl::Milliseconds(5));
  const int64_t before = *CurrentRssBytes();
  // Twice the process's peak so far, so the kernel's high-water mark rises
  // and the peak is exact however the sampling thread was scheduled.
  const int64_t bytes = std::max(kBlock, 2 * *PeakRssBytes());
  TouchAndRelease(bytes);
  EXPECT_GE(sampler.TakePeak(), before + bytes / 2);
  // The next interval starts from what is resident now.
  EXPECT_LT(sampler.TakePeak(), before + bytes / 2);
  EXPECT_GE(*PeakRssBytes(), before + bytes / 2);  // the kernel's untouched
}

}  // namespace
}  // namespace quantd
