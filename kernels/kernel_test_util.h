// Shared by the kernel tests (include only from *_test.cc): random tensors
// with fixed seeds and the comparisons the optimized-vs-reference tests use.
//
//   std::mt19937 rng(1);
//   Tensor x = RandomFloat({2, 3}, rng);
//   Tensor q = RandomQuantized(DataType::kUInt8, {4}, rng);
//   ExpectClose(optimized, reference, 1e-4);
#ifndef QUANTD_KERNELS_KERNEL_TEST_UTIL_H_
#define QUANTD_KERNELS_KERNEL_TEST_UTIL_H_

#include <cmath>
#include <cstdlib>
#include <random>
#include <utility>
#include <vector>

#include "gtest/gtest.h"
#include "kernels/post_ops.h"
#include "kernels/tensor.h"

namespace quantd {

// Post-ops and int8 operator parameters, spelled briefly in test tables.
inline PostOps Post(bool relu, float alpha = 0.f, bool sum = false,
                    float sum_scale = 1.f) {
  PostOps p;
  p.relu = relu;
  p.relu_alpha = alpha;
  p.sum = sum;
  p.sum_scale = sum_scale;
  return p;
}

inline QuantizedOpParams Quant(float src_scale, int32_t src_zp,
                               std::vector<float> w_scales, DataType dst_type,
                               float dst_scale = 1.f, int32_t dst_zp = 0,
                               PostOps post = {}) {
  QuantizedOpParams q;
  q.src_scale = src_scale;
  q.src_zero_point = src_zp;
  q.weight_scales = std::move(w_scales);
  q.dst_type = dst_type;
  q.dst_scale = dst_scale;
  q.dst_zero_point = dst_zp;
  q.post_ops = post;
  return q;
}

inline Tensor RandomFloat(Shape shape, std::mt19937& rng, float lo = -1.f,
                          float hi = 1.f) {
  Tensor t(DataType::kFloat32, std::move(shape));
  std::uniform_real_distribution<float> dist(lo, hi);
  for (float& v : t.mutable_span<float>()) v = dist(rng);
  return t;
}

template <typename T>
Tensor RandomInt(Shape shape, std::mt19937& rng, int lo, int hi) {
  Tensor t(DataTypeOf<T>::value, std::move(shape));
  std::uniform_int_distribution<int> dist(lo, hi);
  for (T& v : t.mutable_span<T>()) v = static_cast<T>(dist(rng));
  return t;
}

// Full-range u8 or s8 values.
inline Tensor RandomQuantized(DataType type, const Shape& shape,
                              std::mt19937& rng) {
  return type == DataType::kUInt8 ? RandomInt<uint8_t>(shape, rng, 0, 255)
                                  : RandomInt<int8_t>(shape, rng, -128, 127);
}

// |got - want| <= tol * (1 + |want|) everywhere (f32).
inline void ExpectClose(const Tensor& got, const Tensor& want, double tol) {
  ASSERT_EQ(got.dtype(), DataType::kFloat32);
  ASSERT_EQ(got.shape(), want.shape());
  int bad = 0;
  for (int64_t i = 0; i < got.num_elements(); ++i) {
    const double g = got.data<float>()[i], w = want.data<float>()[i];
    if (!(std::fabs(g - w) <= tol * (1 + std::fabs(w)))) {
      if (++bad <= 5) ADD_FAILURE() << "at " << i << ": " << g << " vs " << w;
    }
  }
  EXPECT_EQ(bad, 0) << "of " << got.num_elements();
}

// u8/s8 outputs at most `quanta` apart; returns how many differ at all.
inline int ExpectWithinQuanta(const Tensor& got, const Tensor& want,
                              int quanta) {
  EXPECT_EQ(got.dtype(), want.dtype());
  EXPECT_EQ(got.shape(), want.shape());
  int differ = 0, bad = 0;
  for (int64_t i = 0; i < got.num_elements(); ++i) {
    const int g = static_cast<int>(ReadQuantized(got, i));
    const int w = static_cast<int>(ReadQuantized(want, i));
    differ += g != w;
    if (std::abs(g - w) > quanta && ++bad <= 5) {
      ADD_FAILURE() << "at " << i << ": " << g << " vs " << w;
    }
  }
  return differ;
}

inline int ExpectWithinOneQuantum(const Tensor& got, const Tensor& want) {
  return ExpectWithinQuanta(got, want, 1);
}

}  // namespace quantd

#endif  // QUANTD_KERNELS_KERNEL_TEST_UTIL_H_
