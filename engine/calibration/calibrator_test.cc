#include "engine/calibration/calibrator.h"

#include <cfloat>
#include <cmath>
#include <limits>
#include <random>
#include <vector>

#include "engine/passes/int8_lowering.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace quantd {
namespace {

using ::testing::HasSubstr;

constexpr CalibrationMethod kAllMethods[] = {
    CalibrationMethod::kMinMax, CalibrationMethod::kMovingAverageMinMax,
    CalibrationMethod::kPercentile, CalibrationMethod::kEntropy,
    CalibrationMethod::kMse};

CalibrationOptions Options(CalibrationMethod method, bool symmetric = false,
                           QuantType type = QuantType::kUInt8) {
  CalibrationOptions o;
  o.method = method;
  o.symmetric = symmetric;
  o.type = type;
  return o;
}

Tensor F32(const std::vector<float>& v) {
  return Tensor::FromVector<float>({static_cast<int64_t>(v.size())}, v);
}

std::vector<float> Uniform(int n, float lo, float hi, uint32_t seed) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> d(lo, hi);
  std::vector<float> v(n);
  for (float& x : v) x = d(rng);
  return v;
}

// N(0, 1) with three huge outliers: what min-max calibration handles worst.
std::vector<float> GaussianWithOutliers(int n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> d(0.f, 1.f);
  std::vector<float> v(n);
  for (float& x : v) x = d(rng);
  v[n / 7] = 100.f;
  v[n / 3] = 100.f;
  v[n / 2] = -100.f;
  return v;
}

TensorCalibrator Calibrate(const CalibrationOptions& options,
                           const std::vector<std::vector<float>>& batches) {
  absl::StatusOr<TensorCalibrator> c = TensorCalibrator::Create("t", options);
  EXPECT_TRUE(c.ok()) << c.status();
  for (const std::vector<float>& b : batches) {
    absl::Status s = c->Observe(F32(b));
    EXPECT_TRUE(s.ok()) << s;
  }
  return *std::move(c);
}

CalibrationRange Range(const TensorCalibrator& c) {
  absl::StatusOr<CalibrationRange> r = c.ComputeRange();
  EXPECT_TRUE(r.ok()) << r.status();
  return r.ok() ? *r : CalibrationRange{};
}

QuantParams Params(const TensorCalibrator& c) {
  absl::StatusOr<QuantParams> p = c.ComputeParams();
  EXPECT_TRUE(p.ok()) << p.status();
  return p.ok() ? *p : QuantParams{};
}

float Qdq(float x, const QuantParams& p) {
  const float s = p.scales[0];
  const int32_t zp = p.zero_points.empty() ? 0 : p.zero_points[0];
  const float q = std::clamp<float>(std::nearbyint(x / s) + zp, p.qmin, p.qmax);
  return (q - zp) * s;
}

double QdqMse(const std::vector<float>& data, const QuantParams& p) {
  double sum = 0;
  for (float x : data) sum += (x - Qdq(x, p)) * double(x - Qdq(x, p));
  return sum / data.size();
}

TEST(CalibrationOptionsTest, ValidatesEveryField) {
  EXPECT_TRUE(CalibrationOptions().Validate().ok());
  CalibrationOptions o;
  o.percentile = 100;
  EXPECT_TRUE(o.Validate().ok());
  for (float p : {0.f, -1.f, 100.5f, std::nanf("")}) {
    o.percentile = p;
    EXPECT_THAT(o.Validate().message(), HasSubstr("(0, 100]")) << p;
  }
  o = CalibrationOptions();
  for (int bins : {127, 0, (1 << 16) + 1}) {
    o.num_bins = bins;
    EXPECT_THAT(o.Validate().message(), HasSubstr("between 128 and 65536"));
  }
  o = CalibrationOptions();
  for (float m : {1.f, -0.1f, 2.f}) {
    o.moving_average_momentum = m;
    EXPECT_THAT(o.Validate().message(), HasSubstr("[0, 1)"));
  }
  o = Options(CalibrationMethod::kEntropy);  // uint8: 256 levels
  o.num_bins = 200;
  EXPECT_THAT(o.Validate().message(), HasSubstr("256 levels"));
  o.symmetric = true;  // |x|: 128 levels
  EXPECT_TRUE(o.Validate().ok());
  o.method = static_cast<CalibrationMethod>(42);
  EXPECT_EQ(o.Validate().code(), absl::StatusCode::kInvalidArgument);
  absl::StatusOr<TensorCalibrator> c = TensorCalibrator::Create("act", o);
  EXPECT_THAT(c.status().message(), HasSubstr("'act'"));
}

TEST(TensorCalibratorTest, MinMaxAndZeroPointConventions) {
  const std::vector<float> data = {-1.f, 0.5f, 3.f};
  // Asymmetric uint8 over [-1, 3].
  QuantParams p =
      Params(Calibrate(Options(CalibrationMethod::kMinMax), {data}));
  EXPECT_EQ(p.type, QuantType::kUInt8);
  EXPECT_EQ(p.axis, -1);
  EXPECT_FLOAT_EQ(p.scales[0], 4.f / 255);
  EXPECT_EQ(p.zero_points, std::vector<int32_t>{64});
  EXPECT_EQ(p.qmin, 0);
  EXPECT_EQ(p.qmax, 255);
  // Matches int8 lowering's choice for the same range.
  float scale;
  int32_t zp;
  ChooseU8Params(TensorRange{-1.f, 3.f}, &scale, &zp);
  EXPECT_FLOAT_EQ(p.scales[0], scale);
  EXPECT_EQ(p.zero_points[0], zp);
  // Asymmetric int8.
  p = Params(Calibrate(
      Options(CalibrationMethod::kMinMax, false, QuantType::kInt8), {data}));
  EXPECT_EQ(p.zero_points, std::vector<int32_t>{-64});
  // Symmetric int8: max |x| maps to 127, no zero point, [-127, 127].
  p = Params(Calibrate(
      Options(CalibrationMethod::kMinMax, true, QuantType::kInt8), {data}));
  EXPECT_FLOAT_EQ(p.scales[0], 3.f / 127);
  EXPECT_TRUE(p.zero_points.empty());
  EXPECT_EQ(p.qmin, -127);
  EXPECT_EQ(p.qmax, 127);
  // Symmetric uint8: zero point 128 (ORT's convention).
  p = Params(Calibrate(Options(CalibrationMethod::kMinMax, true), {data}));
  EXPECT_FLOAT_EQ(p.scales[0], 6.f / 255);
  EXPECT_EQ(p.zero_points, std::vector<int32_t>{128});
  // int4 symmetric.
  p = Params(Calibrate(
      Options(CalibrationMethod::kMinMax, true, QuantType::kInt4), {data}));
  EXPECT_FLOAT_EQ(p.scales[0], 3.f / 7);
  EXPECT_EQ(p.qmin, -7);
}

TEST(TensorCalibratorTest, AsymmetricRangeIncludesZero) {
  for (CalibrationMethod m : kAllMethods) {
    TensorCalibrator c =
        Calibrate(Options(m), {Uniform(10000, 2.f, 12.f, /*seed=*/3)});
    EXPECT_GT(Range(c).min, 1.9f) << CalibrationMethodName(m);
    QuantParams p = Params(c);
    EXPECT_EQ(p.zero_points, std::vector<int32_t>{0})
        << CalibrationMethodName(m);
    EXPECT_EQ(Qdq(0.f, p), 0.f);
  }
}

TEST(TensorCalibratorTest, MovingAverageFollowsMomentum) {
  CalibrationOptions o = Options(CalibrationMethod::kMovingAverageMinMax);
  o.moving_average_momentum = 0.9f;
  TensorCalibrator c = Calibrate(o, {{-2.f, 1.f}, {0.f, 3.f}});
  EXPECT_NEAR(Range(c).min, 0.9 * -2 + 0.1 * 0, 1e-6);
  EXPECT_NEAR(Range(c).max, 0.9 * 1 + 0.1 * 3, 1e-6);
  o.symmetric = true;
  c = Calibrate(o, {{-2.f, 1.f}, {0.f, 3.f}});
  EXPECT_NEAR(Range(c).max, 0.9 * 2 + 0.1 * 3, 1e-6);
  EXPECT_NEAR(Range(c).min, -Range(c).max, 1e-6);
}

TEST(TensorCalibratorTest, PercentileOfUniformIsTheQuantile) {
  const std::vector<float> data = Uniform(1 << 20, 2.f, 12.f, /*seed=*/1);
  CalibrationOptions o = Options(CalibrationMethod::kPercentile);
  o.percentile = 99.f;
  TensorCalibrator c = Calibrate(o, {data});
  const double bin = c.histogram()->bin_width();
  // Two-sided: 0.5% cut from each tail.
  EXPECT_NEAR(Range(c).min, 2 + 0.005 * 10, bin);
  EXPECT_NEAR(Range(c).max, 12 - 0.005 * 10, bin);
  // Symmetric: the 99th percentile of |x| for x ~ U(-5, 5).
  o.symmetric = true;
  c = Calibrate(o, {Uniform(1 << 20, -5.f, 5.f, /*seed=*/2)});
  EXPECT_NEAR(Range(c).max, 4.95, c.histogram()->bin_width());
  EXPECT_FLOAT_EQ(Range(c).min, -Range(c).max);
  // 100 keeps everything.
  o.percentile = 100;
  o.symmetric = false;
  c = Calibrate(o, {data});
  TensorCalibrator minmax =
      Calibrate(Options(CalibrationMethod::kMinMax), {data});
  EXPECT_FLOAT_EQ(Range(c).max, Range(minmax).max);
}

// The reason for every method but min-max: a few outliers should not ruin
// the resolution of everything else.
void ExpectMethodsBeatMinMaxOnOutliers(bool symmetric, QuantType type) {
  const std::vector<float> data = GaussianWithOutliers(1 << 20, /*seed=*/7);
  TensorCalibrator minmax =
      Calibrate(Options(CalibrationMethod::kMinMax, symmetric, type), {data});
  EXPECT_FLOAT_EQ(Range(minmax).max, 100.f);
  EXPECT_FLOAT_EQ(Range(minmax).min, -100.f);
  const double minmax_width = Range(minmax).max - Range(minmax).min;
  const double minmax_mse = QdqMse(data, Params(minmax));
  for (CalibrationMethod m :
       {CalibrationMethod::kPercentile, CalibrationMethod::kEntropy,
        CalibrationMethod::kMse}) {
    TensorCalibrator c = Calibrate(Options(m, symmetric, type), {data});
    const CalibrationRange r = Range(c);
    const double width = r.max - r.min;
    // Percentile and entropy clip to the bulk; MSE keeps part of the range
    // because three squared distances of ~100 still weigh in.
    EXPECT_LT(width, (m == CalibrationMethod::kMse ? 0.5 : 0.2) * minmax_width)
        << CalibrationMethodName(m) << " [" << r.min << ", " << r.max << "]";
    EXPECT_GT(r.max, 3.f) << CalibrationMethodName(m);  // keeps the bulk
    EXPECT_LT(r.min, -3.f) << CalibrationMethodName(m);
    const double mse = QdqMse(data, Params(c));
    EXPECT_LT(mse, 0.8 * minmax_mse) << CalibrationMethodName(m) << " mse "
                                     << mse << " vs min-max " << minmax_mse;
  }
}

TEST(TensorCalibratorTest, MethodsBeatMinMaxOnOutliersAsymmetricU8) {
  ExpectMethodsBeatMinMaxOnOutliers(false, QuantType::kUInt8);
}

TEST(TensorCalibratorTest, MethodsBeatMinMaxOnOutliersSymmetricS8) {
  ExpectMethodsBeatMinMaxOnOutliers(true, QuantType::kInt8);
}

TEST(TensorCalibratorTest, MseMethodMinimizesMeasuredError) {
  // The histogram's error estimate should track the real error, so the MSE
  // method beats percentile and entropy on their own data.
  const std::vector<float> data = GaussianWithOutliers(1 << 20, /*seed=*/9);
  const double mse =
      QdqMse(data, Params(Calibrate(Options(CalibrationMethod::kMse), {data})));
  for (CalibrationMethod m :
       {CalibrationMethod::kPercentile, CalibrationMethod::kEntropy}) {
    EXPECT_LE(mse, 1.02 * QdqMse(data, Params(Calibrate(Options(m), {data}))))
        << CalibrationMethodName(m);
  }
}

TEST(TensorCalibratorTest, MoreBinsAndFewerBitsWork) {
  const std::vector<float> data = GaussianWithOutliers(1 << 18, /*seed=*/13);
  for (CalibrationMethod m : kAllMethods) {
    for (QuantType type : {QuantType::kUInt8, QuantType::kInt4}) {
      CalibrationOptions o = Options(m, false, type);
      o.num_bins = 1 << 16;
      const TensorCalibrator c = Calibrate(o, {data});
      const CalibrationRange r = Range(c);
      SCOPED_TRACE(testing::Message()
                   << CalibrationMethodName(m) << " " << QuantTypeName(type));
      EXPECT_EQ(ActivationParamsForRange(r.min, r.max, type, false).qmax,
                QuantTypeMax(type));
      EXPECT_LT(r.min, -1.f);
      EXPECT_GT(r.max, 1.f);
      if (m != CalibrationMethod::kMinMax &&
          m != CalibrationMethod::kMovingAverageMinMax) {
        EXPECT_LT(r.max - r.min, 140.f);
      }
    }
  }
}

TEST(TensorCalibratorTest, EntropyOnPostReluDataClipsTheTail) {
  std::mt19937 rng(11);
  std::normal_distribution<float> d(0.f, 1.f);
  std::vector<float> data(1 << 18);
  for (float& x : data) x = std::max(0.f, d(rng));
  data[5] = 40.f;
  TensorCalibrator c = Calibrate(Options(CalibrationMethod::kEntropy), {data});
  EXPECT_EQ(Range(c).min, 0.f);
  EXPECT_GT(Range(c).max, 2.f);
  EXPECT_LT(Range(c).max, 10.f);
}

TEST(TensorCalibratorTest, ConstantAndZeroTensorsGetUsableParams) {
  for (CalibrationMethod m : kAllMethods) {
    for (bool symmetric : {false, true}) {
      for (float value : {3.5f, -2.f, 0.f}) {
        TensorCalibrator c = Calibrate(
            Options(m, symmetric),
            {std::vector<float>(1000, value), std::vector<float>(10, value)});
        QuantParams p = Params(c);
        SCOPED_TRACE(testing::Message()
                     << CalibrationMethodName(m) << " symmetric=" << symmetric
                     << " value=" << value);
        ASSERT_EQ(p.scales.size(), 1u);
        EXPECT_GT(p.scales[0], 0.f);
        EXPECT_TRUE(std::isfinite(p.scales[0]));
        EXPECT_NEAR(Qdq(value, p), value, p.scales[0] / 2 + 1e-6);
        EXPECT_EQ(Qdq(0.f, p), 0.f);
      }
    }
  }
}

TEST(TensorCalibratorTest, StreamingMatchesOneBatch) {
  // Batches whose spread keeps growing force a re-binning at nearly every
  // batch; exact merging keeps the answer within a bin of the one-batch one.
  std::mt19937 rng(5);
  std::normal_distribution<float> d(0.5f, 1.f);
  std::vector<std::vector<float>> batches(400, std::vector<float>(500));
  std::vector<float> all;
  for (size_t b = 0; b < batches.size(); ++b) {
    for (float& x : batches[b]) x = d(rng) * (1 + b / 40.f);
    all.insert(all.end(), batches[b].begin(), batches[b].end());
  }
  for (bool symmetric : {false, true}) {
    for (CalibrationMethod m : kAllMethods) {
      if (m == CalibrationMethod::kMovingAverageMinMax) continue;
      SCOPED_TRACE(testing::Message()
                   << CalibrationMethodName(m) << " symmetric=" << symmetric);
      TensorCalibrator streamed = Calibrate(Options(m, symmetric), batches);
      TensorCalibrator whole = Calibrate(Options(m, symmetric), {all});
      double tol = 1e-6;
      if (streamed.histogram() != nullptr) {
        EXPECT_EQ(streamed.histogram()->total(), all.size());
        tol =
            streamed.histogram()->bin_width() + whole.histogram()->bin_width();
      }
      // MSE searches on bins: allow a few. Entropy's KL curve is flat on
      // this mixture, so its minimum moves with the grid (as TensorRT's
      // does): allow 5% of the range.
      if (m == CalibrationMethod::kMse) tol *= 3;
      if (m == CalibrationMethod::kEntropy) {
        tol = 0.05 * (Range(whole).max - Range(whole).min);
      }
      EXPECT_NEAR(Range(streamed).min, Range(whole).min, tol);
      EXPECT_NEAR(Range(streamed).max, Range(whole).max, tol);
    }
  }
}

TEST(TensorCalibratorTest, MemoryDoesNotGrowWithBatches) {
  CalibrationOptions o = Options(CalibrationMethod::kPercentile);
  o.num_bins = 512;
  absl::StatusOr<TensorCalibrator> c = TensorCalibrator::Create("t", o);
  ASSERT_TRUE(c.ok());
  std::mt19937 rng(3);
  std::normal_distribution<float> d(0.f, 1.f);
  std::vector<float> batch(64);
  for (int b = 0; b < 20000; ++b) {
    for (float& x : batch) x = d(rng) * (b % 100 == 0 ? b : 1);
    ASSERT_TRUE(c->Observe(F32(batch)).ok());
    if (b == 10) {
      EXPECT_EQ(c->histogram()->counts().size(), 512u);
    }
  }
  EXPECT_EQ(c->num_batches(), 20000);
  EXPECT_EQ(c->histogram()->counts().size(), 512u);
  EXPECT_EQ(c->histogram()->counts().capacity(), 512u);
  EXPECT_EQ(c->histogram()->total(), 20000.0 * 64);
}

TEST(TensorCalibratorTest, NanAndInfAreErrorsNamingTheTensor) {
  for (float bad : {std::nanf(""), std::numeric_limits<float>::infinity(),
                    -std::numeric_limits<float>::infinity()}) {
    for (CalibrationMethod m : kAllMethods) {
      absl::StatusOr<TensorCalibrator> c =
          TensorCalibrator::Create("conv1_out", Options(m));
      ASSERT_TRUE(c.ok());
      ASSERT_TRUE(c->Observe(F32({1.f, 2.f})).ok());
      absl::Status s = c->Observe(F32({1.f, bad, 3.f}));
      EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
      EXPECT_THAT(s.message(), HasSubstr("'conv1_out'"));
      EXPECT_THAT(s.message(), HasSubstr(std::isnan(bad) ? "NaN" : "Inf"));
      EXPECT_THAT(s.message(), HasSubstr("element 1"));
      EXPECT_THAT(s.message(), HasSubstr("batch 2"));
      // The bad batch left no trace.
      EXPECT_EQ(c->num_batches(), 1);
      EXPECT_EQ(c->num_elements(), 2);
      if (c->histogram() != nullptr) {
        EXPECT_EQ(c->histogram()->total(), 2);
      }
      if (m == CalibrationMethod::kMinMax) {
        EXPECT_FLOAT_EQ(c->ComputeRange()->max, 2.f);
      }
    }
  }
}

TEST(TensorCalibratorTest, RejectsNonFloatAndUnobservedTensors) {
  absl::StatusOr<TensorCalibrator> c =
      TensorCalibrator::Create("ids", CalibrationOptions());
  ASSERT_TRUE(c.ok());
  EXPECT_EQ(c->ComputeParams().status().code(),
            absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(c->ComputeParams().status().message(), HasSubstr("'ids'"));
  absl::Status s = c->Observe(Tensor::FromVector<int64_t>({2}, {1, 2}));
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(s.message(), HasSubstr("only float32"));
  // Empty batches are ignored.
  EXPECT_TRUE(c->Observe(Tensor(DataType::kFloat32, {0, 3})).ok());
  EXPECT_EQ(c->num_batches(), 0);
}

}  // namespace
}  // namespace quantd
