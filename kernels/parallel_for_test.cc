#include "kernels/parallel_for.h"

#include <vector>

#include "gtest/gtest.h"

namespace quantd {
namespace {

// Both branches (serial and OpenMP) visit every index exactly once.
TEST(ParallelForTest, VisitsEveryIndexOnce) {
  for (bool parallel : {false, true}) {
    for (int64_t n : {0, 1, 7, 1000}) {
      std::vector<int> hits(n, 0);
      ParallelFor(n, parallel, [&](int64_t i) { ++hits[i]; });
      EXPECT_EQ(hits, std::vector<int>(n, 1)) << n << " " << parallel;
      std::vector<float> y(n, 0.f);
      ParallelForSimd(n, parallel, [&](int64_t i) { y[i] = 2.f * i; });
      for (int64_t i = 0; i < n; ++i) EXPECT_EQ(y[i], 2.f * i);
    }
  }
}

}  // namespace
}  // namespace quantd
