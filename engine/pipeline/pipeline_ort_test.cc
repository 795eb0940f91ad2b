// Every artifact kind the pipeline exports runs in ONNX Runtime and computes
// what quantd's fake-quant simulation of it computes: one case per job spec
// in examples/ (static W8A8, dynamic, int4 groups with partial last groups
// and mixed int4/int8 fallback, SmoothQuant's folded LayerNorms and Mul
// nodes, GPTQ, AWQ, learned rounding, 3-bit weights). Skipped, with the reason,
// without node and tests/ort/node_modules (tools/test.sh installs them).
#include <cstdio>
#include <fstream>
#include <sstream>

#include "engine/data/dataset.h"
#include "engine/evaluation/evaluation_task.h"
#include "engine/onnx/model_loader.h"
#include "engine/pipeline/artifacts.h"
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

// One batch of the job's evaluation data, as the exported graph reads it.
absl::StatusOr<TensorMap> EvaluationFeeds(const v1::JobSpec& spec,
                                          const Graph& qdq) {
  DatasetOptions data_options;
  absl::StatusOr<ResolvedTask> task = ResolveEvaluationTask(
      spec.evaluation(), qdq, ReadDataFacts(spec.evaluation_data().path()));
  if (!task.ok()) return task.status();
  ApplyTask(*task, &data_options);
  data_options.batch_size = kSamples;
  data_options.max_samples = kSamples;
  absl::StatusOr<std::unique_ptr<Dataset>> data =
      Dataset::Open(spec.evaluation_data().path(), qdq, data_options);
  if (!data.ok()) return data.status();
  absl::StatusOr<std::optional<DataBatch>> batch = (*data)->Next();
  if (!batch.ok()) return batch.status();
  if (!batch->has_value()) return absl::InternalError("no evaluation batch");
  return std::move((*batch)->feeds);
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
  absl::StatusOr<TensorMap> feeds_or = EvaluationFeeds(*spec, qdq);
  ASSERT_TRUE(feeds_or.ok()) << feeds_or.status();
  const TensorMap& feeds = *feeds_or;

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

INSTANTIATE_TEST_SUITE_P(
    Examples, PipelineOrtTest,
    ::testing::Values(
        "fmnist_cnn_ptq.json", "fmnist_mlp_dynamic.json",
        "fmnist_cnn_int4_fallback.json", "tiny_gpt_w8a8_smoothquant.json",
        "tiny_gpt_int4_gptq.json", "tiny_gpt_int4_awq_target.json",
        "fmnist_cnn_cle_w4a8.json", "fmnist_cnn_w4a8_learned.json",
        "fmnist_cnn_w4a8_gptq.json", "tiny_gpt_int3_gptq_learned.json",
        "tiny_gpt_w4a8_rotated.json", "tiny_gpt_w8a8_rotated_heads.json",
        "tiny_gpt_int4_rotated_online.json"),
    [](const auto& info) {
      return info.param.substr(0, info.param.find('.'));
    });

// A model written with external data (as models past protobuf's 2 GiB
// are; the threshold is lowered here) is the same model: ORT reads the
// data file beside it and computes what quantd's graph computes, and
// quantd's loader reads it back. The int4 case checks packed 4-bit tensors
// in the data file.
class ExternalDataOrtTest : public ::testing::TestWithParam<std::string> {};

TEST_P(ExternalDataOrtTest, OrtRunsTheModelFromItsDataFile) {
  SKIP_WITHOUT_ORT();
  absl::StatusOr<v1::JobSpec> spec = LoadExample(GetParam());
  ASSERT_TRUE(spec.ok()) << spec.status();
  PipelineOptions options;
  options.keep_qdq_graph = true;
  options.max_inline_model_bytes = 4096;
  absl::StatusOr<PipelineResult> r =
      RunBatchJob(*spec, nullptr, nullptr, options);
  ASSERT_TRUE(r.ok()) << r.status();
  ASSERT_FALSE(r->model_external_data.empty());
  EXPECT_EQ(r->report.size().quantized_bytes(),
            static_cast<int64_t>(r->model_bytes.size() +
                                 r->model_external_data.size()));
  const Graph& qdq = *r->qdq_graph;
  absl::StatusOr<TensorMap> feeds = EvaluationFeeds(*spec, qdq);
  ASSERT_TRUE(feeds.ok()) << feeds.status();
  absl::StatusOr<std::unique_ptr<Executor>> ex = Executor::Create(qdq);
  ASSERT_TRUE(ex.ok()) << ex.status();
  absl::StatusOr<std::vector<Tensor>> quantd = (*ex)->RunOutputs(*feeds);
  ASSERT_TRUE(quantd.ok()) << quantd.status();
  const std::string output = qdq.outputs[0].name;
  absl::StatusOr<std::vector<Tensor>> ort =
      RunOrt(r->model_bytes, *feeds, {output}, ort_test::kOrtUnoptimized,
             r->model_external_data, kModelDataArtifact);
  ASSERT_TRUE(ort.ok()) << ort.status();
  EXPECT_LE(qdq_test::MaxAbsDiff((*ort)[0], (*quantd)[0]), 0.1f);

  // Without its data file the model is incomplete: ORT must fail, which
  // proves the weights really live there.
  EXPECT_FALSE(
      RunOrt(r->model_bytes, *feeds, {output}, ort_test::kOrtUnoptimized).ok());

  // run-job's artifacts: the three files, and quantd loads the model back
  // (opset 13 int8; quantd's loader does not read opset-21 int4 models).
  const std::string dir = ::testing::TempDir() + "/external_" +
                          GetParam().substr(0, GetParam().find('.'));
  ASSERT_TRUE(WriteArtifacts(dir, *r).ok());
  if (GetParam() == "fmnist_cnn_ptq.json") {
    absl::StatusOr<LoadedModel> loaded =
        LoadModelFromFile(dir + "/" + kModelArtifact);
    ASSERT_TRUE(loaded.ok()) << loaded.status();
    EXPECT_GT(loaded->external_data_bytes, 0);
    EXPECT_LE(loaded->external_data_bytes,
              static_cast<int64_t>(r->model_external_data.size()));
  }
}

INSTANTIATE_TEST_SUITE_P(Examples, ExternalDataOrtTest,
                         ::testing::Values("fmnist_cnn_ptq.json",
                                           "fmnist_cnn_int4_fallback.json"),
                         [](const auto& info) {
                           return info.param.substr(0, info.param.find('.'));
                         });

}  // namespace
}  // namespace quantd
