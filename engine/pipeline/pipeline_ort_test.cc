// Every artifact kind the pipeline exports runs in ONNX Runtime and computes
// what quantd's fake-quant simulation of it computes: one case per job spec
// in examples/ (static W8A8, dynamic, int4 groups with partial last groups
// and mixed int4/int8 fallback, SmoothQuant's folded LayerNorms and Mul
// nodes, GPTQ, AWQ). Skipped, with the reason, without node and
// tests/ort/node_modules (tools/test.sh installs them).
#include <cstdio>
#include <fstream>
#include <sstream>

#include "engine/data/dataset.h"
#include "engine/evaluation/evaluation_task.h"
#include "engine/pipeline/job_spec.h"
#include "engine/pipeline/pipeline.h"
#include "engine/runtime/executor.h"
#include "engine/testing/ort_test_util.h"
#include "engine/testing/qdq_test_util.h"
#include "gtest/gtest.h"

namespace quantd {
namespace {

using ort_test::RunOrt;

// Evaluation samples fed to both runtimes.
constexpr int64_t kSamples = 16;

absl::StatusOr<v1::JobSpec> LoadExample(const std::string& name) {
  const std::string root = ort_test::SourceRoot();
  std::ifstream f(root + "/examples/" + name, std::ios::binary);
  std::stringstream text;
  text << f.rdbuf();
  absl::StatusOr<v1::JobSpec> spec = ParseJobSpecJson(text.str());
  if (!spec.ok()) return spec.status();
  // Example paths are relative to the repository root.
  for (v1::DataRef* ref :
       {spec->mutable_model(), spec->mutable_calibration_data(),
        spec->mutable_evaluation_data()}) {
    if (!ref->path().empty()) ref->set_path(root + "/" + ref->path());
  }
  // Fewer samples per sensitivity evaluation: the artifact is under test
  // here, not the choice of layers.
  spec->mutable_sensitivity()->set_max_samples(64);
  return spec;
}

class PipelineOrtTest : public ::testing::TestWithParam<std::string> {};

TEST_P(PipelineOrtTest, OrtRunsTheArtifactAsQuantdDoes) {
  SKIP_WITHOUT_ORT();
  absl::StatusOr<v1::JobSpec> spec = LoadExample(GetParam());
  ASSERT_TRUE(spec.ok()) << spec.status();
  PipelineOptions options;
  options.keep_qdq_graph = true;
  absl::StatusOr<PipelineResult> r =
      RunBatchJob(*spec, nullptr, nullptr, options);
  ASSERT_TRUE(r.ok()) << r.status();
  ASSERT_TRUE(r->qdq_graph.has_value());
  const Graph& qdq = *r->qdq_graph;

  DatasetOptions data_options;
  absl::StatusOr<ResolvedTask> task = ResolveEvaluationTask(
      spec->evaluation(), qdq, ReadDataFacts(spec->evaluation_data().path()));
  ASSERT_TRUE(task.ok()) << task.status();
  ApplyTask(*task, &data_options);
  data_options.batch_size = kSamples;
  data_options.max_samples = kSamples;
  absl::StatusOr<std::unique_ptr<Dataset>> data =
      Dataset::Open(spec->evaluation_data().path(), qdq, data_options);
  ASSERT_TRUE(data.ok()) << data.status();
  absl::StatusOr<std::optional<DataBatch>> batch = (*data)->Next();
  ASSERT_TRUE(batch.ok() && batch->has_value()) << batch.status();
  const TensorMap& feeds = (*batch)->feeds;

  absl::StatusOr<std::unique_ptr<Executor>> ex = Executor::Create(qdq);
  ASSERT_TRUE(ex.ok()) << ex.status();
  absl::StatusOr<std::vector<Tensor>> quantd = (*ex)->RunOutputs(feeds);
  ASSERT_TRUE(quantd.ok()) << quantd.status();
  const std::string output = qdq.outputs[0].name;
  absl::StatusOr<std::vector<Tensor>> ort =
      RunOrt(r->model_bytes, feeds, {output}, ort_test::kOrtUnoptimized);
  ASSERT_TRUE(ort.ok()) << ort.status();
  ASSERT_EQ((*ort)[0].shape(), (*quantd)[0].shape());
  // Unoptimized ORT dequantizes and runs float kernels: quantd's math up to
  // summation order, so an activation within float rounding of a
  // quantization boundary may move by one step (logits are O(10)).
  const float max_diff = qdq_test::MaxAbsDiff((*ort)[0], (*quantd)[0]);
  EXPECT_LE(max_diff, 0.1f);
  EXPECT_GE(qdq_test::Top1Agreement((*ort)[0], (*quantd)[0]), 0.99);

  // With its graph optimizations (integer kernels, MatMulNBits with float
  // activations) ORT must run it too and agree on the top-1 class.
  absl::StatusOr<std::vector<Tensor>> optimized = RunOrt(
      r->model_bytes, feeds, {output}, ort_test::kOrtOptimizedFloatMatMulNBits);
  ASSERT_TRUE(optimized.ok()) << optimized.status();
  const double agreement =
      qdq_test::Top1Agreement((*optimized)[0], (*quantd)[0]);
  EXPECT_GE(agreement, 0.95);
  std::printf(
      "%s: max |ORT unoptimized - quantd| %.3g; top-1 agreement "
      "ORT optimized vs quantd %.4f\n",
      GetParam().c_str(), max_diff, agreement);
}

INSTANTIATE_TEST_SUITE_P(Examples, PipelineOrtTest,
                         ::testing::Values("fmnist_cnn_ptq.json",
                                           "fmnist_mlp_dynamic.json",
                                           "fmnist_cnn_int4_fallback.json",
                                           "tiny_gpt_w8a8_smoothquant.json",
                                           "tiny_gpt_int4_gptq.json",
                                           "tiny_gpt_int4_awq_target.json"),
                         [](const auto& info) {
                           return info.param.substr(0, info.param.find('.'));
                         });

}  // namespace
}  // namespace quantd
