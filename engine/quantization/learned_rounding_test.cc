#include "engine/quantization/learned_rounding.h"

#include <cmath>
#include <random>

#include "engine/quantization/gptq.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace quantd {
namespace {

using ::testing::HasSubstr;

Tensor Random(Shape shape, uint32_t seed, float stddev = 0.5f) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> d(0.f, stddev);
  Tensor t(DataType::kFloat32, std::move(shape));
  for (float& v : t.mutable_span<float>()) v = d(rng);
  return t;
}

// sum x x^T over `rows` inputs of dimension k with correlated features
// (x = z A for a random A), as real layer inputs are.
std::vector<float> Hessian(int64_t k, int64_t rows, uint32_t seed) {
  const Tensor a = Random({k, k}, seed);
  const Tensor z = Random({rows, k}, seed + 1, 1.f);
  std::vector<double> x(rows * k, 0);
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t j = 0; j < k; ++j)
      for (int64_t t = 0; t < k; ++t)
        x[r * k + j] += z.data<float>()[r * k + t] * a.data<float>()[t * k + j];
  std::vector<float> h(k * k, 0.f);
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t i = 0; i < k; ++i)
      for (int64_t j = 0; j < k; ++j)
        h[i * k + j] += x[r * k + i] * x[r * k + j];
  return h;
}

// The reference loss: sum over output channels c of d_c^T H_c d_c / rows,
// d_c the channel's weight error; `channel_input(c, i)` is the flat index
// of input i of channel c.
template <typename FlatFn>
double ReferenceLoss(const Tensor& w, const Tensor& wq, int64_t n, int64_t k,
                     const std::vector<float>& h, int64_t blocks, int64_t rows,
                     FlatFn channel_input) {
  double loss = 0;
  for (int64_t c = 0; c < n; ++c) {
    const float* hb = h.data() + (c / (n / blocks)) * k * k;
    for (int64_t i = 0; i < k; ++i) {
      const double di = w.data<float>()[channel_input(c, i)] -
                        wq.data<float>()[channel_input(c, i)];
      for (int64_t j = 0; j < k; ++j) {
        const double dj = w.data<float>()[channel_input(c, j)] -
                          wq.data<float>()[channel_input(c, j)];
        loss += di * hb[i * k + j] * dj;
      }
    }
  }
  return loss / rows;
}

const WeightSlot kMatMul{.node = "mm",
                         .op_type = "MatMul",
                         .initializer = "w",
                         .channel_axis = 1,
                         .input_axis = 0};

TEST(LearnedRoundingTest, LowersTheLayerLossBelowRoundToNearest) {
  const int64_t k = 64, n = 16, rows = 256;
  const Tensor w = Random({k, n}, 1);
  const std::vector<float> h = Hessian(k, rows, 2);
  for (const WeightScheme& scheme :
       {WeightScheme{.type = QuantType::kInt4},
        WeightScheme{.type = QuantType::kInt4,
        .symmetric = false,
        .granularity = WeightGranularity::kPerGroup,
        .group_size = 32,
        .bits = 3},
        WeightScheme{.type = QuantType::kInt4,
        .symmetric = false,
        .granularity = WeightGranularity::kPerGroup,
        .group_size = 32,
        .bits = 2}}) {
    SCOPED_TRACE(SchemeBits(scheme));
    absl::StatusOr<LearnedRoundingResult> r =
        LearnRounding(w, kMatMul, scheme, h, 1, rows, {});
    ASSERT_TRUE(r.ok()) << r.status();
    EXPECT_LT(r->loss, 0.8 * r->rtn_loss);
    EXPECT_GT(r->channels_changed, n / 2);
    // The loss it reports is the loss of the weights it returns.
    const double reference =
        ReferenceLoss(w, r->weights, n, k, h, 1, rows,
                      [&](int64_t c, int64_t i) { return i * n + c; });
    EXPECT_NEAR(r->loss, reference, 1e-4 * reference);
    // Every weight is on the grid of the parameters it returns, within the
    // scheme's integer range.
    absl::StatusOr<Tensor> fq = FakeQuantizeWeights(r->weights, r->params);
    ASSERT_TRUE(fq.ok());
    for (int64_t e = 0; e < w.num_elements(); ++e) {
      ASSERT_FLOAT_EQ(fq->data<float>()[e], r->weights.data<float>()[e]);
    }
    absl::StatusOr<QuantParams> rtn = ComputeWeightParams(w, kMatMul, scheme);
    EXPECT_EQ(r->params.qmin, rtn->qmin);
    EXPECT_EQ(r->params.qmax, rtn->qmax);
  }
}

// Started from GPTQ's result, the first step is GPTQ's rounding, and the
// steps after it only keep what lowers a channel's loss.
TEST(LearnedRoundingTest, StartedFromGptqItIsNeverWorseThanGptq) {
  const int64_t k = 64, n = 16, rows = 256;
  const Tensor w = Random({k, n}, 1);
  const std::vector<float> h = Hessian(k, rows, 2);
  double improvement_at_2_bits = 0;
  for (int bits : {4, 3, 2}) {
    SCOPED_TRACE(bits);
    const WeightScheme scheme{.type = QuantType::kInt4,
                              .symmetric = false,
                              .granularity = WeightGranularity::kPerGroup,
                              .group_size = 32,
                              .bits = bits};
    absl::StatusOr<GptqResult> g = GptqQuantize(
        w, kMatMul, scheme, std::vector<double>(h.begin(), h.end()), rows, {});
    ASSERT_TRUE(g.ok()) << g.status();
    const RoundingStart start{g->params, g->weights};
    absl::StatusOr<LearnedRoundingResult> r =
        LearnRounding(w, kMatMul, scheme, h, 1, rows, {}, &start);
    ASSERT_TRUE(r.ok()) << r.status();
    EXPECT_NEAR(r->rtn_loss, g->gptq_loss, 1e-4 * g->gptq_loss);
    EXPECT_LE(r->loss, g->gptq_loss * (1 + 1e-6));
    const double reference =
        ReferenceLoss(w, r->weights, n, k, h, 1, rows,
                      [&](int64_t c, int64_t i) { return i * n + c; });
    EXPECT_NEAR(r->loss, reference, 1e-4 * reference);
    if (bits == 2) improvement_at_2_bits = 1 - r->loss / g->gptq_loss;
  }
  // Measured 25% on this layer; GPTQ's own error feedback leaves most of
  // the 2-bit choices to improve on.
  EXPECT_GT(improvement_at_2_bits, 0.1);
}

TEST(LearnedRoundingTest, ZeroIterationsIsRoundToNearest) {
  const int64_t k = 32, n = 8, rows = 64;
  const Tensor w = Random({k, n}, 3);
  const WeightScheme scheme{.type = QuantType::kInt4, .symmetric = false};
  absl::StatusOr<LearnedRoundingResult> r = LearnRounding(
      w, kMatMul, scheme, Hessian(k, rows, 4), 1, rows, {.iterations = 0});
  ASSERT_TRUE(r.ok()) << r.status();
  absl::StatusOr<QuantParams> rtn = ComputeWeightParams(w, kMatMul, scheme);
  absl::StatusOr<Tensor> expected = FakeQuantizeWeights(w, *rtn);
  EXPECT_EQ(r->params.scales, rtn->scales);
  EXPECT_EQ(r->params.zero_points, rtn->zero_points);
  for (int64_t e = 0; e < w.num_elements(); ++e) {
    ASSERT_EQ(r->weights.data<float>()[e], expected->data<float>()[e]);
  }
  EXPECT_EQ(r->loss, r->rtn_loss);
  EXPECT_EQ(r->channels_changed, 0);
}

// Gemm with transB stores the same weight as [N, K]: the result is the
// MatMul's, transposed.
TEST(LearnedRoundingTest, GemmOrientationGivesTheTransposedResult) {
  const int64_t k = 32, n = 8, rows = 64;
  const Tensor w = Random({k, n}, 5);
  Tensor wt(DataType::kFloat32, {n, k});
  for (int64_t i = 0; i < k; ++i)
    for (int64_t c = 0; c < n; ++c)
      wt.mutable_data<float>()[c * k + i] = w.data<float>()[i * n + c];
  const std::vector<float> h = Hessian(k, rows, 6);
  const WeightScheme scheme{.type = QuantType::kInt4};
  const WeightSlot gemm{.node = "g",
                        .op_type = "Gemm",
                        .initializer = "w",
                        .channel_axis = 0,
                        .input_axis = 1};
  absl::StatusOr<LearnedRoundingResult> a =
      LearnRounding(w, kMatMul, scheme, h, 1, rows, {});
  absl::StatusOr<LearnedRoundingResult> b =
      LearnRounding(wt, gemm, scheme, h, 1, rows, {});
  ASSERT_TRUE(a.ok() && b.ok());
  EXPECT_DOUBLE_EQ(a->loss, b->loss);
  for (int64_t i = 0; i < k; ++i)
    for (int64_t c = 0; c < n; ++c)
      ASSERT_EQ(a->weights.data<float>()[i * n + c],
                b->weights.data<float>()[c * k + i]);
}

// A depthwise Conv has one Hessian per group (its channel's 3x3 patches).
TEST(LearnedRoundingTest, GroupedConvUsesEachGroupsHessian) {
  const int64_t oc = 8, k = 9, rows = 128;
  const Tensor w = Random({oc, 1, 3, 3}, 7);
  std::vector<float> h;
  for (int64_t g = 0; g < oc; ++g) {
    const std::vector<float> hg = Hessian(k, rows, 10 + g);
    h.insert(h.end(), hg.begin(), hg.end());
  }
  const WeightSlot conv{.node = "dw",
                        .op_type = "Conv",
                        .initializer = "w",
                        .channel_axis = 0,
                        .input_axis = 1};
  absl::StatusOr<LearnedRoundingResult> r = LearnRounding(
      w, conv, {.type = QuantType::kInt4}, h, oc, rows, {.iterations = 100});
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_LT(r->loss, r->rtn_loss);
  const double reference =
      ReferenceLoss(w, r->weights, oc, k, h, oc, rows,
                    [&](int64_t c, int64_t i) { return c * k + i; });
  EXPECT_NEAR(r->loss, reference, 1e-4 * reference);
}

TEST(LearnedRoundingTest, RefusesMismatchedOrNonFiniteInputs) {
  const Tensor w = Random({16, 4}, 8);
  std::vector<float> h = Hessian(16, 32, 9);
  const WeightScheme scheme{.type = QuantType::kInt4};
  absl::StatusOr<LearnedRoundingResult> r =
      LearnRounding(w, kMatMul, scheme, std::vector<float>(15 * 15), 1, 32, {});
  EXPECT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(r.status().message(), HasSubstr("1 Hessian block(s) of 16 x 16"));
  r = LearnRounding(w, kMatMul, scheme, h, 3, 32, {});
  EXPECT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument);
  r = LearnRounding(w, kMatMul, scheme, h, 1, 0, {});
  EXPECT_THAT(r.status().message(), HasSubstr("num_rows > 0"));
  h[5] = std::nanf("");
  r = LearnRounding(w, kMatMul, scheme, h, 1, 32, {});
  EXPECT_THAT(r.status().message(), HasSubstr("non-finite"));
}

}  // namespace
}  // namespace quantd
