#include "engine/onnx/onnx_convert.h"

#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <string>
#include <vector>

#include "engine/testing/test_graphs.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "onnx/checker.h"

namespace quantd {
namespace {

using ::testing::HasSubstr;

void ExpectError(const absl::Status& s, absl::StatusCode code,
                 const std::string& substring) {
  EXPECT_EQ(s.code(), code) << s;
  EXPECT_THAT(std::string(s.message()), HasSubstr(substring));
}

// Both entry points must refuse the same tensor with the same status.
void ExpectRefused(const onnx::TensorProto& p, const ModelLimits& limits,
                   absl::StatusCode code, const std::string& substring) {
  SCOPED_TRACE(substring);
  ExpectError(ValidateTensorProto(p, limits, "initializer 'w'"), code,
              substring);
  ExpectError(TensorFromProto(p, limits, "initializer 'w'").status(), code,
              substring);
}

onnx::TensorProto Proto(int32_t type, std::vector<int64_t> dims) {
  onnx::TensorProto p;
  p.set_name("w");
  p.set_data_type(type);
  for (int64_t d : dims) p.add_dims(d);
  return p;
}

onnx::TensorProto RawFloats(std::vector<int64_t> dims,
                            const std::vector<float>& values) {
  onnx::TensorProto p = Proto(onnx::TensorProto::FLOAT, std::move(dims));
  p.set_raw_data(values.data(), values.size() * sizeof(float));
  return p;
}

bool SameBytes(const Tensor& a, const Tensor& b) {
  return a.byte_size() == b.byte_size() &&
         std::memcmp(a.raw_data(), b.raw_data(), a.byte_size()) == 0;
}

Tensor Float16(Shape shape, const std::vector<uint16_t>& bits) {
  Tensor t(DataType::kFloat16, std::move(shape));
  for (size_t i = 0; i < bits.size(); ++i)
    t.mutable_data<uint16_t>()[i] = bits[i];
  return t;
}

TEST(TensorConvertTest, RoundTripsEverySupportedDtype) {
  const float inf = std::numeric_limits<float>::infinity();
  struct Case {
    Tensor tensor;
    int32_t onnx_type;
  };
  const std::vector<Case> cases = {
      {Tensor::FromVector<float>({2, 3}, {1.5f, -2, 0, 1e-30f, inf, -inf}),
       onnx::TensorProto::FLOAT},
      {Float16({3}, {0x3c00, 0xc000, 0x7bff}), onnx::TensorProto::FLOAT16},
      {Tensor::FromVector<int8_t>({4}, {-128, -1, 0, 127}),
       onnx::TensorProto::INT8},
      {Tensor::FromVector<uint8_t>({2, 2}, {0, 1, 128, 255}),
       onnx::TensorProto::UINT8},
      {Tensor::FromVector<int32_t>({3}, {INT32_MIN, 0, INT32_MAX}),
       onnx::TensorProto::INT32},
      {Tensor::FromVector<int64_t>({1, 3}, {INT64_MIN, 7, INT64_MAX}),
       onnx::TensorProto::INT64},
      {Tensor::FromVector<bool>({3}, {true, false, true}),
       onnx::TensorProto::BOOL},
      {Tensor::Scalar<float>(3.25f), onnx::TensorProto::FLOAT},
      {Tensor(DataType::kInt64, {0, 4}), onnx::TensorProto::INT64},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.tensor.DebugString());
    const onnx::TensorProto p = TensorToProto(c.tensor, "t");
    EXPECT_EQ(p.name(), "t");
    EXPECT_EQ(p.data_type(), c.onnx_type);
    EXPECT_EQ(Shape(p.dims().begin(), p.dims().end()), c.tensor.shape());
    EXPECT_EQ(p.raw_data().size(), c.tensor.byte_size());
    absl::StatusOr<Tensor> back = TensorFromProto(p, ModelLimits(), "t");
    ASSERT_TRUE(back.ok()) << back.status();
    EXPECT_EQ(back->dtype(), c.tensor.dtype());
    EXPECT_EQ(back->shape(), c.tensor.shape());
    EXPECT_TRUE(SameBytes(*back, c.tensor));
  }
}

template <typename T>
std::vector<T> Read(const onnx::TensorProto& p, DataType want) {
  absl::StatusOr<Tensor> t = TensorFromProto(p, ModelLimits(), "t");
  EXPECT_TRUE(t.ok()) << t.status();
  if (!t.ok()) return {};
  EXPECT_EQ(t->dtype(), want);
  return t->ToVector<T>();
}

onnx::TensorProto Int32Data(int32_t type, const std::vector<int32_t>& v) {
  onnx::TensorProto p = Proto(type, {static_cast<int64_t>(v.size())});
  for (int32_t x : v) p.add_int32_data(x);
  return p;
}

// Infinities pass, in typed data as in raw data: attention masks use -inf.
TEST(TensorConvertTest, ReadsTypedDataFields) {
  const float inf = std::numeric_limits<float>::infinity();
  onnx::TensorProto f = Proto(onnx::TensorProto::FLOAT, {3});
  for (float v : {0.5f, -inf, inf}) f.add_float_data(v);
  EXPECT_TRUE(ValidateTensorProto(f, ModelLimits(), "mask").ok());
  EXPECT_EQ(Read<float>(f, DataType::kFloat32),
            (std::vector<float>{0.5f, -inf, inf}));
  onnx::TensorProto l = Proto(onnx::TensorProto::INT64, {2});
  l.add_int64_data(INT64_MAX);
  l.add_int64_data(-9);
  EXPECT_EQ(Read<int64_t>(l, DataType::kInt64),
            (std::vector<int64_t>{INT64_MAX, -9}));
  // int8, uint8, bool, int32 and float16 (as bits) live in int32_data.
  EXPECT_EQ(Read<int8_t>(Int32Data(onnx::TensorProto::INT8, {-128, 5, 127}),
                         DataType::kInt8),
            (std::vector<int8_t>{-128, 5, 127}));
  EXPECT_EQ(Read<uint8_t>(Int32Data(onnx::TensorProto::UINT8, {0, 255}),
                          DataType::kUInt8),
            (std::vector<uint8_t>{0, 255}));
  EXPECT_EQ(Read<uint8_t>(Int32Data(onnx::TensorProto::BOOL, {1, 0}),
                          DataType::kBool),
            (std::vector<uint8_t>{1, 0}));
  EXPECT_EQ(Read<int32_t>(Int32Data(onnx::TensorProto::INT32, {INT32_MIN, 42}),
                          DataType::kInt32),
            (std::vector<int32_t>{INT32_MIN, 42}));
  EXPECT_EQ(
      Read<uint16_t>(Int32Data(onnx::TensorProto::FLOAT16, {0x3c00, 0xfbff}),
                     DataType::kFloat16),
      (std::vector<uint16_t>{0x3c00, 0xfbff}));
}

TEST(TensorConvertTest, RefusesUnsupportedTypesAndImpossibleShapes) {
  onnx::TensorProto p = Proto(onnx::TensorProto::DOUBLE, {1});
  p.add_double_data(1.0);
  ExpectRefused(p, ModelLimits(), absl::StatusCode::kUnimplemented,
                "initializer 'w' has element type DOUBLE");
  // A code ONNX does not define at all.
  ExpectRefused(Proto(999, {1}), ModelLimits(),
                absl::StatusCode::kUnimplemented, "element type invalid");
  // Shapes no tensor can have.
  const int64_t big = int64_t{1} << 40;
  ExpectRefused(Proto(onnx::TensorProto::FLOAT, {big, big}), ModelLimits(),
                absl::StatusCode::kInvalidArgument, "overflows int64");
  ExpectRefused(Proto(onnx::TensorProto::INT8, {4, -2}), ModelLimits(),
                absl::StatusCode::kInvalidArgument, "negative dim");
}

TEST(TensorConvertTest, EnforcesModelLimits) {
  ModelLimits limits;
  limits.max_tensor_elements = 10;
  limits.max_rank = 3;
  ExpectRefused(RawFloats({11}, std::vector<float>(11, 1.f)), limits,
                absl::StatusCode::kResourceExhausted,
                "initializer 'w' of shape [11] has 11 elements, more than the "
                "limit of 10");
  // A huge declared shape is refused before anything looks at the data.
  ExpectRefused(Proto(onnx::TensorProto::FLOAT, {int64_t{1} << 40}),
                ModelLimits(), absl::StatusCode::kResourceExhausted,
                "more than the limit of 2147483648");
  ExpectRefused(RawFloats({1, 1, 1, 1}, {1.f}), limits,
                absl::StatusCode::kInvalidArgument,
                "has 4 dims; at most 3 are supported");
  // At the limits exactly: accepted.
  const onnx::TensorProto ok =
      RawFloats({1, 2, 5}, std::vector<float>(10, 1.f));
  EXPECT_TRUE(ValidateTensorProto(ok, limits, "w").ok());
  EXPECT_TRUE(TensorFromProto(ok, limits, "w").ok());
}

TEST(TensorConvertTest, RefusesStoredLengthsThatDoNotMatchTheShape) {
  onnx::TensorProto p = RawFloats({4}, {1, 2, 3, 4});
  p.mutable_raw_data()->resize(12);
  ExpectRefused(p, ModelLimits(), absl::StatusCode::kInvalidArgument,
                "initializer 'w' of shape [4] needs 16 bytes of raw data but "
                "has 12");
  p.mutable_raw_data()->resize(20);
  ExpectRefused(p, ModelLimits(), absl::StatusCode::kInvalidArgument,
                "needs 16 bytes of raw data but has 20");

  onnx::TensorProto f = Proto(onnx::TensorProto::FLOAT, {2, 2});
  for (float v : {1.f, 2.f, 3.f}) f.add_float_data(v);
  ExpectRefused(f, ModelLimits(), absl::StatusCode::kInvalidArgument,
                "declares 4 elements but stores 3");
  // A declared shape with no data at all.
  ExpectRefused(Proto(onnx::TensorProto::INT32, {3}), ModelLimits(),
                absl::StatusCode::kInvalidArgument,
                "declares 3 elements but stores 0");
}

TEST(TensorConvertTest, RefusesNaNInFloatWeights) {
  const float nan = std::numeric_limits<float>::quiet_NaN();
  ExpectRefused(RawFloats({2, 2}, {1.f, 2.f, nan, 4.f}), ModelLimits(),
                absl::StatusCode::kInvalidArgument,
                "initializer 'w' contains NaN (first at flat index 2)");
  onnx::TensorProto typed = Proto(onnx::TensorProto::FLOAT, {3});
  for (float v : {nan, 0.f, nan}) typed.add_float_data(v);
  ExpectRefused(typed, ModelLimits(), absl::StatusCode::kInvalidArgument,
                "contains NaN (first at flat index 0)");
}

// The header promises NaN refusal for float tensors; float16 is one.
TEST(TensorConvertTest, RefusesNaNInFloat16Weights) {
  const onnx::TensorProto p =
      TensorToProto(Float16({3}, {0x3c00, 0x7e00, 0x0000}), "w");
  ExpectRefused(p, ModelLimits(), absl::StatusCode::kInvalidArgument,
                "contains NaN (first at flat index 1)");
}

TEST(TensorConvertTest, ExternalDataIsValidatedButNotRead) {
  onnx::TensorProto p = Proto(onnx::TensorProto::FLOAT, {4});
  p.set_data_location(onnx::TensorProto::EXTERNAL);
  auto* entry = p.add_external_data();
  entry->set_key("location");
  entry->set_value("weights.bin");
  EXPECT_TRUE(ValidateTensorProto(p, ModelLimits(), "w").ok());
  ExpectError(TensorFromProto(p, ModelLimits(), "initializer 'w'").status(),
              absl::StatusCode::kInvalidArgument,
              "initializer 'w' keeps its data in an external file");
  // The shape is still bounded.
  p.set_dims(0, int64_t{1} << 40);
  ExpectError(ValidateTensorProto(p, ModelLimits(), "w"),
              absl::StatusCode::kResourceExhausted, "more than the limit");
}

TEST(ValueInfoConvertTest, RoundTrips) {
  ValueInfo info;
  info.name = "x";
  info.dtype = DataType::kUInt8;
  info.has_shape = true;
  info.shape = {-1, 3, -1};
  info.dim_names = {"batch", "", ""};
  const onnx::ValueInfoProto p = ValueInfoToProto(info);
  const auto& tt = p.type().tensor_type();
  EXPECT_EQ(tt.elem_type(), onnx::TensorProto::UINT8);
  ASSERT_EQ(tt.shape().dim_size(), 3);
  EXPECT_EQ(tt.shape().dim(0).dim_param(), "batch");
  EXPECT_EQ(tt.shape().dim(1).dim_value(), 3);
  EXPECT_FALSE(tt.shape().dim(2).has_dim_value());
  EXPECT_FALSE(tt.shape().dim(2).has_dim_param());

  const ValueInfo back = ValueInfoFromProto(p);
  EXPECT_EQ(back.name, "x");
  EXPECT_EQ(back.dtype, DataType::kUInt8);
  EXPECT_TRUE(back.has_shape);
  EXPECT_EQ(back.shape, (Shape{-1, 3, -1}));
  EXPECT_EQ(back.dim_names, (std::vector<std::string>{"batch", "", ""}));

  // No shape stays no shape; a non-tensor type has no element type.
  info.has_shape = false;
  EXPECT_FALSE(ValueInfoToProto(info).type().tensor_type().has_shape());
  EXPECT_FALSE(ValueInfoFromProto(ValueInfoToProto(info)).has_shape);
  onnx::ValueInfoProto seq;
  seq.set_name("s");
  seq.mutable_type()->mutable_sequence_type();
  EXPECT_EQ(ValueInfoFromProto(seq).dtype, DataType::kUndefined);
  EXPECT_FALSE(ValueInfoFromProto(seq).has_shape);
}

Attribute FloatAttr(float v) {
  Attribute a;
  a.type = Attribute::Type::kFloat;
  a.f = v;
  return a;
}

// y = Relu(Gemm(x, w, b; alpha=0.5, transB=1)) * c, with c from a Constant
// node (a tensor attribute), x: f32[N, 3].
onnx::ModelProto SmallModel() {
  Graph g;
  g.name = "small";
  g.opset = 13;
  ValueInfo x;
  x.name = "x";
  x.dtype = DataType::kFloat32;
  x.has_shape = true;
  x.shape = {-1, 3};
  x.dim_names = {"N", ""};
  g.inputs = {x};
  ValueInfo y = x;
  y.name = "y";
  y.shape = {-1, 2};
  g.outputs = {y};
  g.initializers["w"] =
      Tensor::FromVector<float>({2, 3}, {1, 2, 3, -1, -2, -3});
  g.initializers["b"] = Tensor::FromVector<float>({2}, {0.5f, -0.5f});
  Node gemm = MakeNode("fc", "Gemm", {"x", "w", "b"}, "h");
  gemm.attributes.Set("transB", Int(1));
  gemm.attributes.Set("alpha", FloatAttr(0.5f));
  Node constant = MakeNode("c", "Constant", {}, "cv");
  Attribute value;
  value.type = Attribute::Type::kTensor;
  value.t = Tensor::FromVector<float>({2}, {2.f, 3.f});
  constant.attributes.Set("value", value);
  g.nodes = {gemm, MakeNode("relu", "Relu", {"h"}, "r"), constant,
             MakeNode("mul", "Mul", {"r", "cv"}, "y")};
  return GraphToModelProto(g, 7, "onnx_convert_test");
}

TEST(GraphConvertTest, RoundTripsAModel) {
  const onnx::ModelProto m = SmallModel();
  EXPECT_EQ(m.ir_version(), 7);
  EXPECT_EQ(m.producer_name(), "onnx_convert_test");
  ASSERT_EQ(m.opset_import_size(), 1);
  EXPECT_EQ(m.opset_import(0).domain(), "");
  EXPECT_EQ(m.opset_import(0).version(), 13);
  EXPECT_EQ(m.graph().name(), "small");
  // Initializers are written sorted by name.
  ASSERT_EQ(m.graph().initializer_size(), 2);
  EXPECT_EQ(m.graph().initializer(0).name(), "b");
  EXPECT_EQ(m.graph().initializer(1).name(), "w");
  EXPECT_NO_THROW(onnx::checker::check_model(m));
  absl::StatusOr<Graph> g = GraphFromModelProto(m, ModelLimits());
  ASSERT_TRUE(g.ok()) << g.status();
  EXPECT_EQ(g->name, "small");
  EXPECT_EQ(g->opset, 13);
  ASSERT_EQ(g->inputs.size(), 1u);
  EXPECT_EQ(g->inputs[0].shape, (Shape{-1, 3}));
  EXPECT_EQ(g->inputs[0].dim_names[0], "N");
  ASSERT_EQ(g->outputs.size(), 1u);
  EXPECT_EQ(g->outputs[0].name, "y");
  ASSERT_EQ(g->nodes.size(), 4u);
  const Node& gemm = g->nodes[0];
  EXPECT_EQ(gemm.name, "fc");
  EXPECT_EQ(gemm.inputs, (std::vector<std::string>{"x", "w", "b"}));
  EXPECT_EQ(gemm.attributes.GetInt("transB", -1), 1);
  EXPECT_FLOAT_EQ(gemm.attributes.GetFloat("alpha", -1), 0.5f);
  const Tensor* c = g->nodes[2].attributes.GetTensor("value");
  ASSERT_NE(c, nullptr);
  EXPECT_EQ(c->ToVector<float>(), (std::vector<float>{2.f, 3.f}));
  const Tensor* w = g->FindInitializer("w");
  ASSERT_NE(w, nullptr);
  EXPECT_EQ(w->shape(), (Shape{2, 3}));
  EXPECT_EQ(w->ToVector<float>(), (std::vector<float>{1, 2, 3, -1, -2, -3}));

  // Once read (defaults filled), writing and reading again is a fixed point.
  const onnx::ModelProto again = GraphToModelProto(*g, 7, "onnx_convert_test");
  absl::StatusOr<Graph> g2 = GraphFromModelProto(again, ModelLimits());
  ASSERT_TRUE(g2.ok()) << g2.status();
  EXPECT_EQ(GraphToModelProto(*g2, 7, "onnx_convert_test").SerializeAsString(),
            again.SerializeAsString());
}

// The rvalue overload converts the same graph and frees the model's
// initializer data as it goes (loading holds the weights once).
TEST(GraphConvertTest, ConsumingConversionFreesInitializerData) {
  const onnx::ModelProto m = SmallModel();
  ASSERT_GT(m.graph().initializer_size(), 0);
  absl::StatusOr<Graph> kept = GraphFromModelProto(m, ModelLimits());
  ASSERT_TRUE(kept.ok()) << kept.status();
  onnx::ModelProto consumed = m;
  absl::StatusOr<Graph> g =
      GraphFromModelProto(std::move(consumed), ModelLimits());
  ASSERT_TRUE(g.ok()) << g.status();
  EXPECT_EQ(GraphToModelProto(*g, 7, "t").SerializeAsString(),
            GraphToModelProto(*kept, 7, "t").SerializeAsString());
  for (const onnx::TensorProto& t : consumed.graph().initializer()) {  // NOLINT
    EXPECT_EQ(t.ByteSizeLong(), 0u) << "initializer data kept";
  }
}

TEST(GraphConvertTest, FillsAttributeDefaultsFromTheOpSchema) {
  absl::StatusOr<Graph> g = GraphFromModelProto(SmallModel(), ModelLimits());
  ASSERT_TRUE(g.ok()) << g.status();
  const AttributeMap& gemm = g->nodes[0].attributes;
  // Given: kept. Missing: the schema's defaults, with their types.
  EXPECT_FLOAT_EQ(gemm.GetFloat("alpha", -1), 0.5f);
  ASSERT_TRUE(gemm.Has("beta"));
  EXPECT_EQ(gemm.Find("beta")->type, Attribute::Type::kFloat);
  EXPECT_FLOAT_EQ(gemm.GetFloat("beta", -1), 1.f);
  ASSERT_TRUE(gemm.Has("transA"));
  EXPECT_EQ(gemm.Find("transA")->type, Attribute::Type::kInt);
  EXPECT_EQ(gemm.GetInt("transA", -1), 0);
  // Attributes without a default stay absent.
  EXPECT_FALSE(g->nodes[2].attributes.Has("value_float"));

  // Ops outside the default domain have no schema to fill from.
  onnx::ModelProto m = SmallModel();
  m.mutable_graph()->mutable_node(0)->set_domain("com.example");
  g = GraphFromModelProto(m, ModelLimits());
  ASSERT_TRUE(g.ok()) << g.status();
  EXPECT_EQ(g->nodes[0].domain, "com.example");
  EXPECT_FALSE(g->nodes[0].attributes.Has("beta"));
}

TEST(GraphConvertTest, NormalizesDomainsNamesAndLegacyInputs) {
  onnx::ModelProto m = SmallModel();
  m.mutable_opset_import(0)->set_domain("ai.onnx");
  m.mutable_graph()->mutable_node(1)->set_domain("ai.onnx");
  m.mutable_graph()->mutable_node(1)->clear_name();
  // Before IR version 4 initializers were also listed as graph inputs.
  ValueInfo legacy;
  legacy.name = "w";
  legacy.dtype = DataType::kFloat32;
  *m.mutable_graph()->add_input() = ValueInfoToProto(legacy);
  absl::StatusOr<Graph> g = GraphFromModelProto(m, ModelLimits());
  ASSERT_TRUE(g.ok()) << g.status();
  EXPECT_EQ(g->opset, 13);
  EXPECT_EQ(g->nodes[1].domain, "");
  EXPECT_EQ(g->nodes[1].name, "Relu_1");
  ASSERT_EQ(g->inputs.size(), 1u);
  EXPECT_EQ(g->inputs[0].name, "x");
}

TEST(GraphConvertTest, RefusesModelsBeyondTheirBounds) {
  onnx::ModelProto m = SmallModel();
  m.mutable_opset_import(0)->set_domain("com.example");
  ExpectError(GraphFromModelProto(m, ModelLimits()).status(),
              absl::StatusCode::kInvalidArgument,
              "does not import the default ONNX opset");

  ModelLimits few_nodes;
  few_nodes.max_nodes = 3;
  ExpectError(GraphFromModelProto(SmallModel(), few_nodes).status(),
              absl::StatusCode::kInvalidArgument,
              "the model has 4 nodes; the limit is 3");

  // 24 bytes of w and 8 of b fit in 32; the Constant's 8 more do not.
  ModelLimits small;
  small.max_total_constant_bytes = 31;
  ExpectError(GraphFromModelProto(SmallModel(), small).status(),
              absl::StatusCode::kResourceExhausted,
              "initializers exceed the limit of 31 bytes");
  small.max_total_constant_bytes = 32;
  ExpectError(GraphFromModelProto(SmallModel(), small).status(),
              absl::StatusCode::kResourceExhausted,
              "constants exceed the limit of 32 bytes");
  small.max_total_constant_bytes = 40;
  EXPECT_TRUE(GraphFromModelProto(SmallModel(), small).ok());
}

TEST(GraphConvertTest, NamesTheTensorOrValueThatIsRefused) {
  onnx::ModelProto m = SmallModel();
  m.mutable_graph()->mutable_initializer(1)->mutable_raw_data()->resize(7);
  ExpectError(GraphFromModelProto(m, ModelLimits()).status(),
              absl::StatusCode::kInvalidArgument,
              "initializer 'w' of shape [2,3] needs 24 bytes");

  m = SmallModel();
  onnx::TensorProto* t =
      m.mutable_graph()->mutable_node(2)->mutable_attribute(0)->mutable_t();
  t->mutable_raw_data()->replace(
      0, 4, std::string("\x00\x00\xc0\x7f", 4));  // quiet NaN
  ExpectError(GraphFromModelProto(m, ModelLimits()).status(),
              absl::StatusCode::kInvalidArgument,
              "attribute 'value' of node 'c' contains NaN");

  m = SmallModel();
  m.mutable_graph()
      ->mutable_input(0)
      ->mutable_type()
      ->mutable_tensor_type()
      ->set_elem_type(onnx::TensorProto::DOUBLE);
  ExpectError(GraphFromModelProto(m, ModelLimits()).status(),
              absl::StatusCode::kUnimplemented,
              "graph input 'x' has an element type quantd does not support");

  m = SmallModel();
  onnx::AttributeProto* body =
      m.mutable_graph()->mutable_node(1)->add_attribute();
  body->set_name("body");
  body->set_type(onnx::AttributeProto::GRAPH);
  ExpectError(GraphFromModelProto(m, ModelLimits()).status(),
              absl::StatusCode::kUnimplemented,
              "attribute 'body' of node 'relu' has an attribute type (GRAPH)");
}

// Constant operands as exporters write them: an initializer, a Constant
// node's `value`, or its `value_ints`; anything else is NOT_FOUND.
TEST(OnnxConvertTest, ConstantTensorFindsEveryConstantForm) {
  onnx::GraphProto g;
  onnx::TensorProto* init = g.add_initializer();
  init->set_name("scales");
  init->set_data_type(onnx::TensorProto::FLOAT);
  init->add_dims(2);
  init->add_float_data(1.f);
  init->add_float_data(2.f);
  onnx::NodeProto* c = g.add_node();
  c->set_op_type("Constant");
  c->add_output("axes");
  onnx::AttributeProto* ints = c->add_attribute();
  ints->set_name("value_ints");
  ints->set_type(onnx::AttributeProto::INTS);
  ints->add_ints(-1);
  ints->add_ints(2);
  absl::StatusOr<Tensor> scales = ConstantTensor(g, "scales");
  ASSERT_TRUE(scales.ok()) << scales.status();
  EXPECT_EQ(scales->ToVector<float>(), (std::vector<float>{1.f, 2.f}));
  absl::StatusOr<Tensor> axes = ConstantTensor(g, "axes");
  ASSERT_TRUE(axes.ok()) << axes.status();
  EXPECT_EQ(axes->ToVector<int64_t>(), (std::vector<int64_t>{-1, 2}));
  EXPECT_EQ(ConstantTensor(g, "x").status().code(),
            absl::StatusCode::kNotFound);
}

}  // namespace
}  // namespace quantd
