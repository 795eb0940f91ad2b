// Shared pieces of the backward kernels' finite-difference tests (include
// only from *_test.cc): the checker, the per-family error summary printed
// at the end of a run, and input generators.
#ifndef QUANTD_KERNELS_BACKWARD_TEST_UTIL_H_
#define QUANTD_KERNELS_BACKWARD_TEST_UTIL_H_

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <functional>
#include <map>
#include <numeric>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "gtest/gtest.h"
#include "kernels/backward.h"
#include "kernels/binary.h"
#include "kernels/convolution.h"
#include "kernels/eltwise.h"
#include "kernels/kernel_test_util.h"
#include "kernels/layer_norm.h"
#include "kernels/matmul.h"
#include "kernels/pooling.h"
#include "kernels/reduction.h"
#include "kernels/reorder.h"
#include "kernels/softmax.h"

namespace quantd {
namespace backward_test {

using Fn = std::function<absl::Status(const std::vector<Tensor>&, Tensor*)>;

struct FdResult {
  int checked = 0;
  int bad = 0;
  double max_abs = 0;  // max |analytic - fd|
  double max_rel = 0;  // max |analytic - fd| / max(|fd|, 1e-2)
};

// Worst errors per family, printed at the end.
inline std::map<std::string, FdResult>& Summary() {
  static auto* m = new std::map<std::string, FdResult>();
  return *m;
}

inline double Loss(const Fn& f, const std::vector<Tensor>& inputs,
                   const Tensor& r) {
  Tensor y;
  absl::Status s = f(inputs, &y);
  EXPECT_TRUE(s.ok()) << s;
  if (!s.ok() || y.shape() != r.shape()) {
    ADD_FAILURE() << "forward output " << y.DebugString() << " vs dy "
                  << r.DebugString();
    return 0;
  }
  double l = 0;
  for (int64_t i = 0; i < y.num_elements(); ++i) {
    l += double(r.data<float>()[i]) * y.data<float>()[i];
  }
  return l;
}

// Compares grads[i] (skipped when undefined) with central differences of
// L = sum(r * f(inputs)) with respect to inputs[i]. Failing elements are
// |analytic - fd| > atol + rtol * |fd|.
inline FdResult CheckGradients(const Fn& f, std::vector<Tensor> inputs,
                               const Tensor& r,
                               const std::vector<Tensor>& grads, double eps,
                               double rtol = 1e-2, double atol = 1e-3) {
  FdResult res;
  for (Tensor& t : inputs) t = t.Clone();  // perturbed in place
  for (size_t i = 0; i < grads.size(); ++i) {
    if (!grads[i].defined()) continue;
    EXPECT_EQ(grads[i].shape(), inputs[i].shape()) << "gradient " << i;
    if (grads[i].shape() != inputs[i].shape()) {
      ++res.bad;
      continue;
    }
    float* p = inputs[i].mutable_data<float>();
    for (int64_t j = 0; j < inputs[i].num_elements(); ++j) {
      const float v = p[j];
      const float plus = v + static_cast<float>(eps);
      const float minus = v - static_cast<float>(eps);
      p[j] = plus;
      const double lp = Loss(f, inputs, r);
      p[j] = minus;
      const double lm = Loss(f, inputs, r);
      p[j] = v;
      const double fd = (lp - lm) / (double(plus) - double(minus));
      const double a = grads[i].data<float>()[j];
      const double err = std::fabs(a - fd);
      ++res.checked;
      res.max_abs = std::max(res.max_abs, err);
      res.max_rel = std::max(res.max_rel, err / std::max(std::fabs(fd), 1e-2));
      if (!(err <= atol + rtol * std::fabs(fd))) {
        if (++res.bad <= 5) {
          ADD_FAILURE() << "input " << i << " element " << j << ": analytic "
                        << a << " vs finite difference " << fd;
        }
      }
    }
  }
  return res;
}

inline void ExpectGradients(const std::string& family, const Fn& f,
                            const std::vector<Tensor>& inputs, const Tensor& r,
                            const std::vector<Tensor>& grads, double eps,
                            double rtol = 1e-2, double atol = 1e-3) {
  FdResult res = CheckGradients(f, inputs, r, grads, eps, rtol, atol);
  EXPECT_EQ(res.bad, 0) << family << ": of " << res.checked;
  EXPECT_GT(res.checked, 0) << family;
  FdResult& s = Summary()[family];
  s.checked += res.checked;
  s.bad += res.bad;
  s.max_abs = std::max(s.max_abs, res.max_abs);
  s.max_rel = std::max(s.max_rel, res.max_rel);
}

class SummaryPrinter : public ::testing::Environment {
 public:
  void TearDown() override {
    for (const auto& [family, r] : Summary()) {
      std::printf("FD %-14s checked %6d  max abs err %.2e  max rel err %.2e\n",
                  family.c_str(), r.checked, r.max_abs, r.max_rel);
    }
  }
};
// Each test binary registers a SummaryPrinter once (see backward_test.cc).

// Distinct values spaced `gap` apart in random order (no near-ties for max).
inline Tensor Distinct(Shape shape, std::mt19937& rng, float gap = 0.01f) {
  Tensor t(DataType::kFloat32, std::move(shape));
  std::vector<int> order(t.num_elements());
  std::iota(order.begin(), order.end(), 0);
  std::shuffle(order.begin(), order.end(), rng);
  const float mid = gap * t.num_elements() / 2;
  for (int64_t i = 0; i < t.num_elements(); ++i) {
    t.mutable_data<float>()[i] = order[i] * gap - mid;
  }
  return t;
}

}  // namespace backward_test
}  // namespace quantd

#endif  // QUANTD_KERNELS_BACKWARD_TEST_UTIL_H_
