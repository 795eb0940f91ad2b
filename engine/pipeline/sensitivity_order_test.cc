// Sensitivity that scales: every layer's local error first (one float pass
// with each layer re-run in isolation), then end-to-end measurements
// head first, then worst local error first, so a time budget spends itself
// on the layers that matter.
// On the tiny transformer LM (testdata/tiny_gpt), int4 weight-only.
#include <cmath>
#include <limits>
#include <map>
#include <string>

#include "absl/strings/str_cat.h"
#include "engine/pipeline/pipeline.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace quantd {
namespace {

v1::JobSpec Int4Spec() {
  const std::string dir = absl::StrCat(QUANTD_TESTDATA_DIR, "/tiny_gpt/");
  v1::JobSpec spec;
  spec.mutable_model()->set_path(dir + "model.onnx");
  spec.mutable_calibration_data()->set_path(dir + "calib.npz");
  spec.mutable_evaluation_data()->set_path(dir + "eval.npz");
  spec.set_mode(v1::QUANT_MODE_WEIGHT_ONLY);
  spec.mutable_weights()->set_type(v1::QUANT_DATA_TYPE_INT4);
  spec.mutable_weights()->set_granularity(v1::GRANULARITY_PER_CHANNEL);
  // The whole evaluation set (128 rows): sensitivity and the fake-quant
  // evaluation see the same data.
  spec.mutable_sensitivity()->set_max_samples(128);
  return spec;
}

// The first layer in graph order has only float ops upstream, so its local
// error is its output error in the fake-quant evaluation, which a different
// code path computes (per-layer SQNR of the whole quantized model).
TEST(SensitivityOrderTest, LocalSqnrIsTheOutputSqnrWhereNothingIsUpstream) {
  absl::StatusOr<PipelineResult> r = RunBatchJob(Int4Spec());
  ASSERT_TRUE(r.ok()) << r.status();
  const auto& layers = r->report.layers();
  ASSERT_GT(layers.size(), 2);
  for (const v1::LayerReport& l : layers) {
    ASSERT_TRUE(l.has_local_sqnr_db()) << l.node();
    EXPECT_TRUE(std::isfinite(l.local_sqnr_db())) << l.node();
    EXPECT_GT(l.local_sqnr_db(), 0) << l.node();
  }
  EXPECT_NEAR(layers[0].local_sqnr_db(), layers[0].output_sqnr_db(), 0.05)
      << layers[0].node();
  // Downstream layers also carry the error of those before them.
  double worst_output = std::numeric_limits<double>::infinity();
  for (const v1::LayerReport& l : layers) {
    worst_output = std::min(worst_output, l.output_sqnr_db());
  }
  double worst_local = std::numeric_limits<double>::infinity();
  for (const v1::LayerReport& l : layers) {
    worst_local = std::min(worst_local, l.local_sqnr_db());
  }
  EXPECT_LE(worst_output, worst_local);
}

// Layers are measured head first (nothing downstream damps its error; on
// this model it is the most sensitive layer and has the best local SQNR),
// then lowest local SQNR first.
TEST(SensitivityOrderTest, MeasuresTheHeadThenTheWorstLocalLayers) {
  v1::JobSpec spec = Int4Spec();
  spec.mutable_sensitivity()->set_time_budget_seconds(1e-6);
  std::vector<std::string> measured;
  absl::StatusOr<PipelineResult> r =
      RunBatchJob(spec, [&](const ProgressEvent& e) {
        if (e.stage == "sensitivity" && e.metrics.contains("sensitivity")) {
          measured.push_back(e.current_layer);
        }
      });
  ASSERT_TRUE(r.ok()) << r.status();
  ASSERT_EQ(measured.size(), 1u);  // the first layer is always measured
  EXPECT_EQ(measured[0], "/lm_head/MatMul");
  EXPECT_THAT(r->report.warnings(),
              ::testing::Contains(::testing::HasSubstr(
                  "those with the lowest local SQNR first")));

  // With the whole budget, the order of the progress events is the order
  // of measurement: after the head, ascending local SQNR.
  measured.clear();
  r = RunBatchJob(Int4Spec(), [&](const ProgressEvent& e) {
    if (e.stage == "sensitivity" && e.metrics.contains("sensitivity")) {
      measured.push_back(e.current_layer);
    }
  });
  ASSERT_TRUE(r.ok()) << r.status();
  std::map<std::string, double> local;
  for (const v1::LayerReport& l : r->report.layers()) {
    local[l.node()] = l.local_sqnr_db();
  }
  ASSERT_EQ(measured.size(), local.size());
  EXPECT_EQ(measured[0], "/lm_head/MatMul");
  for (size_t i = 2; i < measured.size(); ++i) {
    EXPECT_LE(local[measured[i - 1]], local[measured[i]]) << i;
  }
}

TEST(SensitivityOrderTest, NoLocalErrorWhenSensitivityIsDisabled) {
  v1::JobSpec spec = Int4Spec();
  spec.mutable_sensitivity()->set_disabled(true);
  absl::StatusOr<PipelineResult> r = RunBatchJob(spec);
  ASSERT_TRUE(r.ok()) << r.status();
  for (const v1::LayerReport& l : r->report.layers()) {
    EXPECT_FALSE(l.has_local_sqnr_db()) << l.node();
  }
}

}  // namespace
}  // namespace quantd
