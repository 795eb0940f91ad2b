// Older-opset models: ONNX's version converter lifts most to opset 17, and
// when it throws (its Softmax 12->13 adapter needs static shapes), the model
// keeps its opset and the kernels implement the older semantics.
#include <cmath>

#include "engine/onnx/model_loader.h"
#include "engine/runtime/executor.h"
#include "engine/runtime/ops/register_ops.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace quantd {
namespace {

// y = Softmax(x, axis=1) with x: f32[N, 3, 4], N symbolic, at `opset`.
// Without `with_shape`, Softmax reads Reshape(x, s) with `s` a runtime input
// of unknown length, so not even its rank is known, which is what makes
// ONNX 1.12's Softmax 12->13 adapter throw (as it does on dynamic exports).
std::string SoftmaxModel(int64_t opset, bool with_shape = true) {
  onnx::ModelProto m;
  m.set_ir_version(7);
  auto* op = m.add_opset_import();
  op->set_domain("");
  op->set_version(opset);
  auto* g = m.mutable_graph();
  g->set_name("softmax");
  for (auto* v : {g->add_input(), g->add_output()}) {
    auto* tt = v->mutable_type()->mutable_tensor_type();
    tt->set_elem_type(onnx::TensorProto::FLOAT);
    tt->mutable_shape()->add_dim()->set_dim_param("N");
    tt->mutable_shape()->add_dim()->set_dim_value(3);
    tt->mutable_shape()->add_dim()->set_dim_value(4);
  }
  g->mutable_input(0)->set_name("x");
  g->mutable_output(0)->set_name("y");
  std::string softmax_input = "x";
  if (!with_shape) {
    auto* s = g->add_input();
    s->set_name("s");
    auto* st = s->mutable_type()->mutable_tensor_type();
    st->set_elem_type(onnx::TensorProto::INT64);
    st->mutable_shape()->add_dim()->set_dim_param("R");
    auto* reshape = g->add_node();
    reshape->set_op_type("Reshape");
    reshape->add_input("x");
    reshape->add_input("s");
    reshape->add_output("r");
    softmax_input = "r";
  }
  auto* n = g->add_node();
  n->set_op_type("Softmax");
  n->add_input(softmax_input);
  n->add_output("y");
  auto* axis = n->add_attribute();
  axis->set_name("axis");
  axis->set_type(onnx::AttributeProto::INT);
  axis->set_i(1);
  std::string bytes;
  m.SerializeToString(&bytes);
  return bytes;
}

class OpsetFallbackTest : public ::testing::TestWithParam<bool> {};

// With a declared shape the converter lifts the model to opset 17 and
// rewrites Softmax to keep its meaning; without one it throws, and quantd
// rewrites Softmax as Flatten -> Softmax -> Reshape (RewriteOldSoftmax) and
// converts again. Same result both ways, and always opset 17: the QDQ export
// needs >= 13, and an opset-11 graph used to fail the job at its end.
TEST_P(OpsetFallbackTest, OldSoftmaxNormalizesOverTheFlattenedTrailingDims) {
  const bool with_shape = GetParam();
  absl::StatusOr<LoadedModel> m =
      LoadModelFromBytes(SoftmaxModel(11, with_shape));
  ASSERT_TRUE(m.ok()) << m.status();
  EXPECT_EQ(m->source_opset, 11);
  EXPECT_EQ(m->graph.opset, kTargetOpset);
  if (with_shape) {
    EXPECT_EQ(m->conversion_note, "");
  } else {
    EXPECT_THAT(m->conversion_note,
                ::testing::HasSubstr("rewrote 1 of them as Flatten"));
  }
  Tensor x(DataType::kFloat32, {2, 3, 4});
  for (int64_t i = 0; i < x.num_elements(); ++i) {
    x.mutable_data<float>()[i] = 0.1f * static_cast<float>(i % 7) - 0.2f;
  }
  absl::StatusOr<std::unique_ptr<Executor>> ex = Executor::Create(m->graph);
  ASSERT_TRUE(ex.ok()) << ex.status();
  TensorMap feeds = {{"x", x}};
  if (!with_shape) feeds["s"] = Tensor::FromVector<int64_t>({3}, {2, 3, 4});
  absl::StatusOr<std::vector<Tensor>> y = (*ex)->RunOutputs(feeds);
  ASSERT_TRUE(y.ok()) << y.status();
  // Opset 11: each sample's 12 values form one distribution.
  for (int n = 0; n < 2; ++n) {
    double denom = 0;
    for (int j = 0; j < 12; ++j) denom += std::exp(x.data<float>()[n * 12 + j]);
    for (int j = 0; j < 12; ++j) {
      EXPECT_NEAR((*y)[0].data<float>()[n * 12 + j],
                  std::exp(x.data<float>()[n * 12 + j]) / denom, 1e-6);
    }
  }
}

INSTANTIATE_TEST_SUITE_P(ConvertedOrNot, OpsetFallbackTest, ::testing::Bool());

TEST(OpsetConversionTest, KeepsTheOldOpsetWhenConversionIsOff) {
  LoadOptions options;
  options.convert_opset = false;
  absl::StatusOr<LoadedModel> m = LoadModelFromBytes(SoftmaxModel(11), options);
  ASSERT_TRUE(m.ok()) << m.status();
  EXPECT_EQ(m->graph.opset, 11);
}

// Every op the engine issue names must be registered.
TEST(OpCoverageTest, RegistersEveryRequiredOp) {
  const char* required[] = {"Conv",
                            "ConvTranspose",
                            "MatMul",
                            "Gemm",
                            "BatchNormalization",
                            "Relu",
                            "LeakyRelu",
                            "PRelu",
                            "Sigmoid",
                            "HardSigmoid",
                            "HardSwish",
                            "Tanh",
                            "Erf",
                            "Gelu",
                            "Clip",
                            "Add",
                            "Sub",
                            "Mul",
                            "Div",
                            "Pow",
                            "Sqrt",
                            "Exp",
                            "Log",
                            "Neg",
                            "Abs",
                            "Reciprocal",
                            "Max",
                            "Min",
                            "Where",
                            "Equal",
                            "Less",
                            "Greater",
                            "Not",
                            "And",
                            "Cast",
                            "Softmax",
                            "LogSoftmax",
                            "LayerNormalization",
                            "ReduceMean",
                            "ReduceSum",
                            "ReduceMax",
                            "MaxPool",
                            "AveragePool",
                            "GlobalAveragePool",
                            "Resize",
                            "Reshape",
                            "Flatten",
                            "Transpose",
                            "Squeeze",
                            "Unsqueeze",
                            "Concat",
                            "Split",
                            "Slice",
                            "Gather",
                            "Shape",
                            "Expand",
                            "Range",
                            "ConstantOfShape",
                            "Constant",
                            "Identity",
                            "Dropout",
                            "Pad",
                            "Tile",
                            "Trilu",
                            "QuantizeLinear",
                            "DequantizeLinear"};
  for (const char* op : required) {
    EXPECT_TRUE(DefaultOpRegistry().Contains(op)) << op;
  }
}

}  // namespace
}  // namespace quantd
