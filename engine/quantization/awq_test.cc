#include "engine/quantization/awq.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <limits>
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

WeightScheme Int4PerChannel() {
  return {.type = QuantType::kInt4,
          .granularity = WeightGranularity::kPerChannel};
}
WeightScheme Int4PerGroup(int64_t group) {
  return {.type = QuantType::kInt4,
          .granularity = WeightGranularity::kPerGroup,
          .group_size = group};
}

Tensor Gaussian(Shape shape, float stddev, uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> d(0.f, stddev);
  Tensor t(DataType::kFloat32, std::move(shape));
  for (float& v : t.mutable_span<float>()) v = d(rng);
  return t;
}

// Activations [M, K] whose listed channels are `factor` times larger, as in
// the LLM layers AWQ was designed for.
Tensor Activations(int64_t m, int64_t k, const std::vector<int64_t>& outliers,
                   float factor, uint32_t seed) {
  Tensor x = Gaussian({m, k}, 1.f, seed);
  float* p = x.mutable_data<float>();
  for (int64_t i = 0; i < m; ++i) {
    for (int64_t j : outliers) p[i * k + j] *= factor;
  }
  return x;
}

Tensor Transpose(const Tensor& t) {
  Tensor out(DataType::kFloat32, {t.dim(1), t.dim(0)});
  for (int64_t r = 0; r < t.dim(0); ++r) {
    for (int64_t c = 0; c < t.dim(1); ++c) {
      out.mutable_data<float>()[c * t.dim(0) + r] =
          t.data<float>()[r * t.dim(1) + c];
    }
  }
  return out;
}

// || X W - (X / s) Q ||^2 / (M N) in double for a MatMul [K, N] weight,
// written directly from the definition (no shared code with awq.cc beyond
// ScaleWeightInputChannels and the RTN functions).
double ReferenceLoss(const Tensor& w, const WeightScheme& scheme,
                     const Tensor& x, const std::vector<float>& s) {
  absl::StatusOr<Tensor> scaled = ScaleWeightInputChannels(w, kMatMul, s);
  EXPECT_TRUE(scaled.ok()) << scaled.status();
  absl::StatusOr<QuantParams> p = ComputeWeightParams(*scaled, kMatMul, scheme);
  EXPECT_TRUE(p.ok()) << p.status();
  absl::StatusOr<Tensor> q = FakeQuantizeWeights(*scaled, *p);
  EXPECT_TRUE(q.ok()) << q.status();
  const int64_t m = x.dim(0), k = w.dim(0), n = w.dim(1);
  double sum = 0;
  for (int64_t i = 0; i < m; ++i) {
    for (int64_t c = 0; c < n; ++c) {
      double y = 0, yq = 0;
      for (int64_t j = 0; j < k; ++j) {
        const double xv = x.data<float>()[i * k + j];
        y += xv * w.data<float>()[j * n + c];
        yq += xv / s[j] * q->data<float>()[j * n + c];
      }
      sum += (y - yq) * (y - yq);
    }
  }
  return sum / double(m * n);
}

TEST(AwqTest, UniformInputsNeverWorseThanRtn) {
  const Tensor w = Gaussian({64, 32}, 0.5f, 1);
  const Tensor x = Activations(128, 64, {}, 1.f, 2);
  const WeightScheme scheme = Int4PerChannel();
  absl::StatusOr<AwqResult> r = SearchAwqScales(w, kMatMul, scheme, x, {});
  ASSERT_TRUE(r.ok()) << r.status();
  ASSERT_EQ(r->scales.size(), 64u);
  EXPECT_TRUE(std::isfinite(r->loss));
  EXPECT_GT(r->rtn_loss, 0);
  EXPECT_LE(r->loss, r->rtn_loss);
  const std::vector<float> ones(64, 1.f);
  EXPECT_NEAR(r->rtn_loss, ReferenceLoss(w, scheme, x, ones),
              1e-4 * r->rtn_loss);
  EXPECT_NEAR(r->loss, ReferenceLoss(w, scheme, x, r->scales),
              1e-4 * r->rtn_loss);

  // A grid of one tries only alpha = 0: exactly RTN.
  absl::StatusOr<AwqResult> rtn =
      SearchAwqScales(w, kMatMul, scheme, x, {.grid_size = 1});
  ASSERT_TRUE(rtn.ok()) << rtn.status();
  EXPECT_EQ(rtn->alpha, 0);
  EXPECT_EQ(rtn->scales, ones);
  EXPECT_EQ(rtn->loss, rtn->rtn_loss);
  EXPECT_EQ(rtn->rtn_loss, r->rtn_loss);
}

TEST(AwqTest, OutlierChannelsCutTheErrorWellBelowRtn) {
  const std::vector<int64_t> outliers = {3, 17, 40, 58};
  const Tensor w = Gaussian({64, 48}, 0.5f, 3);
  const Tensor x = Activations(256, 64, outliers, 20.f, 4);
  for (const WeightScheme& scheme : {Int4PerChannel(), Int4PerGroup(16)}) {
    SCOPED_TRACE(scheme.group_size);
    absl::StatusOr<AwqResult> r = SearchAwqScales(w, kMatMul, scheme, x, {});
    ASSERT_TRUE(r.ok()) << r.status();
    const double ratio = r->loss / r->rtn_loss;
    std::printf("group %ld: alpha %.2f loss %.4g rtn %.4g ratio %.3f\n",
                static_cast<long>(scheme.group_size), r->alpha, r->loss,
                r->rtn_loss, ratio);
    EXPECT_GT(r->alpha, 0);
    EXPECT_LT(ratio, 0.7);
    EXPECT_NEAR(r->loss, ReferenceLoss(w, scheme, x, r->scales),
                1e-4 * r->rtn_loss);
    // The salient channels get the largest scales.
    float smallest_outlier = r->scales[outliers[0]], largest_other = 0;
    for (int64_t j = 0; j < 64; ++j) {
      const bool outlier =
          std::find(outliers.begin(), outliers.end(), j) != outliers.end();
      if (outlier) smallest_outlier = std::min(smallest_outlier, r->scales[j]);
      if (!outlier) largest_other = std::max(largest_other, r->scales[j]);
    }
    EXPECT_GT(smallest_outlier, largest_other);
    // The reference's normalisation: max(s) * min(s) = 1.
    const auto [lo, hi] =
        std::minmax_element(r->scales.begin(), r->scales.end());
    EXPECT_NEAR(*lo * *hi, 1.f, 1e-5f);
  }
}

TEST(AwqTest, ScaleWeightInputChannelsFollowsTheInputAxis) {
  const Tensor w = Tensor::FromVector<float>({2, 3}, {1, 2, 3, 4, 5, 6});
  // MatMul [K=2, N=3]: rows.
  absl::StatusOr<Tensor> rows = ScaleWeightInputChannels(w, kMatMul, {2, 10});
  ASSERT_TRUE(rows.ok()) << rows.status();
  EXPECT_EQ(rows->ToVector<float>(), (std::vector<float>{2, 4, 6, 40, 50, 60}));
  // Gemm transB [N=2, K=3]: columns.
  absl::StatusOr<Tensor> cols =
      ScaleWeightInputChannels(w, kGemmTransB, {2, 10, 0.5f});
  ASSERT_TRUE(cols.ok()) << cols.status();
  EXPECT_EQ(cols->ToVector<float>(),
            (std::vector<float>{2, 20, 1.5f, 8, 50, 3}));
  EXPECT_EQ(w.ToVector<float>(), (std::vector<float>{1, 2, 3, 4, 5, 6}));

  // Round trip with 1 / s (powers of two: exact).
  const Tensor big = Gaussian({16, 8}, 1.f, 5);
  std::vector<float> s(16), inv(16);
  for (int j = 0; j < 16; ++j) {
    s[j] = std::ldexp(1.f, j % 7 - 3);
    inv[j] = 1.f / s[j];
  }
  absl::StatusOr<Tensor> there = ScaleWeightInputChannels(big, kMatMul, s);
  ASSERT_TRUE(there.ok());
  EXPECT_NE(there->ToVector<float>(), big.ToVector<float>());
  absl::StatusOr<Tensor> back = ScaleWeightInputChannels(*there, kMatMul, inv);
  ASSERT_TRUE(back.ok());
  EXPECT_EQ(back->ToVector<float>(), big.ToVector<float>());
  const Tensor big_t = Transpose(big);
  there = ScaleWeightInputChannels(big_t, kGemmTransB, s);
  ASSERT_TRUE(there.ok());
  EXPECT_EQ(Transpose(*there).ToVector<float>(),
            ScaleWeightInputChannels(big, kMatMul, s)->ToVector<float>());
  back = ScaleWeightInputChannels(*there, kGemmTransB, inv);
  ASSERT_TRUE(back.ok());
  EXPECT_EQ(back->ToVector<float>(), big_t.ToVector<float>());
}

TEST(AwqTest, GemmTransBMatchesMatMul) {
  const Tensor w = Gaussian({64, 40}, 0.5f, 6);  // [K, N]
  const Tensor x = Activations(96, 64, {5, 9, 33}, 15.f, 7);
  for (const WeightScheme& scheme : {Int4PerChannel(), Int4PerGroup(16)}) {
    SCOPED_TRACE(scheme.group_size);
    absl::StatusOr<AwqResult> mm = SearchAwqScales(w, kMatMul, scheme, x, {});
    absl::StatusOr<AwqResult> gemm =
        SearchAwqScales(Transpose(w), kGemmTransB, scheme, x, {});
    ASSERT_TRUE(mm.ok()) << mm.status();
    ASSERT_TRUE(gemm.ok()) << gemm.status();
    EXPECT_GT(mm->alpha, 0);
    EXPECT_EQ(gemm->alpha, mm->alpha);
    EXPECT_EQ(gemm->scales, mm->scales);
    EXPECT_DOUBLE_EQ(gemm->loss, mm->loss);
    EXPECT_DOUBLE_EQ(gemm->rtn_loss, mm->rtn_loss);
  }
}

TEST(AwqTest, RejectsBadInputs) {
  const Tensor w = Gaussian({8, 4}, 0.5f, 8);
  const Tensor x = Gaussian({5, 8}, 1.f, 9);
  const WeightScheme scheme = Int4PerChannel();
  auto expect_invalid = [](const absl::Status& s, const std::string& text) {
    EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << s;
    EXPECT_THAT(s.message(), HasSubstr(text));
  };
  ASSERT_TRUE(SearchAwqScales(w, kMatMul, scheme, x, {}).ok());

  expect_invalid(
      SearchAwqScales(Gaussian({8, 4, 1}, 1.f, 1), kMatMul, scheme, x, {})
          .status(),
      "2-D");
  expect_invalid(
      SearchAwqScales(w, kMatMul, scheme, Gaussian({5, 7}, 1.f, 1), {})
          .status(),
      "expected f32 [M, 8]");
  expect_invalid(
      SearchAwqScales(w, kGemmTransB, scheme, x, {}).status(),  // K = 4
      "expected f32 [M, 4]");
  expect_invalid(SearchAwqScales(w, kMatMul, scheme,
                                 Tensor(DataType::kFloat32, {0, 8}), {})
                     .status(),
                 "no input rows");
  Tensor nan_x = x.Clone();
  nan_x.mutable_data<float>()[13] = std::numeric_limits<float>::quiet_NaN();
  expect_invalid(SearchAwqScales(w, kMatMul, scheme, nan_x, {}).status(),
                 "must be finite");
  Tensor inf_x = x.Clone();
  inf_x.mutable_data<float>()[2] = std::numeric_limits<float>::infinity();
  expect_invalid(SearchAwqScales(w, kMatMul, scheme, inf_x, {}).status(),
                 "must be finite");
  expect_invalid(
      SearchAwqScales(w, kMatMul, scheme, x, {.grid_size = 0}).status(),
      "grid_size");
  expect_invalid(SearchAwqScales(Tensor(DataType::kFloat32, {8, 0}), kMatMul,
                                 scheme, x, {})
                     .status(),
                 "empty");
  WeightSlot bad_axes = kMatMul;
  bad_axes.channel_axis = 0;
  expect_invalid(SearchAwqScales(w, bad_axes, scheme, x, {}).status(),
                 "input_axis");
  // ComputeWeightParams' own error is propagated.
  expect_invalid(SearchAwqScales(w, kMatMul, Int4PerGroup(3), x, {}).status(),
                 "group size 3");

  expect_invalid(
      ScaleWeightInputChannels(w, kMatMul, std::vector<float>(4, 1.f)).status(),
      "4 scales");
  std::vector<float> zero(8, 1.f);
  zero[1] = 0;
  expect_invalid(ScaleWeightInputChannels(w, kMatMul, zero).status(),
                 "finite and positive");
}

}  // namespace
}  // namespace quantd
