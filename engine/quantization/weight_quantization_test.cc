#include "engine/quantization/weight_quantization.h"

#include <cmath>
#include <random>

#include "absl/strings/str_cat.h"
#include "engine/onnx/model_loader.h"
#include "engine/passes/graph_cleanup.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "kernels/quantize.h"

namespace quantd {
namespace {

using ::testing::HasSubstr;

Tensor Random(Shape shape, uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> d(0.f, 0.5f);
  Tensor t(DataType::kFloat32, std::move(shape));
  for (float& v : t.mutable_span<float>()) v = d(rng);
  return t;
}

// Every element's error is at most half a step of its own scale, unless it
// was clipped (which RTN min-max parameters never do).
void ExpectWithinHalfStep(const Tensor& w, const QuantParams& p) {
  absl::StatusOr<Tensor> fq = FakeQuantizeWeights(w, p);
  ASSERT_TRUE(fq.ok()) << fq.status();
  for (int64_t i = 0; i < w.num_elements(); ++i) {
    const float s = p.scales[ParamIndex(p, w.shape(), i)];
    ASSERT_LE(std::fabs(fq->data<float>()[i] - w.data<float>()[i]),
              0.5f * s * 1.0001f)
        << "at " << i;
  }
}

TEST(WeightQuantizationTest, Int3AndInt2NarrowTheInt4Range) {
  const Tensor w = Random({16, 8}, 7);
  const WeightSlot slot{.node = "mm",
                        .op_type = "MatMul",
                        .initializer = "w",
                        .channel_axis = 1,
                        .input_axis = 0};
  struct Case {
    int bits;
    bool symmetric;
    int32_t qmin, qmax;
  };
  for (const Case c :
       {Case{0, true, -7, 7}, Case{4, false, -8, 7}, Case{3, true, -3, 3},
        Case{3, false, -4, 3}, Case{2, true, -1, 1}, Case{2, false, -2, 1}}) {
    WeightScheme scheme{.type = QuantType::kInt4, .symmetric = c.symmetric};
    scheme.bits = c.bits;
    absl::StatusOr<QuantParams> p = ComputeWeightParams(w, slot, scheme);
    ASSERT_TRUE(p.ok()) << p.status();
    EXPECT_EQ(p->type, QuantType::kInt4);
    EXPECT_EQ(p->qmin, c.qmin) << c.bits << " bits";
    EXPECT_EQ(p->qmax, c.qmax) << c.bits << " bits";
    absl::StatusOr<std::vector<int32_t>> q = QuantizeWeightValues(w, *p);
    ASSERT_TRUE(q.ok());
    int32_t lo = 100, hi = -100;
    for (int32_t v : *q) lo = std::min(lo, v), hi = std::max(hi, v);
    EXPECT_GE(lo, c.qmin);
    EXPECT_LE(hi, c.qmax);
    EXPECT_EQ(hi - lo, c.qmax - c.qmin) << "min-max uses the whole range";
    ExpectWithinHalfStep(w, *p);
  }
}

TEST(WeightQuantizationTest, FindsTheFixtureCnnWeights) {
  absl::StatusOr<LoadedModel> m = LoadModelFromFile(
      absl::StrCat(QUANTD_TESTDATA_DIR, "/fmnist_cnn/model.onnx"));
  ASSERT_TRUE(m.ok());
  ASSERT_TRUE(PrepareGraph(m->graph, DefaultOpRegistry()).ok());
  absl::StatusOr<std::vector<WeightSlot>> slots =
      FindQuantizableWeights(m->graph, {});
  ASSERT_TRUE(slots.ok());
  ASSERT_EQ(slots->size(), 5u);  // 4 Conv + 1 Gemm
  EXPECT_EQ(slots->back().op_type, "Gemm");
  EXPECT_EQ(slots->back().channel_axis, 0);  // transB = 1: [N, K]
  WeightSelection no_gemm;
  no_gemm.excluded_op_types = {"Gemm"};
  EXPECT_EQ(FindQuantizableWeights(m->graph, no_gemm)->size(), 4u);
  WeightSelection typo;
  typo.excluded_nodes = {"no_such_node"};
  absl::StatusOr<std::vector<WeightSlot>> bad =
      FindQuantizableWeights(m->graph, typo);
  ASSERT_FALSE(bad.ok());
  EXPECT_THAT(bad.status().message(), HasSubstr("'no_such_node'"));
}

TEST(WeightQuantizationTest, PerChannelSymmetricInt8) {
  Tensor w = Random({8, 4, 3, 3}, 1);
  WeightSlot conv{"c", "Conv", "w", 0, 1};
  WeightScheme scheme;
  scheme.int8_max_magnitude = 127;
  absl::StatusOr<QuantParams> p = ComputeWeightParams(w, conv, scheme);
  ASSERT_TRUE(p.ok()) << p.status();
  EXPECT_EQ(p->axis, 0);
  EXPECT_EQ(p->scales.size(), 8u);
  EXPECT_TRUE(p->zero_points.empty());
  EXPECT_EQ(p->qmin, -127);
  ExpectWithinHalfStep(w, *p);
  // 7-bit weights on CPUs without VNNI.
  scheme.int8_max_magnitude = 64;
  EXPECT_EQ(ComputeWeightParams(w, conv, scheme)->qmax, 64);
}

TEST(WeightQuantizationTest, PerGroupInt4AlongTheInputDimension) {
  Tensor w = Random({64, 10}, 2);  // MatMul [K, N]
  WeightSlot mm{"m", "MatMul", "w", 1, 0};
  WeightScheme scheme;
  scheme.type = QuantType::kInt4;
  scheme.granularity = WeightGranularity::kPerGroup;
  scheme.group_size = 32;
  absl::StatusOr<QuantParams> p = ComputeWeightParams(w, mm, scheme);
  ASSERT_TRUE(p.ok()) << p.status();
  EXPECT_EQ(p->scales_shape, (Shape{2, 10}));
  EXPECT_EQ(p->scales.size(), 20u);
  EXPECT_EQ(p->qmax, 7);
  EXPECT_EQ(p->qmin, -7);
  ExpectWithinHalfStep(w, *p);
  // Element (k, n) uses scale (k / 32, n).
  EXPECT_EQ(ParamIndex(*p, w.shape(), 33 * 10 + 4), 1 * 10 + 4);

  scheme.group_size = 48;
  absl::StatusOr<QuantParams> bad = ComputeWeightParams(w, mm, scheme);
  ASSERT_FALSE(bad.ok());
  EXPECT_THAT(
      bad.status().message(),
      HasSubstr("group size 48 does not divide the input dimension 64"));
}

TEST(WeightQuantizationTest, AsymmetricUsesAZeroPoint) {
  Tensor w = Tensor::FromVector<float>({2, 4}, {0, 1, 2, 3, -1, 0, 1, 7});
  WeightSlot gemm{"g", "Gemm", "w", 0, 1};
  WeightScheme scheme;
  scheme.symmetric = false;
  absl::StatusOr<QuantParams> p = ComputeWeightParams(w, gemm, scheme);
  ASSERT_TRUE(p.ok());
  ASSERT_EQ(p->zero_points.size(), 2u);
  EXPECT_EQ(p->qmin, -128);
  EXPECT_EQ(p->zero_points[0], -128);  // row 0 is >= 0: zero maps to qmin
  ExpectWithinHalfStep(w, *p);
}

TEST(WeightQuantizationTest, AllZeroChannelsGetAUsableScale) {
  Tensor w = Tensor::Zeros(DataType::kFloat32, {3, 5});
  WeightSlot gemm{"g", "Gemm", "w", 0, 1};
  absl::StatusOr<QuantParams> p = ComputeWeightParams(w, gemm, {});
  ASSERT_TRUE(p.ok());
  for (float s : p->scales) EXPECT_EQ(s, 1.f);
  ExpectWithinHalfStep(w, *p);
}

// A channel of denormal weights (dead after BatchNorm folding) used to get
// a denormal scale (max/127), which the int8 kernels refuse: the product
// with the activation scale underflows.
TEST(WeightQuantizationTest, NearZeroChannelsGetAScaleTheKernelsAccept) {
  Tensor w = Tensor::FromVector<float>({2, 3}, {1e-39f, -2e-40f, 0.f,  //
                                                0.5f, -1.f, 0.25f});
  WeightSlot gemm{"g", "Gemm", "w", 0, 1};
  for (bool symmetric : {true, false}) {
    WeightScheme scheme;
    scheme.symmetric = symmetric;
    scheme.int8_max_magnitude = 127;  // not this CPU's choice (64 on AVX2)
    absl::StatusOr<QuantParams> p = ComputeWeightParams(w, gemm, scheme);
    ASSERT_TRUE(p.ok());
    EXPECT_EQ(p->scales[0], kMinQuantScale);
    EXPECT_FLOAT_EQ(p->scales[1], symmetric ? 1.f / 127 : 1.5f / 255);
    EXPECT_TRUE(std::isnormal(p->scales[0] * kMinQuantScale));
  }
}

// Codes are the integers in a tensor: dequantized they are the fake-quant
// floats bit for bit (per group, asymmetric), and the plan's float weight
// of a coded initializer is their dequantization.
TEST(WeightQuantizationTest, CodesHoldTheFakeQuantWeights) {
  const Tensor w = Random({64, 10}, 7);
  WeightSlot mm{"m", "MatMul", "w", 1, 0};
  for (bool symmetric : {true, false}) {
    WeightScheme scheme;
    scheme.type = QuantType::kInt4;
    scheme.granularity = WeightGranularity::kPerGroup;
    scheme.group_size = 16;
    scheme.symmetric = symmetric;
    absl::StatusOr<QuantParams> p = ComputeWeightParams(w, mm, scheme);
    ASSERT_TRUE(p.ok()) << p.status();
    absl::StatusOr<WeightCodes> codes = QuantizeWeightCodes(w, *p);
    ASSERT_TRUE(codes.ok()) << codes.status();
    EXPECT_EQ(codes->dtype(), DataType::kInt8);
    EXPECT_EQ(codes->bits(), 4);
    EXPECT_EQ(codes->shape(), w.shape());
    EXPECT_EQ(codes->byte_size(), (w.num_elements() + 1) / 2);
    absl::StatusOr<std::vector<int32_t>> values = QuantizeWeightValues(w, *p);
    ASSERT_TRUE(values.ok());
    std::vector<int32_t> held;
    const Tensor unpacked = codes->Values();
    for (int8_t v : unpacked.span<int8_t>()) held.push_back(v);
    EXPECT_EQ(held, *values);
    absl::StatusOr<Tensor> floats = DequantizeWeightCodes(*codes, *p);
    absl::StatusOr<Tensor> fq = FakeQuantizeWeights(w, *p);
    ASSERT_TRUE(floats.ok()) << floats.status();
    ASSERT_TRUE(fq.ok()) << fq.status();
    EXPECT_EQ(floats->ToVector<float>(), fq->ToVector<float>());

    Graph g;
    g.initializers["w"] = w;
    QuantizationPlan plan;
    plan.weights["w"] = *p;
    absl::StatusOr<Tensor> plain = PlanFloatWeight(g, plan, "w");
    ASSERT_TRUE(plain.ok());
    EXPECT_EQ(plain->raw_data(), w.raw_data());  // the graph's, shared
    plan.weight_codes["w"] = *codes;
    absl::StatusOr<Tensor> coded = PlanFloatWeight(g, plan, "w");
    ASSERT_TRUE(coded.ok()) << coded.status();
    EXPECT_EQ(coded->ToVector<float>(), fq->ToVector<float>());
  }
}

// The report's weight error, computed in place, equals the error of the
// materialized fake-quant weights: for the graph's weights, an update, and
// codes (here, round-to-nearest's moved one step towards zero).
TEST(WeightQuantizationTest, RelativeWeightErrorWithoutCopies) {
  const Tensor w = Random({32, 12}, 9);
  WeightSlot mm{"m", "MatMul", "w", 1, 0};
  WeightScheme scheme;
  scheme.type = QuantType::kInt4;
  absl::StatusOr<QuantParams> p = ComputeWeightParams(w, mm, scheme);
  ASSERT_TRUE(p.ok()) << p.status();
  auto materialized = [&](const Tensor& rounded) {
    double num = 0, den = 0;
    for (int64_t i = 0; i < w.num_elements(); ++i) {
      const double d = double{w.data<float>()[i]} - rounded.data<float>()[i];
      num += d * d;
      den += double{w.data<float>()[i]} * w.data<float>()[i];
    }
    return std::sqrt(num / den);
  };
  Graph g;
  g.initializers["w"] = w;
  QuantizationPlan plan;
  plan.weights["w"] = *p;
  absl::StatusOr<double> plain = RelativeWeightError(g, plan, "w", *p);
  ASSERT_TRUE(plain.ok()) << plain.status();
  EXPECT_DOUBLE_EQ(*plain, materialized(*FakeQuantizeWeights(w, *p)));

  const Tensor moved = Random({32, 12}, 10);
  plan.updated_initializers["w"] = moved;
  absl::StatusOr<double> updated = RelativeWeightError(g, plan, "w", *p);
  ASSERT_TRUE(updated.ok()) << updated.status();
  EXPECT_DOUBLE_EQ(*updated, materialized(*FakeQuantizeWeights(moved, *p)));

  plan.updated_initializers.clear();
  Tensor moved_codes = QuantizeWeightCodes(w, *p)->Values();
  for (int8_t& v : moved_codes.mutable_span<int8_t>()) v -= (v > 0) - (v < 0);
  const WeightCodes codes = *WeightCodes::FromValues(moved_codes, 4);
  plan.weight_codes["w"] = codes;
  absl::StatusOr<double> coded = RelativeWeightError(g, plan, "w", *p);
  ASSERT_TRUE(coded.ok()) << coded.status();
  EXPECT_DOUBLE_EQ(*coded, materialized(*DequantizeWeightCodes(codes, *p)));
  EXPECT_GT(*coded, *plain);
}

TEST(WeightQuantizationTest, CodesOfTheWrongTypeAreRefused) {
  QuantParams p;
  p.type = QuantType::kUInt8;
  p.qmin = 0;
  p.qmax = 255;
  p.scales = {0.5f};
  absl::StatusOr<Tensor> r = DequantizeWeightCodes(
      *WeightCodes::FromValues(Tensor::Zeros(DataType::kInt8, {2, 2}), 8), p);
  ASSERT_FALSE(r.ok());
  EXPECT_THAT(r.status().message(), HasSubstr("need uint8 codes"));
  // uint4 codes for uint8 parameters: the right holder, the wrong width.
  r = DequantizeWeightCodes(
      *WeightCodes::FromValues(Tensor::Zeros(DataType::kUInt8, {2, 2}), 4), p);
  ASSERT_FALSE(r.ok());
  EXPECT_THAT(r.status().message(), HasSubstr("uint4 [2,2]"));
  p.axis = 0;
  p.scales = {0.5f};  // one scale for two channels
  r = DequantizeWeightCodes(
      *WeightCodes::FromValues(Tensor::Zeros(DataType::kUInt8, {2, 2}), 8), p);
  ASSERT_FALSE(r.ok());
  EXPECT_THAT(r.status().message(), HasSubstr("do not match"));
}

}  // namespace
}  // namespace quantd
