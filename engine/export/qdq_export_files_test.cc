// ExportQdqModelFiles: when a model's weights go to an external data file,
// and that the two files hold the same model as the self-contained export.
#include "engine/export/qdq_export.h"
#include "engine/testing/qdq_test_util.h"
#include "engine/testing/test_graphs.h"
#include "gtest/gtest.h"

namespace quantd {
namespace {

// y = x[4,256] MatMul w[256,64]: a 16 KB int8 weight, over the 1 KB
// external-data threshold.
Graph MatMulGraph() {
  Graph g;
  g.name = "matmul";
  g.opset = 17;
  ValueInfo x;
  x.name = "x";
  x.dtype = DataType::kFloat32;
  g.inputs = {x};
  ValueInfo y = x;
  y.name = "y";
  g.outputs = {y};
  g.initializers["w"] = RandomUniform({256, 64}, 7);
  Node n;
  n.name = "matmul";
  n.op_type = "MatMul";
  n.inputs = {"x", "w"};
  n.outputs = {"y"};
  g.nodes = {n};
  return g;
}

QuantizationPlan WeightPlan(const Graph& g) {
  QuantizationPlan plan;
  plan.weights["w"] = qdq_test::S8PerChannel(*g.FindInitializer("w"), 1, 127);
  return plan;
}

// The model with its external tensors put back inline: what the two files
// mean together.
onnx::ModelProto Inlined(const ExportedModel& files) {
  onnx::ModelProto model;
  EXPECT_TRUE(model.ParseFromString(files.model_bytes));
  for (onnx::TensorProto& t : *model.mutable_graph()->mutable_initializer()) {
    if (t.data_location() != onnx::TensorProto::EXTERNAL) continue;
    size_t offset = 0, length = 0;
    for (const auto& e : t.external_data()) {
      if (e.key() == "offset") offset = std::stoul(e.value());
      if (e.key() == "length") length = std::stoul(e.value());
    }
    t.set_raw_data(files.external_data.substr(offset, length));
    t.clear_external_data();
    t.clear_data_location();
  }
  return model;
}

TEST(ExportQdqModelFilesTest, SelfContainedByDefault) {
  const Graph g = MatMulGraph();
  QdqExportOptions options;
  options.external_data_location = "m.data";
  absl::StatusOr<ExportedModel> files =
      ExportQdqModelFiles(g, WeightPlan(g), options);
  ASSERT_TRUE(files.ok()) << files.status();
  EXPECT_TRUE(files->external_data.empty());
  absl::StatusOr<std::string> bytes = ExportQdqModelBytes(g, WeightPlan(g));
  ASSERT_TRUE(bytes.ok());
  EXPECT_EQ(files->model_bytes, *bytes);
}

TEST(ExportQdqModelFilesTest, TooLargeOrPreferredGoesExternalSameModel) {
  const Graph g = MatMulGraph();
  absl::StatusOr<std::string> whole = ExportQdqModelBytes(g, WeightPlan(g));
  ASSERT_TRUE(whole.ok());
  for (const bool prefer : {false, true}) {
    QdqExportOptions options;
    options.external_data_location = "m.data";
    options.prefer_external_data = prefer;
    if (!prefer) options.max_inline_bytes = 4096;
    absl::StatusOr<ExportedModel> files =
        ExportQdqModelFiles(g, WeightPlan(g), options);
    ASSERT_TRUE(files.ok()) << files.status();
    EXPECT_EQ(files->external_data.size(), 256u * 64u) << prefer;
    EXPECT_LT(files->model_bytes.size(), 4096u);
    EXPECT_EQ(Inlined(*files).SerializeAsString(), *whole) << prefer;
  }
}

TEST(ExportQdqModelFilesTest, TooLargeWithoutALocationSaysWhatToUse) {
  const Graph g = MatMulGraph();
  QdqExportOptions options;
  options.max_inline_bytes = 4096;
  absl::StatusOr<ExportedModel> files =
      ExportQdqModelFiles(g, WeightPlan(g), options);
  EXPECT_EQ(files.status().code(), absl::StatusCode::kResourceExhausted);
  EXPECT_NE(files.status().message().find("quantd run-job"),
            absl::string_view::npos)
      << files.status();
}

// Integers the plan already holds (GPTQ's) are written as they are, not
// re-derived from the float weights.
TEST(ExportQdqModelFilesTest, WritesThePlansCodes) {
  const Graph g = MatMulGraph();
  QuantizationPlan plan = WeightPlan(g);
  Tensor codes(DataType::kInt8, {256, 64});
  for (int64_t i = 0; i < codes.num_elements(); ++i) {
    codes.mutable_data<int8_t>()[i] = static_cast<int8_t>(i % 255 - 127);
  }
  plan.weight_codes["w"] = *WeightCodes::FromValues(codes, 8);
  absl::StatusOr<std::string> bytes = ExportQdqModelBytes(g, plan);
  ASSERT_TRUE(bytes.ok()) << bytes.status();
  onnx::ModelProto model;
  ASSERT_TRUE(model.ParseFromString(*bytes));
  int found = 0;
  for (const onnx::TensorProto& t : model.graph().initializer()) {
    if (t.data_type() != onnx::TensorProto::INT8 || t.dims_size() != 2) {
      continue;  // the zero points
    }
    ++found;
    EXPECT_EQ(t.raw_data(),
              std::string(static_cast<const char*>(codes.raw_data()),
                          codes.byte_size()));
  }
  EXPECT_EQ(found, 1);
}

// int4 codes, held two per byte by the plan, are written as those bytes
// (INT4, low nibble first), with negative values intact.
TEST(ExportQdqModelFilesTest, WritesThePlansFourBitCodes) {
  const Graph g = MatMulGraph();
  QuantizationPlan plan;
  QuantParams p = qdq_test::S8PerChannel(*g.FindInitializer("w"), 1, 7);
  p.type = QuantType::kInt4;
  p.qmin = -8;
  p.qmax = 7;
  plan.weights["w"] = p;
  Tensor values(DataType::kInt8, {256, 64});
  for (int64_t i = 0; i < values.num_elements(); ++i) {
    values.mutable_data<int8_t>()[i] = static_cast<int8_t>(i % 16 - 8);
  }
  const WeightCodes codes = *WeightCodes::FromValues(values, 4);
  plan.weight_codes["w"] = codes;
  absl::StatusOr<std::string> bytes = ExportQdqModelBytes(g, plan);
  ASSERT_TRUE(bytes.ok()) << bytes.status();
  onnx::ModelProto model;
  ASSERT_TRUE(model.ParseFromString(*bytes));
  int found = 0;
  for (const onnx::TensorProto& t : model.graph().initializer()) {
    if (t.dims_size() != 2) continue;  // scales and zero points are [1, 64]
    if (t.dims(0) != 256) continue;
    ++found;
    EXPECT_EQ(t.data_type(), 22);  // INT4
    EXPECT_EQ(t.raw_data(),
              std::string(static_cast<const char*>(codes.storage().raw_data()),
                          codes.byte_size()));
  }
  EXPECT_EQ(found, 1);
}

}  // namespace
}  // namespace quantd
