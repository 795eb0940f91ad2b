// Evidence for the per-head value/output rotation (QuaRot's R2, issue 15):
// the tiny GPT with one outlier channel per attention head injected into
// the output projections' inputs (value columns x40, output-projection rows
// /40: the same float function, engine/testing/outlier_model.h). Those
// inputs are no LayerNorm output, so the residual-stream rotation cannot
// touch them; per-tensor int8 activations spend their levels on the
// outliers. Rotating each head's values spreads each outlier over its head,
// which takes back what W8A8 lost; at W4A8 it needs GPTQ (see the bars).
// Prints the table the README quotes and holds the bars.
#include <stdlib.h>

#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "engine/pipeline/pipeline.h"
#include "engine/testing/outlier_model.h"
#include "gtest/gtest.h"

namespace quantd {
namespace {

std::string Data(const std::string& rel) {
  return absl::StrCat(QUANTD_TESTDATA_DIR, "/", rel);
}

struct Scheme {
  const char* name;
  bool int4_weights;
  bool rotate, heads, gptq;
};

v1::JobSpec Spec(const std::string& model, const Scheme& s) {
  v1::JobSpec spec;
  spec.mutable_model()->set_path(model);
  spec.mutable_calibration_data()->set_path(Data("tiny_gpt/calib.npz"));
  spec.mutable_evaluation_data()->set_path(Data("tiny_gpt/eval.npz"));
  spec.mutable_sensitivity()->set_disabled(true);
  spec.mutable_benchmark()->set_disabled(true);
  spec.mutable_calibration()->set_method(v1::CALIBRATION_METHOD_PERCENTILE);
  if (s.int4_weights) {
    spec.mutable_weights()->set_type(v1::QUANT_DATA_TYPE_INT4);
  }
  v1::Algorithms* a = spec.mutable_algorithms();
  a->mutable_rotation()->set_enabled(s.rotate);
  a->mutable_rotation()->set_value_output_heads(s.heads);
  a->mutable_gptq()->set_enabled(s.gptq);
  return spec;
}

double PerplexityDelta(const v1::JobSpec& spec, std::string* notes) {
  absl::StatusOr<PipelineResult> r = RunBatchJob(spec);
  EXPECT_TRUE(r.ok()) << r.status();
  if (!r.ok()) return 0;
  for (const v1::LayerReport& l : r->report.layers()) {
    for (const std::string& a : l.algorithms()) {
      if (absl::StrContains(a, "per-head")) absl::StrAppend(notes, a, "\n");
    }
  }
  for (const std::string& w : r->report.warnings()) {
    if (absl::StrContains(w, "value_output_heads")) {
      absl::StrAppend(notes, w, "\n");
    }
  }
  return r->report.fake_quant().perplexity_delta_percent();
}

TEST(HeadOutlierTest, HeadRotationTakesBackWhatHeadOutliersCost) {
  char tmpl[] = "/tmp/quantd_head_outliers_XXXXXX";
  const std::string dir = mkdtemp(tmpl);
  const std::string model = dir + "/head_outlier_gpt.onnx";
  absl::StatusOr<int> pairs = outliers::WriteModelWithHeadOutliers(
      Data("tiny_gpt/model.onnx"), model, 40.f);
  ASSERT_TRUE(pairs.ok()) << pairs.status();
  EXPECT_EQ(*pairs, 2);
  const std::vector<Scheme> schemes = {
      {"W8A8 RTN", false, false, false, false},
      {"W8A8 rotation", false, true, false, false},
      {"W8A8 rotation + heads", false, true, true, false},
      {"W4A8 RTN", true, false, false, false},
      {"W4A8 rotation", true, true, false, false},
      {"W4A8 rotation + heads", true, true, true, false},
      {"W4A8 rotation + GPTQ", true, true, false, true},
      {"W4A8 rotation + heads + GPTQ", true, true, true, true},
  };
  std::vector<double> delta[2];
  std::string notes;
  std::printf("%-30s %10s %14s\n", "perplexity +%", "tiny GPT",
              "head outliers");
  for (const Scheme& s : schemes) {
    for (int m = 0; m < 2; ++m) {
      const std::string path = m == 0 ? Data("tiny_gpt/model.onnx") : model;
      delta[m].push_back(PerplexityDelta(Spec(path, s), &notes));
    }
    std::printf("%-30s %9.2f%% %13.2f%%\n", s.name, delta[0].back(),
                delta[1].back());
  }
  std::printf("%s", notes.c_str());
  // The head outliers hurt int8 activations; the residual-stream rotation
  // does not reach them; the head rotation takes most of the loss back.
  EXPECT_GT(delta[1][0], delta[0][0] + 0.5);
  EXPECT_GT(delta[1][1], 0.5 * delta[1][0]);
  EXPECT_LT(delta[1][2], 0.5 * delta[1][1]);
  // With int4 weights the rotation mixes each head's x40 value column into
  // its other columns, which per-channel int4 steps cannot hold (measured
  // +34.5% vs +5.6% without it, round-to-nearest; the report warns). GPTQ
  // compensates: with it the head rotation costs nothing (2.91% vs 2.88%).
  EXPECT_LT(delta[1][7], delta[1][6] + 0.5);
  EXPECT_TRUE(absl::StrContains(notes, "4 heads of 32")) << notes;
  EXPECT_TRUE(absl::StrContains(notes, "enable gptq")) << notes;
  std::system(absl::StrCat("rm -rf '", dir, "'").c_str());
}

}  // namespace
}  // namespace quantd
