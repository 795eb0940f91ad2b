#include "kernels/inner_product.h"

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

struct IpCase {
  Shape src, weights;
};

std::vector<IpCase> Cases() {
  return {
      {{1, 16}, {8, 16}},        {{5, 7}, {3, 7}},
      {{4, 3, 5, 5}, {10, 75}},  {{4, 3, 5, 5}, {10, 3, 5, 5}},
      {{2, 512}, {100, 512}},    {{3, 1}, {1, 1}},
      {{7, 64, 1, 1}, {33, 64}}, {{1, 2, 3, 4, 5}, {6, 120}},
      {{16, 300}, {17, 300}},
  };
}

TEST(InnerProductKernelTest, MatchesReferenceOverShapes) {
  std::mt19937 rng(1);
  for (const IpCase& c : Cases()) {
    SCOPED_TRACE(
        absl::StrCat(ShapeToString(c.src), " x ", ShapeToString(c.weights)));
    Tensor src = RandomFloat(c.src, rng);
    Tensor w = RandomFloat(c.weights, rng);
    Tensor bias = RandomFloat({c.weights[0]}, rng);
    const Shape out = {c.src[0], c.weights[0]};
    for (const PostOps& post :
         {PostOps{}, Post(true), Post(true, 0.3f, true, 0.5f)}) {
      for (bool with_bias : {false, true}) {
        Tensor addend = RandomFloat(out, rng);
        Tensor got = post.sum ? addend.Clone() : Tensor();
        Tensor want = post.sum ? addend.Clone() : Tensor();
        const Tensor* bp = with_bias ? &bias : nullptr;
        InnerProductKernel kernel(post);
        absl::Status s = kernel.Forward(src, w, bp, &got);
        ASSERT_TRUE(s.ok()) << s;
        ASSERT_TRUE(InnerProductReference(post, src, w, bp, &want).ok());
        EXPECT_EQ(got.shape(), out);
        ExpectClose(got, want, 1e-5);
      }
    }
  }
}

TEST(InnerProductReferenceTest, HandComputed) {
  // [[1, 2, 3]] x [[1, 0, 0], [1, 1, 1]]^T + [10, 20] = [[11, 26]].
  Tensor x = Tensor::FromVector<float>({1, 3}, {1, 2, 3});
  Tensor w = Tensor::FromVector<float>({2, 3}, {1, 0, 0, 1, 1, 1});
  Tensor b = Tensor::FromVector<float>({2}, {10, 20});
  Tensor dst;
  ASSERT_TRUE(InnerProductReference({}, x, w, &b, &dst).ok());
  EXPECT_EQ(dst.ToVector<float>(), (std::vector<float>{11, 26}));
}

TEST(QuantizedInnerProductKernelTest, MatchesReferenceWithSevenBitWeights) {
  std::mt19937 rng(2);
  std::uniform_real_distribution<float> scale(0.002f, 0.02f);
  int differing = 0, total = 0;
  for (const IpCase& c : Cases()) {
    const int64_t oc = c.weights[0];
    const Shape out = {c.src[0], oc};
    Tensor w = RandomInt<int8_t>(c.weights, rng, -64, 64);
    Tensor bias = RandomFloat({oc}, rng, -0.5f, 0.5f);
    for (DataType src_type : {DataType::kUInt8, DataType::kInt8}) {
      Tensor src = RandomQuantized(src_type, c.src, rng);
      for (DataType dst_type :
           {DataType::kFloat32, DataType::kUInt8, DataType::kInt8}) {
        for (int variant = 0; variant < 3; ++variant) {
          SCOPED_TRACE(absl::StrCat(
              ShapeToString(c.src), " x ", ShapeToString(c.weights), " ",
              DataTypeName(src_type), "->", DataTypeName(dst_type), " variant ",
              variant));
          QuantizedOpParams q;
          q.src_scale = 0.03f;
          q.src_zero_point = variant == 0                   ? 0
                             : src_type == DataType::kUInt8 ? 77
                                                            : 12;
          q.weight_scales.resize(variant == 1 ? 1 : oc);
          for (float& v : q.weight_scales) v = scale(rng);
          q.dst_type = dst_type;
          q.dst_scale = 0.08f;
          q.dst_zero_point = dst_type == DataType::kUInt8  ? 128
                             : dst_type == DataType::kInt8 ? -1
                                                           : 0;
          q.post_ops = variant == 1   ? Post(true)
                       : variant == 2 ? Post(false, 0, true, 2.f)
                                      : PostOps{};
          Tensor addend = dst_type == DataType::kFloat32
                              ? RandomFloat(out, rng, -3, 3)
                              : RandomQuantized(dst_type, out, rng);
          Tensor got = q.post_ops.sum ? addend.Clone() : Tensor();
          Tensor want = q.post_ops.sum ? addend.Clone() : Tensor();
          const Tensor* bp = variant == 1 ? nullptr : &bias;
          QuantizedInnerProductKernel kernel(q);
          absl::Status s = kernel.Forward(src, w, bp, &got);
          ASSERT_TRUE(s.ok()) << s;
          ASSERT_TRUE(
              QuantizedInnerProductReference(q, src, w, bp, &want).ok());
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

TEST(InnerProductKernelTest, CachesPrimitivesPerShape) {
  std::mt19937 rng(3);
  InnerProductKernel kernel;
  Tensor w = RandomFloat({4, 12}, rng);
  Tensor dst;
  for (int i = 0; i < 3; ++i) {
    ASSERT_TRUE(
        kernel.Forward(RandomFloat({2, 3, 2, 2}, rng), w, nullptr, &dst).ok());
  }
  EXPECT_EQ(kernel.cached_primitives(), 1u);
  ASSERT_TRUE(kernel.Forward(RandomFloat({5, 12}, rng), w, nullptr, &dst).ok());
  EXPECT_EQ(kernel.cached_primitives(), 2u);
  EXPECT_EQ(dst.shape(), (Shape{5, 4}));
}

void ExpectInvalid(const absl::Status& s, const std::string& message) {
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << s;
  EXPECT_THAT(std::string(s.message()), HasSubstr(message));
}

TEST(InnerProductKernelTest, RejectsBadArguments) {
  std::mt19937 rng(4);
  InnerProductKernel kernel;
  Tensor dst;
  ExpectInvalid(kernel.Forward(RandomFloat({2, 3, 4, 4}, rng),
                               RandomFloat({10, 50}, rng), nullptr, &dst),
                "inner product src f32[2,3,4,4] has 48 features per row but "
                "weights f32[10,50] have 50");
  ExpectInvalid(kernel.Forward(RandomFloat({8}, rng), RandomFloat({2, 8}, rng),
                               nullptr, &dst),
                "need at least 2 dims");
  Tensor bias = RandomFloat({3}, rng);
  ExpectInvalid(kernel.Forward(RandomFloat({2, 8}, rng),
                               RandomFloat({2, 8}, rng), &bias, &dst),
                "inner product bias is f32[3], expected f32[2]");
  ExpectInvalid(
      kernel.Forward(RandomFloat({2, 8}, rng),
                     RandomInt<int8_t>({2, 8}, rng, 0, 1), nullptr, &dst),
      "expects f32 src and weights");
  QuantizedOpParams q;
  q.weight_scales = {1.f};
  QuantizedInnerProductKernel qkernel(q);
  ExpectInvalid(qkernel.Forward(RandomInt<uint8_t>({2, 8}, rng, 0, 1),
                                RandomFloat({2, 8}, rng), nullptr, &dst),
                "int8 inner product weights are f32[2,8], expected s8");
  ExpectInvalid(
      qkernel.Forward(RandomFloat({2, 8}, rng),
                      RandomInt<int8_t>({2, 8}, rng, 0, 1), nullptr, &dst),
      "src is f32, expected u8 or s8");
}

}  // namespace
}  // namespace quantd
