// Jobs on models whose first output is not [N, classes] of a classifier
// nor next-token logits: the evaluation task decides the metrics and the
// accuracy target (evaluation_task.h).
#include <cstdlib>
#include <random>

#include "engine/data/array_file.h"
#include "engine/pipeline/pipeline.h"
#include "engine/testing/newer_opset_model.h"
#include "engine/testing/ort_test_util.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace quantd {
namespace {

using ::testing::HasSubstr;
using namespace newer_opset;  // NOLINT: proto-building helpers

class TaskJobTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = ::testing::TempDir() + "/quantd_task_XXXXXX";
    ASSERT_NE(mkdtemp(dir_.data()), nullptr);
  }
  void TearDown() override { std::system(("rm -rf '" + dir_ + "'").c_str()); }
  std::string Write(const std::string& name, const onnx::ModelProto& m) {
    const std::string path = dir_ + "/" + name;
    EXPECT_TRUE(ort_test::WriteFile(path, Serialize(m)).ok());
    return path;
  }
  std::string Write(const std::string& name, const std::string& input,
                    Tensor t) {
    const std::string path = dir_ + "/" + name;
    EXPECT_TRUE(WriteNpz(path, {{input, std::move(t)}}).ok());
    return path;
  }
  std::string dir_;
};

onnx::ModelProto Opset17(const std::string& name) {
  onnx::ModelProto m;
  m.set_ir_version(8);
  onnx::OperatorSetIdProto* o = m.add_opset_import();
  o->set_domain("");
  o->set_version(17);
  m.mutable_graph()->set_name(name);
  return m;
}

// A BERT-shaped classifier: input_ids int64 [N, T] -> embedding, mean over
// T -> 2 classes.
onnx::ModelProto TokenClassifier() {
  onnx::ModelProto m = Opset17("token_classifier");
  onnx::GraphProto& g = *m.mutable_graph();
  onnx::ValueInfoProto* in = g.add_input();
  in->set_name("input_ids");
  auto* tt = in->mutable_type()->mutable_tensor_type();
  tt->set_elem_type(onnx::TensorProto::INT64);
  tt->mutable_shape()->add_dim()->set_dim_param("N");
  tt->mutable_shape()->add_dim()->set_dim_param("T");
  AddFloatInfo(g.add_output(), "logits", {-1, 2});
  AddRandom(g, "embedding", {100, 16}, 1.f, 1);
  AddRandom(g, "head", {16, 2}, 0.5f, 2);
  AddNode(g, "Gather", {"embedding", "input_ids"}, {"embedded"});
  onnx::NodeProto* mean = AddNode(g, "ReduceMean", {"embedded"}, {"pooled"});
  onnx::AttributeProto* axes = mean->add_attribute();
  axes->set_name("axes");
  axes->set_type(onnx::AttributeProto::INTS);
  axes->add_ints(1);
  AddIntAttr(mean, "keepdims", 0);
  AddNode(g, "MatMul", {"pooled", "head"}, {"logits"});
  return m;
}

// A 1-channel probability map: x [N, 1, 8, 8] -> conv, relu, conv,
// sigmoid -> [N, 1, 8, 8].
onnx::ModelProto ProbabilityMap() {
  onnx::ModelProto m = Opset17("probability_map");
  onnx::GraphProto& g = *m.mutable_graph();
  AddFloatInfo(g.add_input(), "x", {-1, 1, 8, 8});
  AddFloatInfo(g.add_output(), "map", {-1, 1, 8, 8});
  AddRandom(g, "w1", {8, 1, 3, 3}, 0.5f, 3);
  AddRandom(g, "w2", {1, 8, 3, 3}, 0.3f, 4);
  auto conv = [&](const char* in, const char* w, const char* out) {
    onnx::AttributeProto* pads =
        AddNode(g, "Conv", {in, w}, {out})->add_attribute();
    pads->set_name("pads");
    pads->set_type(onnx::AttributeProto::INTS);
    for (int i = 0; i < 4; ++i) pads->add_ints(1);
  };
  conv("x", "w1", "c1");
  AddNode(g, "Relu", {"c1"}, {"r1"});
  conv("r1", "w2", "c2");
  AddNode(g, "Sigmoid", {"c2"}, {"map"});
  return m;
}

TEST_F(TaskJobTest, ABertShapedClassifierWithInputIdsRuns) {
  Tensor ids(DataType::kInt64, {64, 12});
  std::mt19937 rng(5);
  for (int64_t& v : ids.mutable_span<int64_t>()) v = rng() % 100;
  v1::JobSpec spec;
  spec.mutable_model()->set_path(Write("model.onnx", TokenClassifier()));
  spec.mutable_calibration_data()->set_path(
      Write("data.npz", "input_ids", ids));
  spec.set_mode(v1::QUANT_MODE_STATIC);
  spec.mutable_benchmark()->set_disabled(true);
  absl::StatusOr<PipelineResult> r = RunBatchJob(spec);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_FALSE(r->report.has_performance());  // benchmark.disabled
  EXPECT_EQ(r->report.fake_quant().task(), "classification");
  EXPECT_FALSE(r->report.fake_quant().is_language_model());
  EXPECT_GT(r->report.fake_quant().top1_agreement(), 0.8);
}

TEST_F(TaskJobTest, AProbabilityMapGetsMaskIoUAndItsTarget) {
  Tensor x(DataType::kFloat32, {64, 1, 8, 8});
  std::mt19937 rng(6);
  std::normal_distribution<float> d(0.f, 1.f);
  for (float& v : x.mutable_span<float>()) v = d(rng);
  v1::JobSpec spec;
  spec.mutable_model()->set_path(Write("model.onnx", ProbabilityMap()));
  spec.mutable_calibration_data()->set_path(Write("data.npz", "x", x));
  spec.set_mode(v1::QUANT_MODE_STATIC);

  // Unspecified: output fidelity, said in the report.
  absl::StatusOr<PipelineResult> r = RunBatchJob(spec);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->report.fake_quant().task(), "output_fidelity");
  EXPECT_THAT(r->report.warnings(),
              ::testing::Contains(HasSubstr("inferred: output fidelity")));
  EXPECT_EQ(r->report.sensitivity_metric(), "output SQNR, minus dB");

  spec.mutable_evaluation()->set_task(v1::EVALUATION_TASK_SEGMENTATION);
  spec.mutable_accuracy_target()->set_min_mask_iou(0.9);
  r = RunBatchJob(spec);
  ASSERT_TRUE(r.ok()) << r.status();
  const v1::EvaluationMetrics& fq = r->report.fake_quant();
  EXPECT_EQ(fq.task(), "segmentation");
  EXPECT_GT(fq.mask_iou(), 0.5);
  EXPECT_LE(fq.mask_iou(), 1.0);
  EXPECT_EQ(r->report.sensitivity_metric(), "mask IoU loss, points");
  EXPECT_FALSE(r->report.accuracy_target_message().empty());
  EXPECT_EQ(r->report.accuracy_target_met(), fq.mask_iou() >= 0.9);
}

}  // namespace
}  // namespace quantd
