#include "engine/quantization/gptq.h"

#include <cmath>
#include <cstdio>
#include <random>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace quantd {
namespace {

using ::testing::HasSubstr;

const WeightSlot kMatMul{"mm", "MatMul", "w", /*channel_axis=*/1,
                         /*input_axis=*/0};
const WeightSlot kGemmTransB{"gemm", "Gemm", "w", /*channel_axis=*/0,
                             /*input_axis=*/1};

// Row-major [rows, cols] matrix of N(0, 1) values.
std::vector<double> Gaussian(int64_t rows, int64_t cols, uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<double> d(0.0, 1.0);
  std::vector<double> m(rows * cols);
  for (double& v : m) v = d(rng);
  return m;
}

std::vector<double> MatMul(const std::vector<double>& a,
                           const std::vector<double>& b, int64_t m, int64_t k,
                           int64_t n) {
  std::vector<double> c(m * n, 0.0);
  for (int64_t i = 0; i < m; ++i) {
    for (int64_t t = 0; t < k; ++t) {
      for (int64_t j = 0; j < n; ++j)
        c[i * n + j] += a[i * k + t] * b[t * n + j];
    }
  }
  return c;
}

// Layer inputs with strongly correlated features: X = Z A, [rows, k].
struct Calibration {
  int64_t rows;
  int64_t k;
  std::vector<double> x;
  std::vector<double> hessian;  // X^T X
};

Calibration Correlated(int64_t rows, int64_t k, uint32_t seed) {
  Calibration cal{rows, k, {}, std::vector<double>(k * k, 0.0)};
  cal.x = MatMul(Gaussian(rows, k, seed), Gaussian(k, k, seed + 1), rows, k, k);
  for (int64_t r = 0; r < rows; ++r) {
    for (int64_t i = 0; i < k; ++i) {
      for (int64_t j = 0; j < k; ++j) {
        cal.hessian[i * k + j] += cal.x[r * k + i] * cal.x[r * k + j];
      }
    }
  }
  return cal;
}

// A MatMul weight [k, n].
Tensor RandomWeight(int64_t k, int64_t n, uint32_t seed) {
  std::vector<double> g = Gaussian(k, n, seed);
  return Tensor::FromVector<float>({k, n},
                                   std::vector<float>(g.begin(), g.end()));
}

Tensor Transposed(const Tensor& t) {
  Tensor out(DataType::kFloat32, {t.dim(1), t.dim(0)});
  for (int64_t i = 0; i < t.dim(0); ++i) {
    for (int64_t j = 0; j < t.dim(1); ++j) {
      out.mutable_data<float>()[j * t.dim(0) + i] =
          t.data<float>()[i * t.dim(1) + j];
    }
  }
  return out;
}

Tensor Rtn(const Tensor& w, const WeightSlot& slot, const WeightScheme& s) {
  return *FakeQuantizeWeights(w, *ComputeWeightParams(w, slot, s));
}

// ||X W - X Q||^2 for a MatMul weight, computed directly.
double OutputError(const Calibration& cal, const Tensor& w, const Tensor& q) {
  const int64_t n = w.dim(1);
  std::vector<double> d(w.num_elements());
  for (int64_t i = 0; i < w.num_elements(); ++i) {
    d[i] = static_cast<double>(w.data<float>()[i]) - q.data<float>()[i];
  }
  double e = 0;
  for (double v : MatMul(cal.x, d, cal.rows, cal.k, n)) e += v * v;
  return e;
}

void ExpectOnGrid(const GptqResult& r) {
  absl::StatusOr<Tensor> fq = FakeQuantizeWeights(r.weights, r.params);
  ASSERT_TRUE(fq.ok()) << fq.status();
  for (int64_t i = 0; i < r.weights.num_elements(); ++i) {
    const float v = r.weights.data<float>()[i];
    ASSERT_NEAR(fq->data<float>()[i], v, 1e-6 * std::fabs(v)) << "at " << i;
  }
}

void ExpectSameWeights(const Tensor& a, const Tensor& b, double tol) {
  ASSERT_EQ(a.shape(), b.shape());
  for (int64_t i = 0; i < a.num_elements(); ++i) {
    ASSERT_NEAR(a.data<float>()[i], b.data<float>()[i], tol) << "at " << i;
  }
}

WeightScheme Int4PerChannel() {
  return {.type = QuantType::kInt4,
          .symmetric = true,
          .granularity = WeightGranularity::kPerChannel};
}
WeightScheme Int4AsymPerGroup16() {
  return {.type = QuantType::kInt4,
          .symmetric = false,
          .granularity = WeightGranularity::kPerGroup,
          .group_size = 16};
}
WeightScheme Int8PerChannel() {
  return {.type = QuantType::kInt8,
          .symmetric = true,
          .granularity = WeightGranularity::kPerChannel,
          .int8_max_magnitude = 127};
}

TEST(GptqTest, IdentityHessianIsRoundToNearest) {
  // Uncorrelated unit-variance inputs: no column's error can be compensated
  // by another, so GPTQ must round exactly as RTN does.
  const int64_t k = 32, n = 16;
  const Tensor w = RandomWeight(k, n, 1);
  std::vector<double> h(k * k, 0.0);
  for (int64_t i = 0; i < k; ++i) h[i * k + i] = 100;
  for (const WeightScheme& s :
       {Int4PerChannel(), Int4AsymPerGroup16(), Int8PerChannel()}) {
    for (bool act_order : {false, true}) {
      absl::StatusOr<GptqResult> r = GptqQuantize(
          w, kMatMul, s, h, 100, {.block_size = 8, .act_order = act_order});
      ASSERT_TRUE(r.ok()) << r.status();
      ExpectSameWeights(r->weights, Rtn(w, kMatMul, s), 0.0);
      EXPECT_DOUBLE_EQ(r->gptq_loss, r->rtn_loss);
    }
  }
}

TEST(GptqTest, DiagonalHessianWithActOrderUnpermutes) {
  // Distinct diagonal: act_order reorders every column, but without
  // correlations the result is still RTN in the original column order.
  const int64_t k = 32, n = 8;
  const Tensor w = RandomWeight(k, n, 2);
  std::vector<double> h(k * k, 0.0);
  for (int64_t i = 0; i < k; ++i) h[i * k + i] = 1.0 + (i * 7 % k);
  for (const WeightScheme& s : {Int4PerChannel(), Int4AsymPerGroup16()}) {
    absl::StatusOr<GptqResult> r =
        GptqQuantize(w, kMatMul, s, h, 1, {.act_order = true});
    ASSERT_TRUE(r.ok()) << r.status();
    ExpectSameWeights(r->weights, Rtn(w, kMatMul, s), 0.0);
  }
}

TEST(GptqTest, CorrelatedInputsBeatRoundToNearest) {
  const int64_t k = 64, n = 48;
  const Calibration cal = Correlated(400, k, 10);
  const Tensor w = RandomWeight(k, n, 3);
  absl::StatusOr<GptqResult> r =
      GptqQuantize(w, kMatMul, Int4PerChannel(), cal.hessian, cal.rows, {});
  ASSERT_TRUE(r.ok()) << r.status();
  ExpectOnGrid(*r);
  const Tensor rtn = Rtn(w, kMatMul, Int4PerChannel());
  const double rtn_out = OutputError(cal, w, rtn);
  const double gptq_out = OutputError(cal, w, r->weights);
  std::printf(
      "int4 per-channel: gptq_loss / rtn_loss = %.4f (%.4g / %.4g), "
      "output error ratio %.4f\n",
      r->gptq_loss / r->rtn_loss, r->gptq_loss, r->rtn_loss,
      gptq_out / rtn_out);
  EXPECT_LT(r->gptq_loss, 0.8 * r->rtn_loss);
  EXPECT_LT(gptq_out, rtn_out);
  // The proxy losses are the output errors per calibration row.
  EXPECT_NEAR(r->rtn_loss * cal.rows, rtn_out, 1e-6 * rtn_out);
  EXPECT_NEAR(r->gptq_loss * cal.rows, gptq_out, 1e-6 * gptq_out);
  // Per-channel parameters are RTN's.
  EXPECT_EQ(r->params.scales,
            ComputeWeightParams(w, kMatMul, Int4PerChannel())->scales);
}

TEST(GptqTest, LazyBatchUpdatesAreExact) {
  const int64_t k = 64, n = 48;
  const Calibration cal = Correlated(300, k, 20);
  const Tensor w = RandomWeight(k, n, 4);
  for (const WeightScheme& s : {Int4PerChannel(), Int4AsymPerGroup16()}) {
    for (bool act_order : {false, true}) {
      absl::StatusOr<GptqResult> ref =
          GptqQuantize(w, kMatMul, s, cal.hessian, cal.rows,
                       {.block_size = 1, .act_order = act_order});
      ASSERT_TRUE(ref.ok()) << ref.status();
      for (int64_t b : {5, 8, 128}) {
        SCOPED_TRACE(::testing::Message()
                     << "block " << b << " act_order " << act_order);
        absl::StatusOr<GptqResult> r =
            GptqQuantize(w, kMatMul, s, cal.hessian, cal.rows,
                         {.block_size = b, .act_order = act_order});
        ASSERT_TRUE(r.ok()) << r.status();
        ExpectSameWeights(r->weights, ref->weights, 1e-5);
        EXPECT_EQ(r->params.scales, ref->params.scales);
        EXPECT_NEAR(r->gptq_loss, ref->gptq_loss, 1e-9 * ref->gptq_loss);
      }
    }
  }
}

TEST(GptqTest, ActOrderAndSchemesStayOnGridAndBeatRtn) {
  const int64_t k = 64, n = 48;
  const Calibration cal = Correlated(500, k, 30);
  const Tensor w = RandomWeight(k, n, 5);
  for (const WeightScheme& s :
       {Int4PerChannel(), Int4AsymPerGroup16(), Int8PerChannel()}) {
    for (bool act_order : {false, true}) {
      SCOPED_TRACE(::testing::Message()
                   << QuantTypeName(s.type) << " granularity "
                   << static_cast<int>(s.granularity) << " act_order "
                   << act_order);
      absl::StatusOr<GptqResult> r = GptqQuantize(
          w, kMatMul, s, cal.hessian, cal.rows, {.act_order = act_order});
      ASSERT_TRUE(r.ok()) << r.status();
      ExpectOnGrid(*r);
      EXPECT_LT(r->gptq_loss, r->rtn_loss);
      EXPECT_LT(OutputError(cal, w, r->weights),
                OutputError(cal, w, Rtn(w, kMatMul, s)));
      const QuantParams rtn = *ComputeWeightParams(w, kMatMul, s);
      EXPECT_EQ(r->params.axis, rtn.axis);
      EXPECT_EQ(r->params.group_size, rtn.group_size);
      EXPECT_EQ(r->params.scales_shape, rtn.scales_shape);
      EXPECT_EQ(r->params.scales.size(), rtn.scales.size());
      EXPECT_EQ(r->params.zero_points.size(), rtn.zero_points.size());
      EXPECT_EQ(r->params.qmin, rtn.qmin);
      EXPECT_EQ(r->params.qmax, rtn.qmax);
      if (s.granularity == WeightGranularity::kPerGroup && !act_order) {
        // Groups after the first see compensated weights.
        EXPECT_NE(r->params.scales, rtn.scales);
      } else {
        EXPECT_EQ(r->params.scales, rtn.scales);
      }
    }
  }
}

// Rounding bounded slices of output channels (an LM head's memory bound)
// must give what rounding all channels at once gives: rows are independent
// given the inverse Hessian, and group parameters belong to one channel.
TEST(GptqTest, ChannelSlicesGiveTheSameResult) {
  const int64_t k = 48, n = 23;
  const Calibration cal = Correlated(200, k, 50);
  const Tensor w = RandomWeight(k, n, 9);
  for (const WeightSlot& slot : {kMatMul, kGemmTransB}) {
    const Tensor ws = slot.input_axis == 0 ? w : Transposed(w);
    for (const WeightScheme& s : {Int4PerChannel(), Int4AsymPerGroup16()}) {
      for (bool act_order : {false, true}) {
        GptqOptions whole{.block_size = 16, .act_order = act_order};
        absl::StatusOr<GptqResult> a =
            GptqQuantize(ws, slot, s, cal.hessian, cal.rows, whole);
        ASSERT_TRUE(a.ok()) << a.status();
        for (int64_t per_slice : {1, 5, 22}) {
          SCOPED_TRACE(::testing::Message()
                       << slot.op_type << " act_order " << act_order
                       << " group " << s.group_size << " slices of "
                       << per_slice);
          GptqOptions sliced = whole;
          sliced.channels_per_slice = per_slice;
          absl::StatusOr<GptqResult> b =
              GptqQuantize(ws, slot, s, cal.hessian, cal.rows, sliced);
          ASSERT_TRUE(b.ok()) << b.status();
          ExpectSameWeights(b->weights, a->weights, 1e-6);
          EXPECT_EQ(b->params.scales, a->params.scales);
          EXPECT_EQ(b->params.zero_points, a->params.zero_points);
          EXPECT_NEAR(b->gptq_loss, a->gptq_loss, 1e-9 * a->gptq_loss);
          EXPECT_DOUBLE_EQ(b->rtn_loss, a->rtn_loss);
        }
      }
    }
  }
}

TEST(GptqTest, GemmTransBIsTheTransposeOfMatMul) {
  const int64_t k = 64, n = 24;
  const Calibration cal = Correlated(300, k, 40);
  const Tensor w = RandomWeight(k, n, 6);
  for (const WeightScheme& s : {Int4PerChannel(), Int4AsymPerGroup16()}) {
    for (bool act_order : {false, true}) {
      const GptqOptions o{.block_size = 16, .act_order = act_order};
      absl::StatusOr<GptqResult> mm =
          GptqQuantize(w, kMatMul, s, cal.hessian, cal.rows, o);
      absl::StatusOr<GptqResult> gemm =
          GptqQuantize(Transposed(w), kGemmTransB, s, cal.hessian, cal.rows, o);
      ASSERT_TRUE(mm.ok()) << mm.status();
      ASSERT_TRUE(gemm.ok()) << gemm.status();
      ExpectSameWeights(gemm->weights, Transposed(mm->weights), 0.0);
      ExpectOnGrid(*gemm);
      EXPECT_DOUBLE_EQ(gemm->gptq_loss, mm->gptq_loss);
      // Same parameters, each in its orientation's layout.
      for (int64_t i = 0; i < k; ++i) {
        for (int64_t c = 0; c < n; ++c) {
          const int64_t a =
              ParamIndex(mm->params, mm->weights.shape(), i * n + c);
          const int64_t b =
              ParamIndex(gemm->params, gemm->weights.shape(), c * k + i);
          ASSERT_EQ(mm->params.scales[a], gemm->params.scales[b]);
        }
      }
    }
  }
}

TEST(GptqTest, RankDeficientAndDeadInputsStillWork) {
  // Fewer rows than inputs, and input 3 never active: damping and the dead
  // input rule keep H invertible.
  const int64_t k = 32, n = 8;
  Calibration cal = Correlated(10, k, 50);
  for (int64_t j = 0; j < k; ++j) {
    cal.hessian[3 * k + j] = 0;
    cal.hessian[j * k + 3] = 0;
  }
  const Tensor w = RandomWeight(k, n, 7);
  absl::StatusOr<GptqResult> r =
      GptqQuantize(w, kMatMul, Int4PerChannel(), cal.hessian, cal.rows, {});
  ASSERT_TRUE(r.ok()) << r.status();
  ExpectOnGrid(*r);
  EXPECT_LT(r->gptq_loss, r->rtn_loss);
  for (int64_t c = 0; c < n; ++c)
    EXPECT_EQ(r->weights.data<float>()[3 * n + c], 0.f);
}

TEST(GptqTest, BadInputs) {
  const int64_t k = 16, n = 4;
  const Tensor w = RandomWeight(k, n, 8);
  std::vector<double> h(k * k, 0.0);
  for (int64_t i = 0; i < k; ++i) h[i * k + i] = 1;
  const WeightScheme s = Int4PerChannel();
  auto code = [&](const Tensor& t, const WeightSlot& slot,
                  const std::vector<double>& hh, int64_t rows,
                  const GptqOptions& o) {
    return GptqQuantize(t, slot, s, hh, rows, o).status();
  };
  EXPECT_TRUE(code(w, kMatMul, h, 1, {}).ok());
  absl::Status st =
      code(w, kMatMul, std::vector<double>(k * k - 1, 1.0), 1, {});
  EXPECT_EQ(st.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(st.message(), HasSubstr("Hessian"));
  const WeightSlot conv{"conv", "Conv", "w", 0, 1};
  const Tensor conv_w(DataType::kFloat32, {4, 16, 3, 3});
  st = code(conv_w, conv, h, 1, {});
  EXPECT_EQ(st.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(st.message(), HasSubstr("2-D"));
  EXPECT_EQ(code(w, kMatMul, h, 0, {}).code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(code(w, kMatMul, h, 1, {.block_size = 0}).code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(code(w, kMatMul, h, 1, {.damp_percent = -0.1}).code(),
            absl::StatusCode::kInvalidArgument);
  std::vector<double> nan_h = h;
  nan_h[5] = std::nan("");
  EXPECT_EQ(code(w, kMatMul, nan_h, 1, {}).code(),
            absl::StatusCode::kInvalidArgument);
  // Group size that does not divide K (from ComputeWeightParams).
  EXPECT_EQ(GptqQuantize(w, kMatMul,
                         {.type = QuantType::kInt4,
                          .granularity = WeightGranularity::kPerGroup,
                          .group_size = 5},
                         h, 1, {})
                .status()
                .code(),
            absl::StatusCode::kInvalidArgument);
  // Negative definite: damping cannot help.
  std::vector<double> neg = h;
  for (double& v : neg) v = -v;
  st = code(w, kMatMul, neg, 1, {});
  EXPECT_EQ(st.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(st.message(), HasSubstr("'mm'"));
}

}  // namespace
}  // namespace quantd
