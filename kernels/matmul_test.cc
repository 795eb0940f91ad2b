#include "kernels/matmul.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <random>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "kernels/kernel_test_util.h"

namespace quantd {
namespace {

using ::testing::HasSubstr;

struct MatMulCase {
  Shape a, b;
  bool transpose_b;
  Shape out;
};

std::vector<MatMulCase> Cases() {
  return {
      {{3, 4}, {4, 5}, false, {3, 5}},
      {{1, 1}, {1, 1}, false, {1, 1}},
      {{7, 13}, {13, 9}, false, {7, 9}},
      {{64, 256}, {256, 96}, false, {64, 96}},
      {{2, 3, 4}, {2, 4, 5}, false, {2, 3, 5}},
      {{2, 1, 3, 4}, {5, 4, 6}, false, {2, 5, 3, 6}},
      {{3, 4}, {2, 4, 6}, false, {2, 3, 6}},
      {{2, 3, 4}, {4, 6}, false, {2, 3, 6}},
      {{1, 3, 4}, {2, 1, 4, 5}, false, {2, 1, 3, 5}},
      {{3, 1, 2, 5, 4}, {1, 2, 1, 4, 3}, false, {3, 2, 2, 5, 3}},
      {{4}, {4, 5}, false, {5}},
      {{3, 4}, {4}, false, {3}},
      {{4}, {4}, false, {}},
      {{4}, {2, 4, 5}, false, {2, 5}},
      {{2, 3, 4}, {4}, false, {2, 3}},
      {{5, 4}, {6, 4}, true, {5, 6}},
      {{2, 3, 4}, {2, 5, 4}, true, {2, 3, 5}},
      {{2, 3, 17}, {9, 17}, true, {2, 3, 9}},
      {{17}, {9, 17}, true, {9}},
      {{3, 17}, {17}, true, {3}},
      // b shared by every batch: run as one GEMM over all rows of a.
      {{4, 1, 5}, {1, 5, 3}, false, {4, 1, 3}},
      {{2, 2, 1, 4}, {4, 3}, false, {2, 2, 1, 3}},
  };
}

TEST(MatMulOutputShapeTest, NumpySemantics) {
  for (const MatMulCase& c : Cases()) {
    absl::StatusOr<Shape> out = MatMulOutputShape(c.a, c.b, c.transpose_b);
    ASSERT_TRUE(out.ok()) << out.status();
    EXPECT_EQ(*out, c.out) << ShapeToString(c.a) << " x " << ShapeToString(c.b);
  }
}

// A decoder step's [batch, 1, d] x [d, n] is one [batch, d] x [d, n] GEMM
// (one pass over the weights), not `batch` GEMMs of one row.
TEST(MatMulGeometryTest, FoldsBatchIntoRowsWhenBIsShared) {
  using matmul_internal::MatMulGeometry;
  using matmul_internal::ResolveMatMulGeometry;
  absl::StatusOr<MatMulGeometry> g =
      ResolveMatMulGeometry({8, 1, 768}, {768, 2304}, false);
  ASSERT_TRUE(g.ok());
  EXPECT_EQ(g->m, 8);
  EXPECT_EQ(g->a_dims, (Shape{1, 8, 768}));
  EXPECT_EQ(g->dst_dims, (Shape{1, 8, 2304}));
  EXPECT_EQ(g->dst_shape, (Shape{8, 1, 2304}));
  // A batched b keeps the batch.
  g = ResolveMatMulGeometry({8, 1, 768}, {8, 768, 16}, false);
  ASSERT_TRUE(g.ok());
  EXPECT_EQ(g->m, 1);
  EXPECT_EQ(g->a_dims, (Shape{8, 1, 768}));
}

TEST(MatMulKernelTest, MatchesReferenceOverShapes) {
  std::mt19937 rng(1);
  const std::vector<PostOps> posts = {PostOps{}, Post(true),
                                      Post(true, 0.1f, true, 0.5f)};
  for (const MatMulCase& c : Cases()) {
    SCOPED_TRACE(absl::StrCat(ShapeToString(c.a), " x ", ShapeToString(c.b),
                              c.transpose_b ? "^T" : ""));
    Tensor a = RandomFloat(c.a, rng);
    Tensor b = RandomFloat(c.b, rng);
    const int64_t n =
        c.b.size() == 1 ? 1 : c.b[c.b.size() - (c.transpose_b ? 2 : 1)];
    Tensor bias = RandomFloat({n}, rng);
    for (const PostOps& post : posts) {
      for (bool with_bias : {false, true}) {
        Tensor addend = RandomFloat(c.out, rng);
        Tensor got = post.sum ? addend.Clone() : Tensor();
        Tensor want = post.sum ? addend.Clone() : Tensor();
        MatMulKernel kernel(post, c.transpose_b);
        const Tensor* bp = with_bias ? &bias : nullptr;
        absl::Status s = kernel.Forward(a, b, bp, &got);
        ASSERT_TRUE(s.ok()) << s;
        ASSERT_TRUE(MatMulReference(post, c.transpose_b, a, b, bp, &want).ok());
        EXPECT_EQ(got.shape(), c.out);
        ExpectClose(got, want, 1e-5);
      }
    }
  }
}

TEST(MatMulReferenceTest, HandComputed) {
  // [[1, 2], [3, 4]] x [[5, 6], [7, 8]] = [[19, 22], [43, 50]]; broadcast
  // over a batch of two b's.
  Tensor a = Tensor::FromVector<float>({2, 2}, {1, 2, 3, 4});
  Tensor b = Tensor::FromVector<float>({2, 2, 2}, {5, 6, 7, 8, 1, 0, 0, 1});
  Tensor dst;
  ASSERT_TRUE(MatMulReference({}, false, a, b, nullptr, &dst).ok());
  EXPECT_EQ(dst.shape(), (Shape{2, 2, 2}));
  EXPECT_EQ(dst.ToVector<float>(),
            (std::vector<float>{19, 22, 43, 50, 1, 2, 3, 4}));
  // transposed b: a x b^T.
  ASSERT_TRUE(MatMulReference({}, true, a, a, nullptr, &dst).ok());
  EXPECT_EQ(dst.ToVector<float>(), (std::vector<float>{5, 11, 11, 25}));
}

TEST(MatMulKernelTest, EmptyDims) {
  MatMulKernel kernel;
  Tensor dst;
  ASSERT_TRUE(kernel
                  .Forward(Tensor(DataType::kFloat32, {0, 4}),
                           Tensor(DataType::kFloat32, {4, 5}), nullptr, &dst)
                  .ok());
  EXPECT_EQ(dst.shape(), (Shape{0, 5}));
  // K = 0: an empty sum, so the result is the bias.
  Tensor bias = Tensor::FromVector<float>({2}, {1, -1});
  ASSERT_TRUE(kernel
                  .Forward(Tensor(DataType::kFloat32, {3, 0}),
                           Tensor(DataType::kFloat32, {0, 2}), &bias, &dst)
                  .ok());
  EXPECT_EQ(dst.ToVector<float>(), (std::vector<float>{1, -1, 1, -1, 1, -1}));
}

TEST(MatMulKernelTest, CachesPrimitivesPerShape) {
  std::mt19937 rng(2);
  MatMulKernel kernel;
  Tensor b = RandomFloat({8, 4}, rng);
  Tensor dst;
  for (int i = 0; i < 3; ++i) {
    ASSERT_TRUE(
        kernel.Forward(RandomFloat({5, 8}, rng), b, nullptr, &dst).ok());
  }
  EXPECT_EQ(kernel.cached_primitives(), 1u);
  ASSERT_TRUE(kernel.Forward(RandomFloat({6, 8}, rng), b, nullptr, &dst).ok());
  EXPECT_EQ(kernel.cached_primitives(), 2u);
  QuantizedOpParams q;
  q.weight_scales = {1.f};
  QuantizedMatMulKernel qkernel(q);
  Tensor qb = RandomInt<int8_t>({8, 4}, rng, -9, 9);
  for (int i = 0; i < 3; ++i) {
    ASSERT_TRUE(
        qkernel
            .Forward(RandomInt<uint8_t>({5, 8}, rng, 0, 255), qb, nullptr, &dst)
            .ok());
  }
  EXPECT_EQ(qkernel.cached_primitives(), 1u);
}

void ExpectInvalid(const absl::Status& s, const std::string& message) {
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << s;
  EXPECT_THAT(std::string(s.message()), HasSubstr(message));
}

TEST(MatMulKernelTest, RejectsBadArguments) {
  std::mt19937 rng(3);
  MatMulKernel kernel;
  Tensor dst;
  ExpectInvalid(kernel.Forward(RandomFloat({3, 4}, rng),
                               RandomFloat({5, 6}, rng), nullptr, &dst),
                "MatMul a [3,4] has K = 4 but b [5,6] has K = 5");
  ExpectInvalid(kernel.Forward(RandomFloat({2, 3, 4}, rng),
                               RandomFloat({3, 4, 5}, rng), nullptr, &dst),
                "do not broadcast (2 vs 3)");
  ExpectInvalid(kernel.Forward(Tensor::Scalar<float>(1),
                               RandomFloat({1, 2}, rng), nullptr, &dst),
                "at least 1 dim");
  ExpectInvalid(kernel.Forward(RandomInt<int8_t>({3, 4}, rng, 0, 1),
                               RandomFloat({4, 5}, rng), nullptr, &dst),
                "expects f32 operands");
  Tensor bias = RandomFloat({4}, rng);
  ExpectInvalid(kernel.Forward(RandomFloat({3, 4}, rng),
                               RandomFloat({4, 5}, rng), &bias, &dst),
                "MatMul bias is f32[4], expected f32[5]");
  MatMulKernel sum(Post(false, 0, true));
  Tensor undefined;
  ExpectInvalid(sum.Forward(RandomFloat({3, 4}, rng), RandomFloat({4, 5}, rng),
                            nullptr, &undefined),
                "post-op sum needs dst");
  QuantizedOpParams q;
  q.weight_scales = {1.f, 2.f};
  QuantizedMatMulKernel qkernel(q);
  ExpectInvalid(
      qkernel.Forward(RandomInt<uint8_t>({3, 4}, rng, 0, 1),
                      RandomInt<int8_t>({4, 5}, rng, 0, 1), nullptr, &dst),
      "weight_scales has 2 entries, expected 1 or 5");
  ExpectInvalid(
      qkernel.Forward(RandomInt<uint8_t>({3, 4}, rng, 0, 1),
                      RandomInt<uint8_t>({4, 2}, rng, 0, 1), nullptr, &dst),
      "expected s8");
  ExpectInvalid(
      qkernel.Forward(RandomFloat({3, 4}, rng),
                      RandomInt<int8_t>({4, 2}, rng, 0, 1), nullptr, &dst),
      "src is f32, expected u8 or s8");
}

// --- int8 ---

TEST(QuantizedMatMulKernelTest, MatchesReferenceWithSevenBitWeights) {
  std::mt19937 rng(4);
  std::uniform_real_distribution<float> scale(0.002f, 0.02f);
  int differing = 0, total = 0;
  for (const MatMulCase& c : Cases()) {
    const int64_t n =
        c.b.size() == 1 ? 1 : c.b[c.b.size() - (c.transpose_b ? 2 : 1)];
    Tensor w = RandomInt<int8_t>(c.b, rng, -64, 64);
    Tensor bias = RandomFloat({n}, rng, -0.5f, 0.5f);
    for (DataType a_type : {DataType::kUInt8, DataType::kInt8}) {
      Tensor a = RandomQuantized(a_type, c.a, rng);
      for (DataType dst_type :
           {DataType::kFloat32, DataType::kUInt8, DataType::kInt8}) {
        for (int variant = 0; variant < 3; ++variant) {
          SCOPED_TRACE(
              absl::StrCat(ShapeToString(c.a), " x ", ShapeToString(c.b),
                           c.transpose_b ? "^T " : " ", DataTypeName(a_type),
                           "->", DataTypeName(dst_type), " variant ", variant));
          std::vector<float> ws(variant == 1 ? 1 : n);
          for (float& v : ws) v = scale(rng);
          const int32_t a_zp = variant == 0                 ? 0
                               : a_type == DataType::kUInt8 ? 131
                                                            : -9;
          const int32_t dst_zp = dst_type == DataType::kUInt8  ? 120
                                 : dst_type == DataType::kInt8 ? 5
                                                               : 0;
          const PostOps post = variant == 1   ? Post(true)
                               : variant == 2 ? Post(true, 0.05f, true, 1.f)
                                              : PostOps{};
          QuantizedOpParams q =
              Quant(0.04f, a_zp, ws, dst_type, 0.1f, dst_zp, post);
          Tensor addend = dst_type == DataType::kFloat32
                              ? RandomFloat(c.out, rng, -3, 3)
                              : RandomQuantized(dst_type, c.out, rng);
          Tensor got = post.sum ? addend.Clone() : Tensor();
          Tensor want = post.sum ? addend.Clone() : Tensor();
          const Tensor* bp = variant == 1 ? nullptr : &bias;
          QuantizedMatMulKernel kernel(q, c.transpose_b);
          absl::Status s = kernel.Forward(a, w, bp, &got);
          ASSERT_TRUE(s.ok()) << s;
          ASSERT_TRUE(
              QuantizedMatMulReference(q, c.transpose_b, a, w, bp, &want).ok());
          if (dst_type == DataType::kFloat32) {
            ExpectClose(got, want, 1e-5);
          } else {
            differing += ExpectWithinOneQuantum(got, want);
            total += got.num_elements();
          }
        }
      }
    }
  }
  EXPECT_LT(differing, total / 1000 + 1) << "of " << total;
}

// What happens with full-range values on a CPU without VNNI: oneDNN's int8
// GEMM adds each pair of adjacent u8 * s8 products into a saturating int16
// (vpmaddubsw). 255 * 127 + 255 * 127 = 64770 > 32767, so with full-range
// activations and weights the accumulator silently clips and many outputs are
// wrong by thousands of units. Either 7-bit weights (|w| <= 64) or 7-bit
// activations (u8 <= 127) keep every pair sum within int16, and then the
// result is exact. With VNNI everything is exact.
TEST(QuantizedMatMulKernelTest, FullRangeValuesSaturateWithoutVnni) {
  std::mt19937 rng(5);
  QuantizedOpParams q = Quant(1.f, 0, {1.f}, DataType::kFloat32);
  QuantizedMatMulKernel kernel(q);
  Tensor full_a = RandomInt<uint8_t>({16, 64}, rng, 0, 255);
  Tensor full_w = RandomInt<int8_t>({64, 16}, rng, -127, 127);
  Tensor got, want;
  ASSERT_TRUE(kernel.Forward(full_a, full_w, nullptr, &got).ok());
  ASSERT_TRUE(
      QuantizedMatMulReference(q, false, full_a, full_w, nullptr, &want).ok());
  double max_err = 0;
  for (int64_t i = 0; i < got.num_elements(); ++i) {
    max_err = std::max<double>(
        max_err, std::fabs(got.data<float>()[i] - want.data<float>()[i]));
  }
  if (MaxExactInt8WeightMagnitude() >= 127) {
    EXPECT_EQ(max_err, 0);
  } else {
    EXPECT_GT(max_err, 1000) << "expected int16 saturation on this CPU";
  }
  // 7-bit activations with the same full-range weights: exact.
  Tensor seven_bit_a = RandomInt<uint8_t>({16, 64}, rng, 0, 127);
  ASSERT_TRUE(kernel.Forward(seven_bit_a, full_w, nullptr, &got).ok());
  ASSERT_TRUE(
      QuantizedMatMulReference(q, false, seven_bit_a, full_w, nullptr, &want)
          .ok());
  ExpectClose(got, want, 0);
}

TEST(QuantizedMatMulKernelTest, HandComputed) {
  // a u8 [1, 2] = [10, 20], zp 4, scale 0.5; b s8 [2, 2] = [[1, -1], [2, 3]],
  // per-column scales [0.25, 1]; bias [1, 0].
  // col 0: 0.5 * 0.25 * (6 * 1 + 16 * 2) + 1 = 5.75
  // col 1: 0.5 * 1 * (6 * -1 + 16 * 3) + 0 = 21
  Tensor a = Tensor::FromVector<uint8_t>({1, 2}, {10, 20});
  Tensor b = Tensor::FromVector<int8_t>({2, 2}, {1, -1, 2, 3});
  Tensor bias = Tensor::FromVector<float>({2}, {1, 0});
  QuantizedMatMulKernel f32(Quant(0.5f, 4, {0.25f, 1.f}, DataType::kFloat32));
  Tensor dst;
  ASSERT_TRUE(f32.Forward(a, b, &bias, &dst).ok());
  EXPECT_EQ(dst.ToVector<float>(), (std::vector<float>{5.75f, 21.f}));
  // Requantized to s8 with scale 0.5, zp -100: 11.5 -> 12 (even) - 100, and
  // 42 - 100.
  QuantizedMatMulKernel s8(
      Quant(0.5f, 4, {0.25f, 1.f}, DataType::kInt8, 0.5f, -100));
  ASSERT_TRUE(s8.Forward(a, b, &bias, &dst).ok());
  EXPECT_EQ(dst.ToVector<int8_t>(), (std::vector<int8_t>{-88, -58}));
}

}  // namespace
}  // namespace quantd
