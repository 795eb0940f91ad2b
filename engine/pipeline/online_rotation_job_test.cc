// The online rotation in a job (rotation.online_down_projections): the
// inserted Hadamard MatMuls stay float (quantizing them would quantize the
// outliers they spread), the down projections say what they cost, and the
// job's float function is the model's.
#include <string>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "engine/pipeline/pipeline.h"
#include "gtest/gtest.h"

namespace quantd {
namespace {

std::string Data(const std::string& rel) {
  return absl::StrCat(QUANTD_TESTDATA_DIR, "/", rel);
}

TEST(OnlineRotationJobTest, InsertedMatMulsStayFloatAndTheCostIsReported) {
  v1::JobSpec spec;
  spec.mutable_model()->set_path(Data("tiny_gpt/model.onnx"));
  spec.mutable_calibration_data()->set_path(Data("tiny_gpt/calib.npz"));
  spec.mutable_evaluation_data()->set_path(Data("tiny_gpt/eval.npz"));
  spec.mutable_sensitivity()->set_disabled(true);
  spec.mutable_benchmark()->set_disabled(true);
  spec.mutable_calibration()->set_method(v1::CALIBRATION_METHOD_PERCENTILE);
  spec.mutable_algorithms()->mutable_rotation()->set_enabled(true);
  spec.mutable_algorithms()->mutable_rotation()->set_online_down_projections(
      true);
  absl::StatusOr<PipelineResult> r = RunBatchJob(spec);
  ASSERT_TRUE(r.ok()) << r.status();
  int rotated = 0;
  for (const v1::LayerReport& l : r->report.layers()) {
    EXPECT_FALSE(absl::StrContains(l.node(), "online_rotation")) << l.node();
    for (const std::string& a : l.algorithms()) {
      if (absl::StrContains(a, "online Hadamard 32 x 16 on its 512 inputs")) {
        ++rotated;
      }
    }
  }
  EXPECT_EQ(rotated, 2);                   // both blocks' fc_out
  EXPECT_EQ(r->report.layers_size(), 13);  // the model's own 13 layers
  bool cost_warned = false;
  for (const std::string& w : r->report.warnings()) {
    cost_warned |= absl::StrContains(
        w, "2 layers get an online Hadamard at run time, 49152 float");
  }
  EXPECT_TRUE(cost_warned);
  // W8A8 with it stays where W8A8 is on this model (+0.08% measured).
  EXPECT_LT(r->report.fake_quant().perplexity_delta_percent(), 0.5);
}

}  // namespace
}  // namespace quantd
