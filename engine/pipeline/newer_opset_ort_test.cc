// A model at an opset Debian's ONNX library does not know (20: Gelu,
// ReduceMean with axes as an input, Split with num_outputs), quantized end
// to end: quantd's lowering to opset 17 must compute what ONNX Runtime
// computes on the original file, and the exported artifact must run in ONNX
// Runtime as quantd's fake quant does. Skipped, with the reason, without
// node and tests/ort/node_modules.
#include <cstdlib>
#include <random>

#include "engine/data/array_file.h"
#include "engine/onnx/model_loader.h"
#include "engine/pipeline/pipeline.h"
#include "engine/runtime/executor.h"
#include "engine/testing/newer_opset_model.h"
#include "engine/testing/ort_test_util.h"
#include "engine/testing/qdq_test_util.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace quantd {
namespace {

Tensor RandomRows(int64_t rows, uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> d(0.f, 1.f);
  Tensor t(DataType::kFloat32, {rows, 16});
  for (float& v : t.mutable_span<float>()) v = d(rng);
  return t;
}

TEST(NewerOpsetOrtTest, AnOpset20ModelQuantizesAndRunsInOrt) {
  SKIP_WITHOUT_ORT();
  const std::string bytes = newer_opset::Serialize(newer_opset::MlpBlock(20));
  std::string dir = ::testing::TempDir() + "/quantd_opset20_XXXXXX";
  ASSERT_NE(mkdtemp(dir.data()), nullptr);
  ASSERT_TRUE(ort_test::WriteFile(dir + "/model.onnx", bytes).ok());
  ASSERT_TRUE(WriteNpz(dir + "/calib.npz", {{"x", RandomRows(256, 1)}}).ok());
  ASSERT_TRUE(WriteNpz(dir + "/eval.npz", {{"x", RandomRows(64, 2)}}).ok());
  const TensorMap feeds = {{"x", RandomRows(32, 3)}};

  // The lowering: quantd's float run of the lowered graph = ORT on the
  // opset-20 file.
  absl::StatusOr<LoadedModel> m = LoadModelFromBytes(bytes);
  ASSERT_TRUE(m.ok()) << m.status();
  absl::StatusOr<std::unique_ptr<Executor>> ex = Executor::Create(m->graph);
  ASSERT_TRUE(ex.ok()) << ex.status();
  absl::StatusOr<std::vector<Tensor>> float_quantd = (*ex)->RunOutputs(feeds);
  ASSERT_TRUE(float_quantd.ok()) << float_quantd.status();
  absl::StatusOr<std::vector<Tensor>> float_ort =
      ort_test::RunOrt(bytes, feeds, {"y"}, ort_test::kOrtUnoptimized);
  ASSERT_TRUE(float_ort.ok()) << float_ort.status();
  EXPECT_LE(qdq_test::MaxAbsDiff((*float_ort)[0], (*float_quantd)[0]), 1e-5f);

  // The job, and its artifact in ORT.
  v1::JobSpec spec;
  spec.mutable_model()->set_path(dir + "/model.onnx");
  spec.mutable_calibration_data()->set_path(dir + "/calib.npz");
  spec.mutable_evaluation_data()->set_path(dir + "/eval.npz");
  spec.set_mode(v1::QUANT_MODE_STATIC);
  PipelineOptions options;
  options.keep_qdq_graph = true;
  absl::StatusOr<PipelineResult> r =
      RunBatchJob(spec, nullptr, nullptr, options);
  std::system(("rm -rf '" + dir + "'").c_str());
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_THAT(r->report.warnings(),
              ::testing::Contains(::testing::HasSubstr("lowered opset 20")));
  EXPECT_GT(r->report.fake_quant().top1_agreement(), 0.9);
  absl::StatusOr<std::unique_ptr<Executor>> qex =
      Executor::Create(*r->qdq_graph);
  ASSERT_TRUE(qex.ok()) << qex.status();
  absl::StatusOr<std::vector<Tensor>> q_quantd = (*qex)->RunOutputs(feeds);
  ASSERT_TRUE(q_quantd.ok()) << q_quantd.status();
  absl::StatusOr<std::vector<Tensor>> q_ort =
      ort_test::RunOrt(r->model_bytes, feeds, {"y"}, ort_test::kOrtUnoptimized);
  ASSERT_TRUE(q_ort.ok()) << q_ort.status();
  // Probabilities; one quantization step moved by float rounding at most.
  EXPECT_LE(qdq_test::MaxAbsDiff((*q_ort)[0], (*q_quantd)[0]), 0.02f);
  absl::StatusOr<std::vector<Tensor>> q_ort_opt =
      ort_test::RunOrt(r->model_bytes, feeds, {"y"}, ort_test::kOrtOptimized);
  ASSERT_TRUE(q_ort_opt.ok()) << q_ort_opt.status();
  EXPECT_GE(qdq_test::Top1Agreement((*q_ort_opt)[0], (*q_quantd)[0]), 0.9);
}

}  // namespace
}  // namespace quantd
