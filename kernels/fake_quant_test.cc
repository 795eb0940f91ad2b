#include "kernels/fake_quant.h"

#include <random>

#include "gtest/gtest.h"
#include "kernels/quantize.h"

namespace quantd {
namespace {

Tensor Random(Shape shape, uint32_t seed, float scale = 1.f) {
  Tensor t(DataType::kFloat32, shape);
  std::mt19937 rng(seed);
  std::normal_distribution<float> n(0.f, scale);
  for (int64_t i = 0; i < t.num_elements(); ++i) {
    t.mutable_data<float>()[i] = n(rng);
  }
  return t;
}

// The forward pass is QuantizeLinear then DequantizeLinear, per axis.
TEST(FakeQuantTest, ForwardEqualsQuantizeThenDequantize) {
  const Tensor x = Random({4, 6}, 1, 2.f);
  FakeQuantParams p;
  p.scales = {0.1f, 0.2f, 0.05f, 0.3f};
  p.zero_points = {0, 3, -2, 1};
  p.axis = 0;
  p.qmin = -8;
  p.qmax = 7;
  Tensor y;
  ASSERT_TRUE(FakeQuantForward(x, p, &y).ok());
  Tensor scale = Tensor::FromVector<float>({4}, p.scales);
  Tensor zp(DataType::kInt8, {4});
  for (int i = 0; i < 4; ++i) zp.mutable_data<int8_t>()[i] = p.zero_points[i];
  QuantizeOptions qo;
  qo.axis = 0;
  qo.output_type = DataType::kInt8;
  qo.qmin = p.qmin;
  qo.qmax = p.qmax;
  Tensor q, back;
  ASSERT_TRUE(QuantizeLinear(x, scale, &zp, qo, &q).ok());
  DequantizeOptions dqo;
  dqo.axis = 0;
  ASSERT_TRUE(DequantizeLinear(q, scale, &zp, dqo, &back).ok());
  for (int64_t i = 0; i < x.num_elements(); ++i) {
    EXPECT_FLOAT_EQ(y.data<float>()[i], back.data<float>()[i]) << i;
  }
}

// STE clipped at the range; LSQ scale gradients match the double reference.
TEST(FakeQuantTest, BackwardMatchesReferencePerTensorAxisAndBlocks) {
  const Tensor x = Random({3, 8}, 2, 1.5f);
  const Tensor dy = Random({3, 8}, 3);
  for (int layout = 0; layout < 3; ++layout) {
    FakeQuantParams p;
    p.qmin = -4;
    p.qmax = 3;
    if (layout == 0) {
      p.scales = {0.2f};
    } else if (layout == 1) {
      p.axis = 0;
      p.scales = {0.1f, 0.3f, 0.25f};
      p.zero_points = {1, 0, -1};
    } else {
      p.axis = 1;
      p.group_size = 3;  // 8 = 3 + 3 + 2: a shorter last block
      p.scales = {0.1f, 0.2f, 0.3f, 0.15f, 0.25f, 0.35f, 0.12f, 0.22f, 0.32f};
    }
    Tensor dx, dx_ref;
    std::vector<float> ds;
    std::vector<double> ds_ref;
    ASSERT_TRUE(FakeQuantBackward(x, p, dy, &dx, &ds).ok());
    ASSERT_TRUE(FakeQuantBackwardReference(x, p, dy, &dx_ref, &ds_ref).ok());
    int clipped = 0;
    for (int64_t i = 0; i < x.num_elements(); ++i) {
      EXPECT_EQ(dx.data<float>()[i], dx_ref.data<float>()[i]);
      clipped += dx.data<float>()[i] == 0.f;
    }
    EXPECT_GT(clipped, 0) << "layout " << layout << ": nothing was clipped";
    ASSERT_EQ(ds.size(), ds_ref.size());
    for (size_t k = 0; k < ds.size(); ++k) {
      EXPECT_NEAR(ds[k], ds_ref[k], 1e-5 + 1e-4 * std::fabs(ds_ref[k]));
    }
  }
}

// Inside the range the forward pass is x plus a bounded rounding error,
// so STE's identity gradient and the LSQ gradient's sign make a step along
// -dscale reduce a loss that prefers a larger scale.
TEST(FakeQuantTest, LsqGradientPointsTowardFewerClippedValues) {
  const Tensor x = Random({1000}, 4, 3.f);
  FakeQuantParams p;
  p.scales = {0.05f};  // far too small: most values clip
  p.qmin = -8;
  p.qmax = 7;
  // Loss = 0.5 * sum((y - x)^2): dy = y - x.
  Tensor y;
  ASSERT_TRUE(FakeQuantForward(x, p, &y).ok());
  Tensor dy(DataType::kFloat32, {1000});
  for (int i = 0; i < 1000; ++i) {
    dy.mutable_data<float>()[i] = y.data<float>()[i] - x.data<float>()[i];
  }
  Tensor dx;
  std::vector<float> ds;
  ASSERT_TRUE(FakeQuantBackward(x, p, dy, &dx, &ds).ok());
  EXPECT_LT(ds[0], 0.f);  // gradient descent grows the scale
}

TEST(FakeQuantTest, RejectsBadParameters) {
  const Tensor x = Random({2, 3}, 5);
  Tensor y;
  FakeQuantParams p;
  p.scales = {0.f};
  EXPECT_FALSE(FakeQuantForward(x, p, &y).ok());
  p.scales = {1.f, 1.f};
  EXPECT_FALSE(FakeQuantForward(x, p, &y).ok());
  p.scales = {1.f};
  p.qmin = 5;
  p.qmax = 5;
  EXPECT_FALSE(FakeQuantForward(x, p, &y).ok());
  p.qmin = -1;
  p.axis = 7;
  EXPECT_FALSE(FakeQuantForward(x, p, &y).ok());
}

}  // namespace
}  // namespace quantd
