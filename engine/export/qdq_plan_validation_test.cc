// ValidateQuantizationPlan, through the export: every kind of bad plan is
// refused with InvalidArgument naming the tensor and what is wrong.
#include <cmath>
#include <functional>
#include <string>

#include "engine/export/qdq_export.h"
#include "engine/testing/qdq_test_util.h"
#include "engine/testing/test_graphs.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace quantd {
namespace {

using qdq_test::U8;
using ::testing::HasSubstr;

// y = x[3,16] MatMul w[16,5].
Graph MatMulGraph() {
  Graph g;
  g.name = "matmul";
  g.opset = 17;
  ValueInfo x;
  x.name = "x";
  x.dtype = DataType::kFloat32;
  x.has_shape = true;
  x.shape = {3, 16};
  x.dim_names = {"", ""};
  ValueInfo y = x;
  y.name = "y";
  y.shape = {3, 5};
  g.inputs = {x};
  g.outputs = {y};
  g.initializers["w"] = RandomUniform({16, 5}, 5);
  g.nodes = {MakeNode("matmul", "MatMul", {"x", "w"}, "y")};
  return g;
}

struct ErrorCase {
  std::string name;
  std::function<void(Graph&, QuantizationPlan&)> mutate;
  std::string message;
};

class QdqExportErrorTest : public ::testing::TestWithParam<ErrorCase> {};

TEST_P(QdqExportErrorTest, RefusesBadPlans) {
  Graph g = MatMulGraph();
  QuantizationPlan plan;
  plan.activations["x"] = U8(2.f / 255, 128);
  plan.weights["w"] = qdq_test::S8PerChannel(g.initializers["w"], 1, 127);
  GetParam().mutate(g, plan);
  absl::StatusOr<std::string> out = ExportQdqModelBytes(g, plan);
  ASSERT_FALSE(out.ok());
  EXPECT_EQ(out.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(out.status().message()),
              HasSubstr(GetParam().message));
}

INSTANTIATE_TEST_SUITE_P(
    Plans, QdqExportErrorTest,
    ::testing::Values(
        ErrorCase{"UnknownActivation",
                  [](Graph&, QuantizationPlan& p) {
                    p.activations["nope"] = U8(1.f, 0);
                  },
                  "activation 'nope' is neither"},
        ErrorCase{"UnknownWeight",
                  [](Graph&, QuantizationPlan& p) {
                    p.weights["nope"] = p.weights["w"];
                  },
                  "weight 'nope' is not an initializer"},
        ErrorCase{"ScaleCount",
                  [](Graph&, QuantizationPlan& p) {
                    p.weights["w"].scales.pop_back();
                  },
                  "weight 'w': per-channel parameters along axis 1 need 5"},
        ErrorCase{"NegativeScale",
                  [](Graph&, QuantizationPlan& p) {
                    p.weights["w"].scales[2] = -1.f;
                  },
                  "weight 'w': scale 2 is -1"},
        ErrorCase{"NanScale",
                  [](Graph&, QuantizationPlan& p) {
                    p.activations["x"].scales[0] = std::nanf("");
                  },
                  "activation 'x': scale 0 is nan"},
        ErrorCase{"ZeroPointOutOfRange",
                  [](Graph&, QuantizationPlan& p) {
                    p.weights["w"].zero_points.assign(5, 0);
                    p.weights["w"].zero_points[3] = 200;
                  },
                  "weight 'w': zero point 3 is 200"},
        ErrorCase{
            "QRangeOutsideType",
            [](Graph&, QuantizationPlan& p) { p.activations["x"].qmax = 256; },
            "activation 'x': [qmin, qmax] = [0, 256]"},
        // Groups of 5 over 16 values are ceil(16 / 5) = 4 blocks, the last
        // shorter (ONNX blocked quantization); parameters for 2 are wrong.
        ErrorCase{"GroupCountMismatch",
                  [](Graph& g, QuantizationPlan& p) {
                    QuantParams q =
                        qdq_test::S4PerGroup(g.initializers["w"], 0, 8);
                    q.group_size = 5;
                    p.weights["w"] = q;
                  },
                  "for group_size 5 along axis 0"},
        ErrorCase{"AxisOutOfRange",
                  [](Graph&, QuantizationPlan& p) { p.weights["w"].axis = 2; },
                  "weight 'w': axis 2 is out of range"},
        ErrorCase{
            "PerChannelActivation",
            [](Graph&, QuantizationPlan& p) { p.activations["x"].axis = 1; },
            "activations take per-tensor parameters"},
        ErrorCase{"WeightAsActivation",
                  [](Graph&, QuantizationPlan& p) {
                    p.activations["w"] = U8(1.f, 0);
                  },
                  "activation 'w' is an initializer"},
        ErrorCase{
            "UnknownFloatNode",
            [](Graph&, QuantizationPlan& p) { p.float_nodes.insert("ghost"); },
            "plan.float_nodes names 'ghost'"},
        ErrorCase{"StaticAndDynamic",
                  [](Graph&, QuantizationPlan& p) {
                    p.dynamic_activations.insert("x");
                  },
                  "activation 'x' is in both plan.activations"},
        ErrorCase{"UnknownDynamicActivation",
                  [](Graph&, QuantizationPlan& p) {
                    p.dynamic_activations.insert("nope");
                  },
                  "dynamic activation 'nope' is neither"},
        ErrorCase{"DynamicWeight",
                  [](Graph&, QuantizationPlan& p) {
                    p.dynamic_activations.insert("w");
                  },
                  "dynamic activation 'w' is an initializer"},
        ErrorCase{"UpdatedShape",
                  [](Graph&, QuantizationPlan& p) {
                    p.updated_initializers["w"] = RandomUniform({5, 16}, 1);
                  },
                  "plan.updated_initializers['w'] is f32[5,16]"},
        ErrorCase{"CodesOfTheWrongType",
                  [](Graph&, QuantizationPlan& p) {
                    p.weight_codes["w"] = *WeightCodes::FromValues(
                        Tensor::Zeros(DataType::kUInt8, {16, 5}), 8);
                  },
                  "needs int8 codes [16,5]"},
        ErrorCase{"CodesOfTheWrongWidth",
                  [](Graph&, QuantizationPlan& p) {
                    p.weight_codes["w"] = *WeightCodes::FromValues(
                        Tensor::Zeros(DataType::kInt8, {16, 5}), 4);
                  },
                  "plan.weight_codes['w'] is int4 [16,5]"},
        ErrorCase{"CodesOfTheWrongShape",
                  [](Graph&, QuantizationPlan& p) {
                    p.weight_codes["w"] = *WeightCodes::FromValues(
                        Tensor::Zeros(DataType::kInt8, {5, 16}), 8);
                  },
                  "plan.weight_codes['w'] is"},
        ErrorCase{"CodesOutOfRange",
                  [](Graph&, QuantizationPlan& p) {
                    Tensor codes = Tensor::Zeros(DataType::kInt8, {16, 5});
                    codes.mutable_data<int8_t>()[7] = -128;
                    p.weight_codes["w"] = *WeightCodes::FromValues(codes, 8);
                  },
                  "plan.weight_codes['w'] has values outside [-127, 127]"},
        ErrorCase{"CodesOfAnUnquantizedWeight",
                  [](Graph&, QuantizationPlan& p) {
                    p.weights.clear();
                    p.weight_codes["w"] = *WeightCodes::FromValues(
                        Tensor::Zeros(DataType::kInt8, {16, 5}), 8);
                  },
                  "needs a plan.weights entry"},
        ErrorCase{"CodesAndAnUpdate",
                  [](Graph&, QuantizationPlan& p) {
                    p.weight_codes["w"] = *WeightCodes::FromValues(
                        Tensor::Zeros(DataType::kInt8, {16, 5}), 8);
                    p.updated_initializers["w"] = RandomUniform({16, 5}, 2);
                  },
                  "is also in plan.updated_initializers"}),
    [](const ::testing::TestParamInfo<ErrorCase>& info) {
      return info.param.name;
    });

}  // namespace
}  // namespace quantd
