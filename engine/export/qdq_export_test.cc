// QDQ export: the exported model, loaded back by quantd and run, computes
// what an independent fake-quant simulation of the plan computes; names,
// opsets and 4-bit packing are what ONNX expects; bad plans are refused
// with errors naming the tensor.
#include "engine/export/qdq_export.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <map>
#include <random>

#include "engine/onnx/model_loader.h"
#include "engine/testing/qdq_test_util.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "onnx/checker.h"

namespace quantd {
namespace {

using qdq_test::FakeQuantize;
using qdq_test::MaxAbsDiff;
using qdq_test::RunFakeQuant;
using qdq_test::U8;
using ::testing::HasSubstr;

// Same float ops on the same values: the only differences are float
// summation order between the fake-quant graph and the QDQ graph (both run
// on quantd's kernels), far below one quantization step.
constexpr float kSameMathTolerance = 1e-5f;

Tensor Random(Shape shape, uint32_t seed, float lo = -1.f, float hi = 1.f) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> dist(lo, hi);
  Tensor t(DataType::kFloat32, std::move(shape));
  for (float& v : t.mutable_span<float>()) v = dist(rng);
  return t;
}

ValueInfo Info(const std::string& name, Shape shape) {
  ValueInfo v;
  v.name = name;
  v.dtype = DataType::kFloat32;
  v.has_shape = true;
  v.shape = std::move(shape);
  v.dim_names.assign(v.shape.size(), "");
  return v;
}

Attribute Ints(std::vector<int64_t> v) {
  Attribute a;
  a.type = Attribute::Type::kInts;
  a.ints = std::move(v);
  return a;
}

Attribute Int(int64_t v) {
  Attribute a;
  a.type = Attribute::Type::kInt;
  a.i = v;
  return a;
}

Node MakeNode(const std::string& name, const std::string& op,
              std::vector<std::string> in, std::vector<std::string> out) {
  Node n;
  n.name = name;
  n.op_type = op;
  n.inputs = std::move(in);
  n.outputs = std::move(out);
  return n;
}

// x[1,2,6,6] -> Conv(w[3,2,3,3], b[3], pad 1) -> Relu -> y
Graph ConvReluGraph() {
  Graph g;
  g.name = "conv_relu";
  g.opset = 17;
  g.inputs = {Info("x", {1, 2, 6, 6})};
  g.outputs = {Info("y", {1, 3, 6, 6})};
  g.initializers["w"] = Random({3, 2, 3, 3}, 1);
  g.initializers["b"] = Random({3}, 2);
  Node conv = MakeNode("conv", "Conv", {"x", "w", "b"}, {"c"});
  conv.attributes.Set("pads", Ints({1, 1, 1, 1}));
  conv.attributes.Set("kernel_shape", Ints({3, 3}));
  g.nodes = {conv, MakeNode("relu", "Relu", {"c"}, {"y"})};
  return g;
}

// x[2,8] -> Gemm(w[4,8] transB, b[4]) -> y
Graph GemmGraph() {
  Graph g;
  g.name = "gemm";
  g.opset = 17;
  g.inputs = {Info("x", {2, 8})};
  g.outputs = {Info("y", {2, 4})};
  g.initializers["w"] = Random({4, 8}, 3);
  g.initializers["b"] = Random({4}, 4);
  Node gemm = MakeNode("gemm", "Gemm", {"x", "w", "b"}, {"y"});
  gemm.attributes.Set("transB", Int(1));
  g.nodes = {gemm};
  return g;
}

// x[3,16] -> MatMul(w[16,5]) -> y
Graph MatMulGraph() {
  Graph g;
  g.name = "matmul";
  g.opset = 17;
  g.inputs = {Info("x", {3, 16})};
  g.outputs = {Info("y", {3, 5})};
  g.initializers["w"] = Random({16, 5}, 5);
  g.nodes = {MakeNode("matmul", "MatMul", {"x", "w"}, {"y"})};
  return g;
}

// Exports, checks with ONNX's checker, loads with quantd's loader and runs.
absl::StatusOr<std::vector<Tensor>> ExportAndRun(const Graph& graph,
                                                 const QuantizationPlan& plan,
                                                 const TensorMap& feeds,
                                                 LoadedModel* loaded_out) {
  absl::StatusOr<onnx::ModelProto> model = ExportQdqModel(graph, plan, {});
  if (!model.ok()) return model.status();
  try {
    onnx::checker::check_model(*model);
  } catch (const std::exception& e) {
    return absl::InternalError(absl::StrCat("ONNX checker: ", e.what()));
  }
  absl::StatusOr<std::string> bytes = ExportQdqModelBytes(graph, plan, {});
  if (!bytes.ok()) return bytes.status();
  absl::StatusOr<LoadedModel> loaded = LoadModelFromBytes(*bytes);
  if (!loaded.ok()) return loaded.status();
  absl::StatusOr<std::unique_ptr<Executor>> ex =
      Executor::Create(loaded->graph);
  if (!ex.ok()) return ex.status();
  absl::StatusOr<std::vector<Tensor>> out = (*ex)->RunOutputs(feeds);
  if (loaded_out != nullptr) *loaded_out = std::move(*loaded);
  return out;
}

std::vector<std::string> Names(const std::vector<ValueInfo>& v) {
  std::vector<std::string> out;
  for (const ValueInfo& i : v) out.push_back(i.name);
  return out;
}

int CountOps(const Graph& g, const std::string& op) {
  int n = 0;
  for (const Node& node : g.nodes) n += node.op_type == op;
  return n;
}

TEST(QdqExportTest, ConvReluPerChannelMatchesFakeQuant) {
  Graph g = ConvReluGraph();
  QuantizationPlan plan;
  plan.activations["x"] = U8(2.f / 255, 128);
  plan.activations["y"] = U8(3.f / 255, 0);  // a graph output
  plan.weights["w"] = qdq_test::S8PerChannel(g.initializers["w"], 0, 127);
  const TensorMap feeds = {{"x", Random({1, 2, 6, 6}, 10)}};

  LoadedModel loaded;
  absl::StatusOr<std::vector<Tensor>> qdq =
      ExportAndRun(g, plan, feeds, &loaded);
  ASSERT_TRUE(qdq.ok()) << qdq.status();
  absl::StatusOr<std::vector<Tensor>> ref = RunFakeQuant(g, plan, feeds);
  ASSERT_TRUE(ref.ok()) << ref.status();
  EXPECT_LE(MaxAbsDiff((*qdq)[0], (*ref)[0]), kSameMathTolerance);

  EXPECT_EQ(Names(loaded.graph.inputs), std::vector<std::string>{"x"});
  EXPECT_EQ(Names(loaded.graph.outputs), std::vector<std::string>{"y"});
  EXPECT_EQ(CountOps(loaded.graph, "QuantizeLinear"), 2);
  EXPECT_EQ(CountOps(loaded.graph, "DequantizeLinear"), 3);
  // The float weight is gone; the bias stays float.
  EXPECT_EQ(loaded.graph.FindInitializer("w"), nullptr);
  ASSERT_NE(loaded.graph.FindInitializer("b"), nullptr);
  EXPECT_EQ(loaded.graph.FindInitializer("b")->dtype(), DataType::kFloat32);
  const Tensor* wq = loaded.graph.FindInitializer("w_quantized");
  ASSERT_NE(wq, nullptr);
  EXPECT_EQ(wq->dtype(), DataType::kInt8);
  // The producer of the graph output "y" is now its DequantizeLinear.
  for (const Node& n : loaded.graph.nodes) {
    if (n.outputs[0] == "y") {
      EXPECT_EQ(n.op_type, "DequantizeLinear");
    }
    if (n.op_type == "DequantizeLinear" && n.inputs[0] == "w_quantized") {
      EXPECT_EQ(n.attributes.GetInt("axis", -5), 0);
    }
  }
  // The QDQ model differs from float by about a quantization step.
  absl::StatusOr<std::unique_ptr<Executor>> fl = Executor::Create(g);
  ASSERT_TRUE(fl.ok());
  absl::StatusOr<std::vector<Tensor>> f = (*fl)->RunOutputs(feeds);
  ASSERT_TRUE(f.ok());
  EXPECT_GT(MaxAbsDiff((*qdq)[0], (*f)[0]), 0.f);
  EXPECT_LT(MaxAbsDiff((*qdq)[0], (*f)[0]), 0.2f);
}

// DynamicQuantizeLinear's parameters by the ONNX formulas in f32 (scale 1
// for an all-zero value, as ONNX Runtime), written out here independently
// of kernels/quantize.h.
QuantParams DynamicParams(const Tensor& x) {
  float lo = 0.f, hi = 0.f;
  const float* v = x.data<float>();
  for (int64_t i = 0; i < x.num_elements(); ++i) {
    lo = std::min(lo, v[i]);
    hi = std::max(hi, v[i]);
  }
  const float scale = hi > lo ? (hi - lo) / 255.f : 1.f;
  const float zp = std::nearbyint(std::clamp(0.f - lo / scale, 0.f, 255.f));
  return U8(scale, static_cast<int32_t>(zp));
}

// The float graph with weights fake-quantized and activations fake-quantized
// as they are produced: static ones with their plan parameters, dynamic ones
// with parameters from the value itself.
absl::StatusOr<std::vector<Tensor>> RunDynamicFakeQuant(
    const Graph& float_graph, const QuantizationPlan& plan,
    const TensorMap& feeds) {
  Graph g = float_graph;
  for (const auto& [name, p] : plan.weights) {
    g.initializers[name] = FakeQuantize(g.initializers.at(name), p);
  }
  absl::StatusOr<std::unique_ptr<Executor>> ex = Executor::Create(g);
  if (!ex.ok()) return ex.status();
  RunOptions opts;
  opts.tensor_hook = [&plan](const Node*, const std::string& name,
                             Tensor& value) {
    auto it = plan.activations.find(name);
    if (it != plan.activations.end()) value = FakeQuantize(value, it->second);
    if (plan.dynamic_activations.contains(name)) {
      value = FakeQuantize(value, DynamicParams(value));
    }
    return absl::OkStatus();
  };
  absl::StatusOr<RunResult> r = (*ex)->Run(feeds, opts);
  if (!r.ok()) return r.status();
  return std::move(r->outputs);
}

TEST(QdqExportTest, DynamicActivationsMatchFakeQuant) {
  Graph g = ConvReluGraph();
  QuantizationPlan plan;
  plan.dynamic_activations = {"x", "y"};  // a graph input and output
  plan.weights["w"] = qdq_test::S8PerChannel(g.initializers["w"], 0, 127);
  const TensorMap feeds = {{"x", Random({1, 2, 6, 6}, 13)}};

  LoadedModel loaded;
  absl::StatusOr<std::vector<Tensor>> qdq =
      ExportAndRun(g, plan, feeds, &loaded);
  ASSERT_TRUE(qdq.ok()) << qdq.status();
  absl::StatusOr<std::vector<Tensor>> ref = RunDynamicFakeQuant(g, plan, feeds);
  ASSERT_TRUE(ref.ok()) << ref.status();
  const float d_ref = MaxAbsDiff((*qdq)[0], (*ref)[0]);
  EXPECT_LE(d_ref, kSameMathTolerance);

  EXPECT_EQ(Names(loaded.graph.inputs), std::vector<std::string>{"x"});
  EXPECT_EQ(Names(loaded.graph.outputs), std::vector<std::string>{"y"});
  EXPECT_EQ(CountOps(loaded.graph, "DynamicQuantizeLinear"), 2);
  EXPECT_EQ(CountOps(loaded.graph, "QuantizeLinear"), 0);
  EXPECT_EQ(CountOps(loaded.graph, "DequantizeLinear"), 3);
  // No activation parameters are stored: only the weight's.
  EXPECT_EQ(loaded.graph.FindInitializer("x_scale"), nullptr);
  // Each DynamicQuantizeLinear's three outputs are exactly one
  // DequantizeLinear's inputs, and "y" is such a DequantizeLinear's output.
  std::map<std::string, const Node*> producer;
  for (const Node& n : loaded.graph.nodes) {
    for (const std::string& o : n.outputs) producer[o] = &n;
  }
  int pairs = 0;
  for (const Node& n : loaded.graph.nodes) {
    if (n.op_type != "DequantizeLinear" || producer[n.inputs[0]] == nullptr ||
        producer[n.inputs[0]]->op_type != "DynamicQuantizeLinear") {
      continue;
    }
    EXPECT_EQ(n.inputs, producer[n.inputs[0]]->outputs);
    ++pairs;
  }
  EXPECT_EQ(pairs, 2);
  ASSERT_NE(producer["y"], nullptr);
  EXPECT_EQ(producer["y"]->op_type, "DequantizeLinear");
  const Node* conv_input = nullptr;
  for (const Node& n : loaded.graph.nodes) {
    if (n.op_type == "Conv") conv_input = producer[n.inputs[0]];
  }
  ASSERT_NE(conv_input, nullptr);
  EXPECT_EQ(conv_input->op_type, "DequantizeLinear");

  absl::StatusOr<std::unique_ptr<Executor>> fl = Executor::Create(g);
  ASSERT_TRUE(fl.ok());
  absl::StatusOr<std::vector<Tensor>> f = (*fl)->RunOutputs(feeds);
  ASSERT_TRUE(f.ok());
  const float d_float = MaxAbsDiff((*qdq)[0], (*f)[0]);
  std::printf(
      "dynamic QDQ conv: max |quantd - fake-quant| %.3g, max |quantd - "
      "float| %.3g\n",
      d_ref, d_float);
  EXPECT_GT(d_float, 0.f);
  EXPECT_LT(d_float, 0.2f);
}

TEST(QdqExportTest, StaticAndDynamicActivationsTogether) {
  Graph g = ConvReluGraph();
  QuantizationPlan plan;
  plan.activations["x"] = U8(2.f / 255, 128);
  plan.dynamic_activations = {"c"};  // the Conv's output, read by the Relu
  plan.weights["w"] = qdq_test::S8PerChannel(g.initializers["w"], 0, 127);
  for (uint32_t seed : {14u, 15u}) {
    // Different inputs, different per-batch parameters for "c".
    const TensorMap feeds = {{"x", Random({1, 2, 6, 6}, seed)}};
    absl::StatusOr<std::vector<Tensor>> qdq =
        ExportAndRun(g, plan, feeds, nullptr);
    ASSERT_TRUE(qdq.ok()) << qdq.status();
    absl::StatusOr<std::vector<Tensor>> ref =
        RunDynamicFakeQuant(g, plan, feeds);
    ASSERT_TRUE(ref.ok()) << ref.status();
    EXPECT_LE(MaxAbsDiff((*qdq)[0], (*ref)[0]), kSameMathTolerance);
  }
  absl::StatusOr<QdqGraph> q = BuildQdqGraph(g, plan);
  ASSERT_TRUE(q.ok()) << q.status();
  EXPECT_EQ(CountOps(q->graph, "QuantizeLinear"), 1);
  EXPECT_EQ(CountOps(q->graph, "DynamicQuantizeLinear"), 1);
  // Conv, DynamicQuantizeLinear, DequantizeLinear, Relu in that order.
  std::vector<std::string> order;
  for (const Node& n : q->graph.nodes) order.push_back(n.op_type);
  EXPECT_EQ(order,
            (std::vector<std::string>{
                "QuantizeLinear", "DequantizeLinear", "DequantizeLinear",
                "Conv", "DynamicQuantizeLinear", "DequantizeLinear", "Relu"}));
}

TEST(QdqExportTest, GemmWithUpdatedWeightAndAsymmetricWeights) {
  Graph g = GemmGraph();
  QuantizationPlan plan;
  plan.activations["x"] = U8(2.f / 255, 100);
  plan.updated_initializers["w"] = Random({4, 8}, 30, -0.5f, 0.5f);
  QuantParams w;
  w.type = QuantType::kUInt8;
  w.qmin = 0;
  w.qmax = 255;
  w.scales = {1.f / 255};
  w.zero_points = {128};
  plan.weights["w"] = w;
  const TensorMap feeds = {{"x", Random({2, 8}, 11)}};
  absl::StatusOr<std::vector<Tensor>> qdq =
      ExportAndRun(g, plan, feeds, nullptr);
  ASSERT_TRUE(qdq.ok()) << qdq.status();
  absl::StatusOr<std::vector<Tensor>> ref = RunFakeQuant(g, plan, feeds);
  ASSERT_TRUE(ref.ok()) << ref.status();
  EXPECT_LE(MaxAbsDiff((*qdq)[0], (*ref)[0]), kSameMathTolerance);
}

TEST(QdqExportTest, MatMulPerChannelAlongColumns) {
  Graph g = MatMulGraph();
  QuantizationPlan plan;
  plan.activations["x"] = U8(2.f / 255, 128);
  plan.weights["w"] = qdq_test::S8PerChannel(g.initializers["w"], 1, 127);
  const TensorMap feeds = {{"x", Random({3, 16}, 12)}};
  absl::StatusOr<std::vector<Tensor>> qdq =
      ExportAndRun(g, plan, feeds, nullptr);
  ASSERT_TRUE(qdq.ok()) << qdq.status();
  absl::StatusOr<std::vector<Tensor>> ref = RunFakeQuant(g, plan, feeds);
  ASSERT_TRUE(ref.ok()) << ref.status();
  EXPECT_LE(MaxAbsDiff((*qdq)[0], (*ref)[0]), kSameMathTolerance);
}

TEST(QdqExportTest, FloatNodesKeepFloatWeights) {
  Graph g = ConvReluGraph();
  QuantizationPlan plan;
  plan.activations["x"] = U8(2.f / 255, 128);
  plan.weights["w"] = qdq_test::S8PerChannel(g.initializers["w"], 0, 127);
  plan.float_nodes = {"conv"};
  absl::StatusOr<QdqGraph> q = BuildQdqGraph(g, plan);
  ASSERT_TRUE(q.ok()) << q.status();
  ASSERT_NE(q->graph.FindInitializer("w"), nullptr);
  EXPECT_EQ(q->graph.FindInitializer("w_quantized"), nullptr);
  EXPECT_EQ(CountOps(q->graph, "DequantizeLinear"), 1);  // x only
  EXPECT_EQ(q->graph.opset, 17);
}

TEST(QdqExportTest, SerializationIsDeterministic) {
  Graph g = ConvReluGraph();
  QuantizationPlan plan;
  plan.activations["x"] = U8(2.f / 255, 128);
  plan.activations["c"] = U8(4.f / 255, 128);
  plan.weights["w"] = qdq_test::S8PerChannel(g.initializers["w"], 0, 127);
  absl::StatusOr<std::string> a = ExportQdqModelBytes(g, plan);
  absl::StatusOr<std::string> b = ExportQdqModelBytes(g, plan);
  ASSERT_TRUE(a.ok() && b.ok());
  EXPECT_EQ(*a, *b);
}

TEST(QdqExportTest, Int4BlockedMatMul) {
  Graph g = MatMulGraph();
  QuantizationPlan plan;
  plan.activations["x"] = U8(2.f / 255, 128);
  plan.weights["w"] = qdq_test::S4PerGroup(g.initializers["w"], 0, 8);
  const TensorMap feeds = {{"x", Random({3, 16}, 13)}};

  // quantd's executor runs the graph before packing (opset 21 is above
  // the loader's range).
  absl::StatusOr<QdqGraph> q = BuildQdqGraph(g, plan);
  ASSERT_TRUE(q.ok()) << q.status();
  absl::StatusOr<std::unique_ptr<Executor>> ex = Executor::Create(q->graph);
  ASSERT_TRUE(ex.ok()) << ex.status();
  absl::StatusOr<std::vector<Tensor>> out = (*ex)->RunOutputs(feeds);
  ASSERT_TRUE(out.ok()) << out.status();
  absl::StatusOr<std::vector<Tensor>> ref = RunFakeQuant(g, plan, feeds);
  ASSERT_TRUE(ref.ok()) << ref.status();
  EXPECT_LE(MaxAbsDiff((*out)[0], (*ref)[0]), kSameMathTolerance);

  absl::StatusOr<onnx::ModelProto> model = ExportQdqModel(g, plan);
  ASSERT_TRUE(model.ok()) << model.status();
  EXPECT_EQ(model->ir_version(), 10);
  ASSERT_EQ(model->opset_import_size(), 1);
  EXPECT_EQ(model->opset_import(0).version(), 21);
  bool found = false;
  for (const onnx::TensorProto& t : model->graph().initializer()) {
    if (t.name() == "w_quantized") {
      found = true;
      EXPECT_EQ(t.data_type(), kOnnxInt4);
      EXPECT_EQ(t.raw_data().size(), 16u * 5 / 2);
      const Tensor& holder = q->graph.initializers.at("w_quantized");
      EXPECT_EQ(t.raw_data(), PackFourBit(holder));
    }
    if (t.name() == "w_zero_point") {
      EXPECT_EQ(t.data_type(), kOnnxInt4);
    }
    if (t.name() == "w_scale") {
      EXPECT_THAT(t.dims(), ::testing::ElementsAre(2, 5));
    }
  }
  EXPECT_TRUE(found);
  for (const onnx::NodeProto& n : model->graph().node()) {
    if (n.op_type() != "DequantizeLinear" || n.input(0) != "w_quantized") {
      continue;
    }
    std::map<std::string, int64_t> attrs;
    for (const auto& a : n.attribute()) attrs[a.name()] = a.i();
    EXPECT_EQ(attrs["axis"], 0);
    EXPECT_EQ(attrs["block_size"], 8);
  }
}

TEST(QdqExportTest, PacksFourBitLowNibbleFirst) {
  Tensor s = Tensor::FromVector<int8_t>({5}, {1, -1, -8, 7, 3});
  const std::string p = PackFourBit(s);
  ASSERT_EQ(p.size(), 3u);
  EXPECT_EQ(static_cast<uint8_t>(p[0]), 0xF1);
  EXPECT_EQ(static_cast<uint8_t>(p[1]), 0x78);
  EXPECT_EQ(static_cast<uint8_t>(p[2]), 0x03);
}

TEST(QdqExportTest, ReduceAxesBecomeAnInputAtOpset21) {
  Graph g = MatMulGraph();
  g.outputs = {Info("m", {3, 1})};
  Node reduce = MakeNode("mean", "ReduceMean", {"y"}, {"m"});
  reduce.attributes.Set("axes", Ints({1}));
  g.nodes.push_back(reduce);
  QuantizationPlan plan;
  plan.weights["w"] = qdq_test::S4PerGroup(g.initializers["w"], 0, 4);
  absl::StatusOr<QdqGraph> q = BuildQdqGraph(g, plan);
  ASSERT_TRUE(q.ok()) << q.status();
  for (const Node& n : q->graph.nodes) {
    if (n.op_type != "ReduceMean") continue;
    EXPECT_FALSE(n.attributes.Has("axes"));
    ASSERT_EQ(n.inputs.size(), 2u);
    EXPECT_EQ(q->graph.FindInitializer(n.inputs[1])->ToVector<int64_t>(),
              std::vector<int64_t>{1});
  }
}

TEST(QdqExportTest, SplitGetsNumOutputsAtOpset21) {
  Graph g = MatMulGraph();
  g.outputs = {Info("a", {3, 5}), Info("b", {3, 5})};
  Node concat = MakeNode("cat", "Concat", {"y", "y"}, {"yy"});
  concat.attributes.Set("axis", Int(1));
  g.nodes.push_back(concat);
  Node split = MakeNode("split", "Split", {"yy"}, {"a", "b"});
  split.attributes.Set("axis", Int(1));
  g.nodes.push_back(split);
  QuantizationPlan plan;
  plan.weights["w"] = qdq_test::S4PerGroup(g.initializers["w"], 0, 4);
  absl::StatusOr<QdqGraph> q = BuildQdqGraph(g, plan);
  ASSERT_TRUE(q.ok()) << q.status();
  for (const Node& n : q->graph.nodes) {
    if (n.op_type == "Split") {
      EXPECT_EQ(n.attributes.GetInt("num_outputs", 0), 2);
    }
  }
}

// "y" is a graph output that another node also reads: the graph output keeps
// its name (on the DequantizeLinear), and the reader reads the DQ output.
TEST(QdqExportTest, QuantizedGraphOutputThatIsAlsoRead) {
  Graph g = MatMulGraph();
  g.outputs.push_back(Info("z", {3, 5}));
  g.nodes.push_back(MakeNode("relu", "Relu", {"y"}, {"z"}));
  QuantizationPlan plan;
  plan.activations["y"] = U8(8.f / 255, 128);
  const TensorMap feeds = {{"x", Random({3, 16}, 14)}};
  LoadedModel loaded;
  absl::StatusOr<std::vector<Tensor>> qdq =
      ExportAndRun(g, plan, feeds, &loaded);
  ASSERT_TRUE(qdq.ok()) << qdq.status();
  EXPECT_EQ(Names(loaded.graph.outputs), (std::vector<std::string>{"y", "z"}));
  absl::StatusOr<std::vector<Tensor>> ref = RunFakeQuant(g, plan, feeds);
  ASSERT_TRUE(ref.ok()) << ref.status();
  for (int i = 0; i < 2; ++i) {
    EXPECT_LE(MaxAbsDiff((*qdq)[i], (*ref)[i]), kSameMathTolerance) << i;
  }
  for (const Node& n : loaded.graph.nodes) {
    if (n.op_type == "Relu") {
      EXPECT_EQ(n.inputs[0], "y");
    }
  }
}

// A weight read by a quantized node and a float node: the float node keeps
// the float initializer, the other reads the DequantizeLinear.
TEST(QdqExportTest, WeightSharedWithFloatNode) {
  Graph g = MatMulGraph();
  g.outputs.push_back(Info("y2", {3, 5}));
  g.nodes.push_back(MakeNode("matmul_float", "MatMul", {"x", "w"}, {"y2"}));
  QuantizationPlan plan;
  plan.weights["w"] = qdq_test::S8PerChannel(g.initializers["w"], 1, 127);
  plan.float_nodes = {"matmul_float"};
  const TensorMap feeds = {{"x", Random({3, 16}, 15)}};
  absl::StatusOr<std::vector<Tensor>> qdq =
      ExportAndRun(g, plan, feeds, nullptr);
  ASSERT_TRUE(qdq.ok()) << qdq.status();
  absl::StatusOr<std::vector<Tensor>> ref = RunFakeQuant(g, plan, feeds);
  ASSERT_TRUE(ref.ok()) << ref.status();
  EXPECT_LE(MaxAbsDiff((*qdq)[0], (*ref)[0]), kSameMathTolerance);
  EXPECT_LE(MaxAbsDiff((*qdq)[1], (*ref)[1]), kSameMathTolerance);
  absl::StatusOr<std::unique_ptr<Executor>> fl = Executor::Create(g);
  ASSERT_TRUE(fl.ok());
  absl::StatusOr<std::vector<Tensor>> f = (*fl)->RunOutputs(feeds);
  ASSERT_TRUE(f.ok());
  EXPECT_EQ(MaxAbsDiff((*qdq)[1], (*f)[1]), 0.f);  // really float
  EXPECT_GT(MaxAbsDiff((*qdq)[0], (*f)[0]), 0.f);  // really quantized
}

// The real fixture CNN, prepared and calibrated as the PTQ pipeline will do
// it, exports to a model ONNX's checker accepts and quantd runs to the same
// result as the fake-quant simulation. The export is also left in the test's
// temp dir for inspection with other runtimes.
TEST(QdqExportTest, FmnistCnnFixture) {
  absl::StatusOr<qdq_test::PreparedFixture> f =
      qdq_test::LoadFixture("fmnist_cnn/model.onnx");
  ASSERT_TRUE(f.ok()) << f.status();
  absl::StatusOr<QuantizationPlan> plan =
      qdq_test::Int8FixturePlan(f->graph, f->calib, "input");
  ASSERT_TRUE(plan.ok()) << plan.status();
  EXPECT_EQ(plan->weights.size(), 5u);  // 4 convs and the fc
  // Their inputs, and the two conv outputs the MaxPools read (int8
  // regions, engine/passes/int8_regions.h).
  EXPECT_EQ(plan->activations.size(), 7u);

  absl::StatusOr<std::unique_ptr<ArrayFile>> io =
      ArrayFile::Open(qdq_test::TestdataPath("fmnist_cnn/io.npz"));
  ASSERT_TRUE(io.ok());
  absl::StatusOr<Tensor> x = (*io)->ReadArray("input");
  ASSERT_TRUE(x.ok());
  absl::StatusOr<Tensor> logits = (*io)->ReadArray("logits");
  ASSERT_TRUE(logits.ok());
  const TensorMap feeds = {{"input", *x}};

  LoadedModel loaded;
  absl::StatusOr<std::vector<Tensor>> qdq =
      ExportAndRun(f->graph, *plan, feeds, &loaded);
  ASSERT_TRUE(qdq.ok()) << qdq.status();
  EXPECT_EQ(Names(loaded.graph.inputs), std::vector<std::string>{"input"});
  EXPECT_EQ(Names(loaded.graph.outputs), std::vector<std::string>{"logits"});
  absl::StatusOr<std::vector<Tensor>> ref =
      RunFakeQuant(f->graph, *plan, feeds);
  ASSERT_TRUE(ref.ok()) << ref.status();
  // Logits are O(10); a different float summation order can move an
  // activation across a rounding boundary and change it by one step
  // (~0.02), which propagates; 1e-2 still catches a wrong scale or axis.
  const float diff = MaxAbsDiff((*qdq)[0], (*ref)[0]);
  EXPECT_LT(diff, 1e-2f);
  const double agree = qdq_test::Top1Agreement((*qdq)[0], *logits);
  EXPECT_GE(agree, 0.95);
  std::printf(
      "fmnist_cnn QDQ: max |quantd - fake-quant| %.3g, top-1 "
      "agreement with float %.3f over %lld samples\n",
      diff, agree, static_cast<long long>(x->dim(0)));

  absl::StatusOr<std::string> bytes = ExportQdqModelBytes(f->graph, *plan);
  ASSERT_TRUE(bytes.ok());
  const std::string path = ::testing::TempDir() + "/fmnist_cnn_qdq_int8.onnx";
  std::ofstream(path, std::ios::binary) << *bytes;
  std::printf("wrote %s (%zu bytes)\n", path.c_str(), bytes->size());
}

}  // namespace
}  // namespace quantd
