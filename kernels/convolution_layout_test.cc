// The conv kernels on channels-last tensors (tensor.h): every combination
// of src and dst layout must compute what the plain reference computes.
#include <random>

#include "gtest/gtest.h"
#include "kernels/convolution.h"
#include "kernels/kernel_test_util.h"
#include "kernels/layout.h"

namespace quantd {
namespace {

Tensor InLayout(const Tensor& t, Layout layout) {
  absl::StatusOr<Tensor> out = ToLayout(t, layout);
  EXPECT_TRUE(out.ok()) << out.status();
  return *out;
}

struct Case {
  Layout src, dst;
};

class ConvLayoutTest : public ::testing::TestWithParam<Case> {};

TEST_P(ConvLayoutTest, FloatConvMatchesTheReference) {
  std::mt19937 rng(1);
  Tensor x = RandomFloat({2, 16, 9, 7}, rng);
  Tensor w = RandomFloat({32, 16, 3, 3}, rng);
  Tensor b = RandomFloat({32}, rng);
  ConvParams p;
  p.strides = {2, 1};
  p.pads_begin = {1, 0};
  p.pads_end = {1, 2};
  PostOps relu;
  relu.relu = true;
  Tensor want;
  ASSERT_TRUE(ConvolutionReference(p, relu, x, w, &b, &want).ok());
  ConvolutionKernel conv(p, relu);
  for (int round = 0; round < 2; ++round) {
    Tensor y;
    absl::Status s =
        conv.Forward(InLayout(x, GetParam().src), w, &b, &y, GetParam().dst);
    ASSERT_TRUE(s.ok()) << s;
    EXPECT_EQ(y.layout(), GetParam().dst);
    ExpectClose(InLayout(y, Layout::kPlain), want, 1e-4);
  }
}

TEST_P(ConvLayoutTest, DeconvMatchesTheReference) {
  std::mt19937 rng(2);
  Tensor x = RandomFloat({1, 8, 5, 6}, rng);
  Tensor w = RandomFloat({8, 4, 3, 3}, rng);
  ConvParams p;
  p.strides = {2, 2};
  Tensor want;
  ASSERT_TRUE(DeconvolutionReference(p, {}, x, w, nullptr, &want).ok());
  DeconvolutionKernel deconv(p);
  Tensor y;
  ASSERT_TRUE(
      deconv
          .Forward(InLayout(x, GetParam().src), w, nullptr, &y, GetParam().dst)
          .ok());
  EXPECT_EQ(y.layout(), GetParam().dst);
  ExpectClose(InLayout(y, Layout::kPlain), want, 1e-4);
}

TEST_P(ConvLayoutTest, Int8ConvMatchesTheReference) {
  std::mt19937 rng(3);
  for (DataType src_type : {DataType::kUInt8, DataType::kInt8}) {
    Tensor x = RandomQuantized(src_type, {2, 8, 6, 6}, rng);
    Tensor w = RandomInt<int8_t>({16, 8, 3, 3}, rng, -60, 60);
    Tensor b = RandomFloat({16}, rng);
    ConvParams p;
    p.pads_begin = {1, 1};
    p.pads_end = {1, 1};
    QuantizedOpParams q;
    q.src_scale = 0.05f;
    q.src_zero_point = src_type == DataType::kUInt8 ? 100 : -3;
    q.weight_scales.assign(16, 0.01f);
    q.dst_type = DataType::kUInt8;
    q.dst_scale = 0.1f;
    q.dst_zero_point = 7;
    Tensor want;
    ASSERT_TRUE(QuantizedConvolutionReference(p, q, x, w, &b, &want).ok());
    QuantizedConvolutionKernel conv(p, q);
    Tensor y;
    absl::Status s =
        conv.Forward(InLayout(x, GetParam().src), w, &b, &y, GetParam().dst);
    ASSERT_TRUE(s.ok()) << s;
    EXPECT_EQ(y.layout(), GetParam().dst);
    ExpectWithinOneQuantum(InLayout(y, Layout::kPlain), want);
  }
}

TEST_P(ConvLayoutTest, SumPostOpKeepsTheAddendsLayout) {
  std::mt19937 rng(4);
  Tensor x = RandomFloat({1, 8, 5, 5}, rng);
  Tensor w = RandomFloat({8, 8, 1, 1}, rng);
  Tensor addend = RandomFloat({1, 8, 5, 5}, rng);
  PostOps sum;
  sum.sum = true;
  Tensor want = addend.Clone();
  ASSERT_TRUE(ConvolutionReference({}, sum, x, w, nullptr, &want).ok());
  ConvolutionKernel conv({}, sum);
  // The addend arrives in src's layout; the requested dst layout yields.
  Tensor y = InLayout(addend, GetParam().src).Clone();
  ASSERT_TRUE(
      conv.Forward(InLayout(x, GetParam().src), w, nullptr, &y, GetParam().dst)
          .ok());
  EXPECT_EQ(y.layout(), GetParam().src);
  ExpectClose(InLayout(y, Layout::kPlain), want, 1e-4);
}

TEST(ConvPostOpVariantsTest, ShareOneCopyOfTheWeights) {
  std::mt19937 rng(5);
  Tensor x = RandomFloat({1, 8, 6, 6}, rng);
  Tensor w = RandomFloat({8, 8, 3, 3}, rng);
  ConvParams p;
  PostOps relu;
  relu.relu = true;
  Tensor want_plain, want_relu;
  ASSERT_TRUE(ConvolutionReference(p, {}, x, w, nullptr, &want_plain).ok());
  ASSERT_TRUE(ConvolutionReference(p, relu, x, w, nullptr, &want_relu).ok());
  ConvolutionKernel conv(p);
  Tensor y, z;
  ASSERT_TRUE(conv.Forward(x, w, nullptr, &y).ok());
  ASSERT_TRUE(conv.ForwardWithPostOps(relu, x, w, nullptr, &z).ok());
  ExpectClose(y, want_plain, 1e-4);
  ExpectClose(z, want_relu, 1e-4);
  EXPECT_EQ(conv.cached_primitives(), 2u);
  EXPECT_EQ(conv.cached_weights(), 1u);

  Tensor xq = RandomQuantized(DataType::kUInt8, {1, 8, 6, 6}, rng);
  Tensor wq = RandomInt<int8_t>({8, 8, 3, 3}, rng, -60, 60);
  QuantizedOpParams q;
  q.src_scale = 0.05f;
  q.src_zero_point = 120;
  q.weight_scales.assign(8, 0.01f);
  QuantizedOpParams q_relu = q;
  q_relu.post_ops = relu;
  Tensor want_q, want_q_relu;
  ASSERT_TRUE(
      QuantizedConvolutionReference(p, q, xq, wq, nullptr, &want_q).ok());
  ASSERT_TRUE(
      QuantizedConvolutionReference(p, q_relu, xq, wq, nullptr, &want_q_relu)
          .ok());
  QuantizedConvolutionKernel qconv(p, q);
  Tensor yq, zq;
  ASSERT_TRUE(qconv.Forward(xq, wq, nullptr, &yq).ok());
  ASSERT_TRUE(qconv.ForwardWithPostOps(relu, xq, wq, nullptr, &zq).ok());
  ExpectClose(yq, want_q, 1e-4);
  ExpectClose(zq, want_q_relu, 1e-4);
  EXPECT_EQ(qconv.cached_primitives(), 2u);
  EXPECT_EQ(qconv.cached_weights(), 1u);
}

INSTANTIATE_TEST_SUITE_P(
    Layouts, ConvLayoutTest,
    ::testing::Values(Case{Layout::kPlain, Layout::kChannelsLast},
                      Case{Layout::kChannelsLast, Layout::kChannelsLast},
                      Case{Layout::kChannelsLast, Layout::kPlain},
                      Case{Layout::kPlain, Layout::kPlain}));

}  // namespace
}  // namespace quantd
