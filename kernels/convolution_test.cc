#include "kernels/convolution.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "kernels/convolution_test_cases.h"
#include "kernels/dnnl_context.h"
#include "kernels/kernel_test_util.h"

namespace quantd {
namespace {

using conv_test::ConvCase;
using conv_test::ConvCases;
using conv_test::ExpectInvalid;
using conv_test::Params;
using ::testing::HasSubstr;

TEST(ConvOutputShapeTest, FollowsOnnxFormula) {
  ConvParams p = Params({2, 2}, {3, 3}, {3, 3});
  EXPECT_EQ(*ConvOutputShape(p, {1, 3, 224, 224}, {64, 3, 7, 7}),
            (Shape{1, 64, 112, 112}));
  EXPECT_EQ(*ConvOutputShape(Params({}, {}, {}, {2}), {4, 2, 10}, {3, 2, 3}),
            (Shape{4, 3, 6}));
  ConvParams t = Params({2, 2}, {1, 1}, {1, 1}, {}, 1, {1, 1});
  EXPECT_EQ(*DeconvOutputShape(t, {1, 8, 5, 5}, {8, 4, 3, 3}),
            (Shape{1, 4, 10, 10}));
}

TEST(ConvolutionKernelTest, MatchesReferenceOverShapes) {
  std::mt19937 rng(1);
  for (const ConvCase& c : ConvCases()) {
    SCOPED_TRACE(c.name);
    Tensor src = RandomFloat(c.src, rng);
    Tensor w = RandomFloat(c.weights, rng);
    Tensor b = RandomFloat({c.weights[0]}, rng);
    for (bool with_bias : {true, false}) {
      const Tensor* bias = with_bias ? &b : nullptr;
      ConvolutionKernel kernel(c.params);
      Tensor got, want;
      ASSERT_TRUE(kernel.Forward(src, w, bias, &got).ok());
      ASSERT_TRUE(ConvolutionReference(c.params, {}, src, w, bias, &want).ok());
      EXPECT_EQ(got.shape(), *ConvOutputShape(c.params, c.src, c.weights));
      ExpectClose(got, want, 1e-4);
    }
  }
}

TEST(ConvolutionKernelTest, PostOps) {
  std::mt19937 rng(2);
  const std::vector<PostOps> posts = {Post(true), Post(true, 0.1f),
                                      Post(false, 0, true, 0.5f),
                                      Post(true, 0, true, 1.f)};
  for (const ConvCase& c : ConvCases()) {
    SCOPED_TRACE(c.name);
    Tensor src = RandomFloat(c.src, rng);
    Tensor w = RandomFloat(c.weights, rng);
    Tensor b = RandomFloat({c.weights[0]}, rng);
    Shape out = *ConvOutputShape(c.params, c.src, c.weights);
    for (const PostOps& post : posts) {
      SCOPED_TRACE(absl::StrCat("relu ", post.relu, " alpha ", post.relu_alpha,
                                " sum ", post.sum));
      Tensor addend = RandomFloat(out, rng);
      Tensor got = addend.Clone(), want = addend.Clone();
      ConvolutionKernel kernel(c.params, post);
      ASSERT_TRUE(kernel.Forward(src, w, &b, &got).ok());
      ASSERT_TRUE(ConvolutionReference(c.params, post, src, w, &b, &want).ok());
      ExpectClose(got, want, 1e-4);
    }
  }
}

std::vector<ConvCase> DeconvCases() {
  return {
      {"stride2_outpad1",
       {2, 4, 5, 5},
       {4, 6, 3, 3},
       Params({2, 2}, {1, 1}, {1, 1}, {}, 1, {1, 1})},
      {"groups2_k4",
       {1, 4, 6, 5},
       {4, 3, 4, 4},
       Params({2, 2}, {1, 1}, {1, 1}, {}, 2)},
      {"depthwise",
       {2, 8, 7, 7},
       {8, 1, 3, 3},
       Params({2, 2}, {1, 1}, {1, 1}, {}, 8, {1, 1})},
      {"dilated", {1, 3, 6, 6}, {3, 5, 3, 3}, Params({}, {}, {}, {2, 2})},
      {"asym_stride_pad_outpad",
       {2, 5, 4, 6},
       {5, 3, 3, 2},
       Params({2, 3}, {0, 1}, {2, 0}, {}, 1, {1, 2})},
      {"groups3_outpad",
       {1, 6, 5, 4},
       {6, 2, 3, 3},
       Params({3, 2}, {1, 0}, {0, 1}, {1, 2}, 3, {2, 1})},
      {"deconv1d", {3, 3, 7}, {3, 5, 4}, Params({3}, {1}, {2}, {}, 1, {2})},
      {"deconv3d",
       {1, 2, 3, 4, 3},
       {2, 3, 2, 3, 2},
       Params({2, 1, 2}, {0, 1, 0}, {0, 1, 1}, {}, 1, {1, 0, 1})},
      {"unit_stride_no_pad", {2, 16, 6, 6}, {16, 16, 3, 3}, Params({}, {}, {})},
  };
}

TEST(DeconvolutionKernelTest, MatchesReferenceOverShapes) {
  std::mt19937 rng(3);
  for (const ConvCase& c : DeconvCases()) {
    SCOPED_TRACE(c.name);
    Tensor src = RandomFloat(c.src, rng);
    Tensor w = RandomFloat(c.weights, rng);
    Shape out = *DeconvOutputShape(c.params, c.src, c.weights);
    Tensor b = RandomFloat({out[1]}, rng);
    for (const PostOps& post : {PostOps{}, Post(true, 0, true, 0.5f)}) {
      Tensor addend = RandomFloat(out, rng);
      Tensor got = post.sum ? addend.Clone() : Tensor();
      Tensor want = post.sum ? addend.Clone() : Tensor();
      DeconvolutionKernel kernel(c.params, post);
      ASSERT_TRUE(kernel.Forward(src, w, &b, &got).ok());
      ASSERT_TRUE(
          DeconvolutionReference(c.params, post, src, w, &b, &want).ok());
      EXPECT_EQ(got.shape(), out);
      ExpectClose(got, want, 1e-4);
    }
  }
}

// The reference against a hand-computed case, so the comparisons above are
// not two implementations of the same mistake.
TEST(ConvolutionReferenceTest, HandComputed) {
  // 1-D, one channel: src [1, 2, 3, 4], kernel [1, 10], pad 1 each side,
  // stride 2: windows [0,1], [2,3], [4,0] -> 10, 32, 4.
  Tensor src = Tensor::FromVector<float>({1, 1, 4}, {1, 2, 3, 4});
  Tensor w = Tensor::FromVector<float>({1, 1, 2}, {1, 10});
  Tensor dst;
  ASSERT_TRUE(
      ConvolutionReference(Params({2}, {1}, {1}), {}, src, w, nullptr, &dst)
          .ok());
  EXPECT_EQ(dst.ToVector<float>(), (std::vector<float>{10, 32, 4}));
  // Transposed, stride 2, kernel [1, 10]: each input scatters 1x and 10x.
  // src [1, 2] -> [1, 10, 2, 20], output_padding 1 -> [1, 10, 2, 20, 0].
  Tensor s2 = Tensor::FromVector<float>({1, 1, 2}, {1, 2});
  ASSERT_TRUE(DeconvolutionReference(Params({2}, {}, {}, {}, 1, {1}), {}, s2, w,
                                     nullptr, &dst)
                  .ok());
  EXPECT_EQ(dst.ToVector<float>(), (std::vector<float>{1, 10, 2, 20, 0}));
}

// --- int8 ---

TEST(ConvolutionKernelTest, CachesPrimitivesPerShapeAndWeightsOnce) {
  std::mt19937 rng(6);
  ConvParams p = Params({}, {1, 1}, {1, 1});
  ConvolutionKernel kernel(p);
  Tensor w = RandomFloat({32, 16, 3, 3}, rng);
  Tensor dst;
  for (int i = 0; i < 3; ++i) {
    ASSERT_TRUE(
        kernel.Forward(RandomFloat({1, 16, 8, 8}, rng), w, nullptr, &dst).ok());
  }
  EXPECT_EQ(kernel.cached_primitives(), 1u);
  EXPECT_LE(kernel.cached_weights(), 1u);
  const size_t weights_after_first = kernel.cached_weights();
  ASSERT_TRUE(
      kernel.Forward(RandomFloat({4, 16, 8, 8}, rng), w, nullptr, &dst).ok());
  EXPECT_EQ(kernel.cached_primitives(), 2u);
  EXPECT_EQ(dst.shape(), (Shape{4, 32, 8, 8}));
  const size_t weights_before_w2 = kernel.cached_weights();
  // New weights (a new tensor) are reordered again, not confused with the
  // old ones.
  Tensor w2 = RandomFloat({32, 16, 3, 3}, rng);
  Tensor x = RandomFloat({1, 16, 8, 8}, rng);
  ASSERT_TRUE(kernel.Forward(x, w2, nullptr, &dst).ok());
  Tensor want;
  ASSERT_TRUE(ConvolutionReference(p, {}, x, w2, nullptr, &want).ok());
  ExpectClose(dst, want, 1e-4);
  EXPECT_EQ(kernel.cached_primitives(), 2u);
  EXPECT_EQ(kernel.cached_weights(), weights_before_w2 + weights_after_first);
}

TEST(ConvolutionKernelTest, ReusesDstOfTheRightShape) {
  std::mt19937 rng(7);
  ConvolutionKernel kernel(Params({}, {}, {}));
  Tensor dst(DataType::kFloat32, {1, 4, 6, 6});
  const void* storage = dst.raw_data();
  ASSERT_TRUE(kernel
                  .Forward(RandomFloat({1, 3, 8, 8}, rng),
                           RandomFloat({4, 3, 3, 3}, rng), nullptr, &dst)
                  .ok());
  EXPECT_EQ(dst.raw_data(), storage);
}

TEST(ConvolutionKernelTest, EmptyBatchAndZeroChannels) {
  std::mt19937 rng(8);
  ConvolutionKernel kernel(Params({}, {}, {}));
  Tensor dst;
  ASSERT_TRUE(kernel
                  .Forward(RandomFloat({0, 3, 8, 8}, rng),
                           RandomFloat({4, 3, 3, 3}, rng), nullptr, &dst)
                  .ok());
  EXPECT_EQ(dst.shape(), (Shape{0, 4, 6, 6}));
  // No input channels: the output is the bias.
  Tensor b = Tensor::FromVector<float>({2}, {1.5f, -2.f});
  ASSERT_TRUE(kernel
                  .Forward(Tensor(DataType::kFloat32, {1, 0, 3, 3}),
                           Tensor(DataType::kFloat32, {2, 0, 1, 1}), &b, &dst)
                  .ok());
  EXPECT_EQ(dst.shape(), (Shape{1, 2, 3, 3}));
  EXPECT_EQ(dst.data<float>()[0], 1.5f);
  EXPECT_EQ(dst.data<float>()[17], -2.f);
}

TEST(ConvolutionKernelTest, ConcurrentForwardOnOneKernel) {
  std::mt19937 rng(9);
  ConvParams p = Params({}, {1, 1}, {1, 1});
  ConvolutionKernel kernel(p);
  QuantizedConvolutionKernel qkernel(
      p, Quant(0.1f, 128, {0.01f}, DataType::kUInt8, 0.5f, 3));
  Tensor w = RandomFloat({16, 8, 3, 3}, rng);
  Tensor qw = RandomInt<int8_t>({16, 8, 3, 3}, rng, -60, 60);
  std::vector<Tensor> xs, qxs;
  for (int i = 0; i < 4; ++i) {
    xs.push_back(RandomFloat({2, 8, 9, 9}, rng));
    qxs.push_back(RandomInt<uint8_t>({2, 8, 9, 9}, rng, 0, 255));
  }
  std::vector<Tensor> got(4), qgot(4);
  std::vector<std::thread> threads;
  for (int i = 0; i < 4; ++i) {
    threads.emplace_back([&, i] {
      for (int r = 0; r < 5; ++r) {
        EXPECT_TRUE(kernel.Forward(xs[i], w, nullptr, &got[i]).ok());
        EXPECT_TRUE(qkernel.Forward(qxs[i], qw, nullptr, &qgot[i]).ok());
      }
    });
  }
  for (std::thread& t : threads) t.join();
  for (int i = 0; i < 4; ++i) {
    Tensor want, qwant;
    ASSERT_TRUE(ConvolutionReference(p, {}, xs[i], w, nullptr, &want).ok());
    ExpectClose(got[i], want, 1e-4);
    ASSERT_TRUE(QuantizedConvolutionReference(
                    p, Quant(0.1f, 128, {0.01f}, DataType::kUInt8, 0.5f, 3),
                    qxs[i], qw, nullptr, &qwant)
                    .ok());
    ExpectWithinQuanta(qgot[i], qwant, 1);
  }
  EXPECT_EQ(kernel.cached_primitives(), 1u);
}

TEST(ConvolutionKernelTest, RejectsBadArguments) {
  std::mt19937 rng(10);
  Tensor src = RandomFloat({1, 4, 8, 8}, rng);
  Tensor dst;
  auto run = [&](ConvParams p, const Tensor& x, const Tensor& w,
                 const Tensor* b = nullptr, PostOps post = {}) {
    ConvolutionKernel kernel(std::move(p), post);
    Tensor out;
    return kernel.Forward(x, w, b, &out);
  };
  ExpectInvalid(run({}, src, RandomFloat({4, 4, 3}, rng)),
                "conv weights have 3 dims, expected 4 for a 2-D convolution");
  ExpectInvalid(run({}, src, RandomFloat({4, 3, 3, 3}, rng)),
                "conv src has 4 channels, but weights [4,3,3,3] with 1 groups "
                "expect 3");
  ExpectInvalid(
      run(Params({}, {}, {}, {}, 3), src, RandomFloat({4, 2, 3, 3}, rng)),
      "with 3 groups expect 6");
  ExpectInvalid(
      run(Params({}, {}, {}, {}, 2), src, RandomFloat({5, 2, 3, 3}, rng)),
      "5 output channels, not divisible by 2 groups");
  ExpectInvalid(
      run(Params({}, {}, {}, {}, 0), src, RandomFloat({4, 4, 3, 3}, rng)),
      "groups is 0");
  ExpectInvalid(
      run(Params({1, 1, 1}, {}, {}), src, RandomFloat({4, 4, 3, 3}, rng)),
      "strides has 3 entries, expected 2");
  ExpectInvalid(
      run(Params({0, 1}, {}, {}), src, RandomFloat({4, 4, 3, 3}, rng)),
      "strides[0] is 0");
  ExpectInvalid(
      run(Params({}, {-1, 0}, {}), src, RandomFloat({4, 4, 3, 3}, rng)),
      "pads_begin[0] is -1");
  ExpectInvalid(run({}, src, RandomFloat({4, 4, 9, 3}, rng)),
                "smaller than the dilated kernel extent 9");
  ExpectInvalid(run(Params({}, {}, {}, {}, 1, {1, 1}), src,
                    RandomFloat({4, 4, 3, 3}, rng)),
                "only meaningful for ConvTranspose");
  ExpectInvalid(run({}, RandomFloat({4, 8}, rng), RandomFloat({4, 4}, rng)),
                "src has 2 dims");
  ExpectInvalid(run({}, RandomInt<int8_t>({1, 4, 8, 8}, rng, 0, 1),
                    RandomFloat({4, 4, 3, 3}, rng)),
                "expects f32 src and weights");
  Tensor bad_bias = RandomFloat({3}, rng);
  ExpectInvalid(run({}, src, RandomFloat({4, 4, 3, 3}, rng), &bad_bias),
                "conv bias is f32[3], expected f32[4]");
  ExpectInvalid(run({}, src, RandomFloat({4, 4, 3, 3}, rng), nullptr,
                    Post(false, 0, true)),
                "post-op sum needs dst to hold the addend");

  DeconvolutionKernel deconv(Params({2, 2}, {}, {}, {}, 1, {2, 0}));
  ExpectInvalid(
      deconv.Forward(src, RandomFloat({4, 2, 3, 3}, rng), nullptr, &dst),
      "output_padding[0] is 2, must be smaller than the stride 2");
  DeconvolutionKernel deconv2({});
  ExpectInvalid(
      deconv2.Forward(src, RandomFloat({3, 2, 3, 3}, rng), nullptr, &dst),
      "ConvTranspose src has 4 channels, but weights [3,2,3,3] "
      "expect 3");
  DeconvolutionKernel deconv3(Params({}, {2, 2}, {2, 2}));
  ExpectInvalid(deconv3.Forward(RandomFloat({1, 4, 1, 1}, rng),
                                RandomFloat({4, 2, 3, 3}, rng), nullptr, &dst),
                "leave no output");
}

}  // namespace
}  // namespace quantd
