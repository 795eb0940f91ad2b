#include "engine/onnx/opset_adapters.h"

#include <cmath>

#include "engine/onnx/model_loader.h"
#include "engine/runtime/executor.h"
#include "engine/testing/newer_opset_model.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace quantd {
namespace {

using ::testing::HasSubstr;
using namespace newer_opset;  // NOLINT: test helpers

// x: f32[2, 4] -> one node `op` (built by `add`) -> y, at `opset`.
onnx::ModelProto OneNode(int64_t opset,
                         const std::function<void(onnx::GraphProto&)>& add) {
  onnx::ModelProto m;
  m.set_ir_version(8);
  onnx::OperatorSetIdProto* o = m.add_opset_import();
  o->set_domain("");
  o->set_version(opset);
  onnx::GraphProto& g = *m.mutable_graph();
  g.set_name("one_node");
  AddFloatInfo(g.add_input(), "x", {2, 4});
  onnx::ValueInfoProto* y = g.add_output();
  y->set_name("y");
  auto* tt = y->mutable_type()->mutable_tensor_type();
  tt->set_elem_type(onnx::TensorProto::FLOAT);
  tt->mutable_shape();  // rank unknown
  add(g);
  return m;
}

Tensor Input() {
  return Tensor::FromVector<float>(
      {2, 4}, {-2.f, -0.5f, 0.f, 0.7f, 1.f, 2.f, 3.f, -1.f});
}

absl::StatusOr<Tensor> RunModel(const LoadedModel& m, const Tensor& x) {
  absl::StatusOr<std::unique_ptr<Executor>> ex = Executor::Create(m.graph);
  if (!ex.ok()) return ex.status();
  absl::StatusOr<std::vector<Tensor>> y = (*ex)->RunOutputs({{"x", x}});
  if (!y.ok()) return y.status();
  return (*y)[0];
}

TEST(OpsetAdaptersTest, LowersAnOpset20BlockAndSaysWhat) {
  absl::StatusOr<LoadedModel> m = LoadModelFromBytes(Serialize(MlpBlock(20)));
  ASSERT_TRUE(m.ok()) << m.status();
  EXPECT_EQ(m->source_opset, 20);
  EXPECT_EQ(m->graph.opset, 17);
  EXPECT_THAT(m->conversion_note, HasSubstr("lowered opset 20 to 17"));
  EXPECT_THAT(m->conversion_note,
              HasSubstr("ReduceMean x2 (axes input -> attribute)"));
  EXPECT_THAT(m->conversion_note, HasSubstr("Gelu x1 (decomposed (none))"));
  EXPECT_THAT(m->conversion_note, HasSubstr("Split x1"));
  Tensor x(DataType::kFloat32, {3, 16});
  for (int64_t i = 0; i < x.num_elements(); ++i) {
    x.mutable_data<float>()[i] = std::sin(0.37f * static_cast<float>(i));
  }
  absl::StatusOr<Tensor> y = RunModel(*m, x);
  ASSERT_TRUE(y.ok()) << y.status();
  ASSERT_EQ(y->shape(), (Shape{3, 10}));
  for (int r = 0; r < 3; ++r) {  // rows of a softmax
    double sum = 0;
    for (int c = 0; c < 10; ++c) sum += y->data<float>()[r * 10 + c];
    EXPECT_NEAR(sum, 1.0, 1e-5);
  }
}

TEST(OpsetAdaptersTest, GeluDecomposesToTheErfAndTanhForms) {
  for (const std::string approximate : {"none", "tanh"}) {
    onnx::ModelProto model = OneNode(20, [&](onnx::GraphProto& g) {
      AddStringAttr(AddNode(g, "Gelu", {"x"}, {"y"}), "approximate",
                    approximate);
    });
    absl::StatusOr<LoadedModel> m = LoadModelFromBytes(Serialize(model));
    ASSERT_TRUE(m.ok()) << m.status();
    absl::StatusOr<Tensor> y = RunModel(*m, Input());
    ASSERT_TRUE(y.ok()) << y.status();
    for (int i = 0; i < 8; ++i) {
      const double x = Input().data<float>()[i];
      const double want = approximate == "none"
                              ? 0.5 * x * (1 + std::erf(x / std::sqrt(2.0)))
                              : 0.5 * x *
                                    (1 + std::tanh(std::sqrt(2 / M_PI) *
                                                   (x + 0.044715 * x * x * x)));
      EXPECT_NEAR(y->data<float>()[i], want, 1e-5) << approximate << " " << x;
    }
  }
}

TEST(OpsetAdaptersTest, ReduceAxesFromAConstantNodeAndEmptyAxes) {
  onnx::ModelProto model = OneNode(18, [](onnx::GraphProto& g) {
    onnx::NodeProto* c = AddNode(g, "Constant", {}, {"axes"});
    onnx::AttributeProto* v = c->add_attribute();
    v->set_name("value");
    v->set_type(onnx::AttributeProto::TENSOR);
    v->mutable_t()->set_data_type(onnx::TensorProto::INT64);
    v->mutable_t()->add_dims(1);
    v->mutable_t()->add_int64_data(1);
    AddIntAttr(AddNode(g, "ReduceMax", {"x", "axes"}, {"max"}), "keepdims", 0);
    AddInts(g, "none", {});
    onnx::NodeProto* noop = AddNode(g, "ReduceMax", {"max", "none"}, {"y"});
    AddIntAttr(noop, "noop_with_empty_axes", 1);
  });
  absl::StatusOr<LoadedModel> m = LoadModelFromBytes(Serialize(model));
  ASSERT_TRUE(m.ok()) << m.status();
  absl::StatusOr<Tensor> y = RunModel(*m, Input());
  ASSERT_TRUE(y.ok()) << y.status();
  EXPECT_EQ(y->ToVector<float>(), (std::vector<float>{0.7f, 3.f}));
}

TEST(OpsetAdaptersTest, RmsNormalizationDecomposes) {
  onnx::ModelProto model = OneNode(23, [](onnx::GraphProto& g) {
    onnx::TensorProto* s = g.add_initializer();
    s->set_name("scale");
    s->set_data_type(onnx::TensorProto::FLOAT);
    s->add_dims(4);
    for (float v : {1.f, 2.f, 0.5f, -1.f}) s->add_float_data(v);
    AddNode(g, "RMSNormalization", {"x", "scale"}, {"y"});
  });
  model.set_ir_version(11);
  absl::StatusOr<LoadedModel> m = LoadModelFromBytes(Serialize(model));
  ASSERT_TRUE(m.ok()) << m.status();
  EXPECT_THAT(m->conversion_note, HasSubstr("RMSNormalization x1"));
  absl::StatusOr<Tensor> y = RunModel(*m, Input());
  ASSERT_TRUE(y.ok()) << y.status();
  const float scale[4] = {1.f, 2.f, 0.5f, -1.f};
  for (int r = 0; r < 2; ++r) {
    double ms = 0;
    for (int c = 0; c < 4; ++c) {
      ms += std::pow(Input().data<float>()[r * 4 + c], 2) / 4;
    }
    for (int c = 0; c < 4; ++c) {
      EXPECT_NEAR(
          y->data<float>()[r * 4 + c],
          Input().data<float>()[r * 4 + c] / std::sqrt(ms + 1e-5) * scale[c],
          1e-5);
    }
  }
}

TEST(OpsetAdaptersTest, RefusesWhatOpset17CannotExpress) {
  struct Case {
    std::function<void(onnx::GraphProto&)> add;
    std::string message;
  };
  const std::vector<Case> cases = {
      {[](onnx::GraphProto& g) {
         onnx::ValueInfoProto* axes = g.add_input();
         axes->set_name("axes");
         auto* tt = axes->mutable_type()->mutable_tensor_type();
         tt->set_elem_type(onnx::TensorProto::INT64);
         tt->mutable_shape()->add_dim()->set_dim_value(1);
         AddNode(g, "ReduceMean", {"x", "axes"}, {"y"});
       },
       "ReduceMean node 'y_node': its axes are computed at run time"},
      {[](onnx::GraphProto& g) {
         AddInts(g, "sizes", {2, 8});
         onnx::NodeProto* n =
             AddNode(g, "Resize", {"x", "", "", "sizes"}, {"y"});
         AddIntAttr(n, "antialias", 1);
         AddStringAttr(n, "mode", "linear");
       },
       "antialias=1"},
      {[](onnx::GraphProto& g) {
         AddInts(g, "pads", {1, 1});
         AddInts(g, "axes", {1});
         AddNode(g, "Pad", {"x", "pads", "", "axes"}, {"y"});
       },
       "'axes' input"},
  };
  for (const Case& c : cases) {
    absl::StatusOr<LoadedModel> m =
        LoadModelFromBytes(Serialize(OneNode(19, c.add)));
    ASSERT_FALSE(m.ok());
    EXPECT_EQ(m.status().code(), absl::StatusCode::kUnimplemented);
    EXPECT_THAT(m.status().message(), HasSubstr(c.message));
    EXPECT_THAT(m.status().message(), HasSubstr("opset_version=17"));
  }
}

TEST(OpsetAdaptersTest, ListsNewOpsItCannotRunAndRefusesLaterOpsets) {
  onnx::ModelProto model = OneNode(23, [](onnx::GraphProto& g) {
    AddNode(g, "Attention", {"x", "x", "x"}, {"y"});
  });
  absl::StatusOr<LoadedModel> m = LoadModelFromBytes(Serialize(model));
  ASSERT_FALSE(m.ok());
  EXPECT_THAT(m.status().message(),
              HasSubstr("quantd does not support: Attention (x1)"));

  model = OneNode(
      24, [](onnx::GraphProto& g) { AddNode(g, "Relu", {"x"}, {"y"}); });
  m = LoadModelFromBytes(Serialize(model));
  ASSERT_FALSE(m.ok());
  EXPECT_THAT(m.status().message(), HasSubstr("reads opsets up to 23"));
}

}  // namespace
}  // namespace quantd
