// Layout planning and fusion (executor.h): runs with channels-last values
// between layout-aware kernels and consumers folded into convs must compute
// what all-plain, unfused runs compute, and callers must only ever see plain
// tensors.
#include <random>

#include "engine/runtime/executor.h"
#include "engine/testing/test_graphs.h"
#include "gtest/gtest.h"
#include "kernels/layout.h"

namespace quantd {
namespace {

Tensor Random(Shape shape, std::mt19937& rng, float lo = -1.f, float hi = 1.f) {
  std::uniform_real_distribution<float> u(lo, hi);
  Tensor t(DataType::kFloat32, std::move(shape));
  for (float& v : t.mutable_span<float>()) v = u(rng);
  return t;
}

Node Conv(const std::string& name, std::vector<std::string> in, std::string out,
          int64_t pad) {
  Node n = MakeNode(name, "Conv", std::move(in), std::move(out));
  n.attributes.Set("pads", Ints({pad, pad, pad, pad}));
  return n;
}

// A residual block with every kind of consumer a channels-last value can
// meet, x: f32[N, 4, 10, 10]:
//   r1 = Relu(Conv3x3(x))             aware -> aware
//   q  = quantd.QuantizedConv3x3(r1)  int8 conv reading channels-last
//   s  = Relu(q + Conv1x1(x))         same-shape Add of two convs
//   p  = MaxPool2x2(s)
//   m  = p * scale[1, 8, 1, 1]        broadcasting Mul: needs plain
//   c  = Clip(Conv3x3(m), 0, 6)
//   y  = Flatten(GlobalAveragePool(c))     graph output [N, 6]
//   sp = Sigmoid(p)                        graph output, channels-last inside
Graph ResidualBlock() {
  std::mt19937 rng(11);
  Graph g;
  g.opset = 17;
  ValueInfo x;
  x.name = "x";
  x.dtype = DataType::kFloat32;
  x.has_shape = true;
  x.shape = {-1, 4, 10, 10};
  g.inputs = {x};
  ValueInfo y, sp;
  y.name = "y";
  sp.name = "sp";
  g.outputs = {y, sp};
  g.initializers["w1"] = Random({8, 4, 3, 3}, rng);
  g.initializers["b1"] = Random({8}, rng);
  Tensor wq(DataType::kInt8, {8, 8, 3, 3});
  std::uniform_int_distribution<int> w8(-60, 60);
  for (int8_t& v : wq.mutable_span<int8_t>()) v = static_cast<int8_t>(w8(rng));
  g.initializers["wq"] = wq;
  g.initializers["wq_scale"] = Random({8}, rng, 0.005f, 0.01f);
  g.initializers["bq"] = Random({8}, rng);
  g.initializers["w3"] = Random({8, 4, 1, 1}, rng);
  g.initializers["scale"] = Random({1, 8, 1, 1}, rng, 0.5f, 2.f);
  g.initializers["w4"] = Random({6, 8, 3, 3}, rng);
  g.initializers["lo"] = Tensor::Scalar<float>(0.f);
  g.initializers["hi"] = Tensor::Scalar<float>(6.f);
  Node q = Conv("q", {"r1", "wq", "wq_scale", "bq"}, "qv", 1);
  q.op_type = "QuantizedConv";
  q.domain = "quantd";
  q.attributes.Set("x_scale", Float(0.02f));
  q.attributes.Set("x_zero_point", Int(0));
  Node pool = MakeNode("pool", "MaxPool", {"s"}, "p");
  pool.attributes.Set("kernel_shape", Ints({2, 2}));
  pool.attributes.Set("strides", Ints({2, 2}));
  g.nodes = {Conv("c1", {"x", "w1", "b1"}, "c1v", 1),
             MakeNode("relu1", "Relu", {"c1v"}, "r1"),
             q,
             Conv("c3", {"x", "w3"}, "c3v", 0),
             MakeNode("add", "Add", {"qv", "c3v"}, "sum"),
             MakeNode("relu2", "Relu", {"sum"}, "s"),
             pool,
             MakeNode("mul", "Mul", {"p", "scale"}, "m"),
             Conv("c4", {"m", "w4"}, "c4v", 0),
             MakeNode("clip", "Clip", {"c4v", "lo", "hi"}, "c"),
             MakeNode("gap", "GlobalAveragePool", {"c"}, "gv"),
             MakeNode("flat", "Flatten", {"gv"}, "y"),
             MakeNode("sig", "Sigmoid", {"p"}, "sp")};
  return g;
}

void ExpectSame(const Tensor& got, const Tensor& want) {
  ASSERT_EQ(got.shape(), want.shape());
  EXPECT_FALSE(got.channels_last());
  const float* a = got.data<float>();
  const float* b = want.data<float>();
  int bad = 0;
  for (int64_t i = 0; i < got.num_elements(); ++i) {
    if (std::abs(a[i] - b[i]) > 1e-5f * (1.f + std::abs(b[i])) && ++bad < 5) {
      ADD_FAILURE() << "element " << i << ": " << a[i] << " vs " << b[i];
    }
  }
  EXPECT_EQ(bad, 0);
}

class ExecutorLayoutTest : public ::testing::TestWithParam<int> {};

TEST_P(ExecutorLayoutTest, PlannedRunsMatchPlainRuns) {
  absl::StatusOr<std::unique_ptr<Executor>> ex =
      Executor::Create(ResidualBlock());
  ASSERT_TRUE(ex.ok()) << ex.status();
  std::mt19937 rng(3);
  TensorMap feeds = {{"x", Random({GetParam(), 4, 10, 10}, rng)}};
  RunOptions plain;
  plain.plan_layouts = false;
  plain.extra_outputs = {"r1", "s"};
  RunOptions unfused = plain;
  unfused.plan_layouts = true;
  unfused.fuse = false;
  RunOptions fused = unfused;
  fused.fuse = true;
  for (int round = 0; round < 2; ++round) {  // cached primitives too
    absl::StatusOr<RunResult> want = (*ex)->Run(feeds, plain);
    ASSERT_TRUE(want.ok()) << want.status();
    for (const RunOptions& options : {unfused, fused}) {
      absl::StatusOr<RunResult> got = (*ex)->Run(feeds, options);
      ASSERT_TRUE(got.ok()) << got.status();
      ASSERT_EQ(got->outputs.size(), 2u);
      ExpectSame(got->outputs[0], want->outputs[0]);
      ExpectSame(got->outputs[1], want->outputs[1]);
      ExpectSame(got->values.at("r1"), want->values.at("r1"));
      ExpectSame(got->values.at("s"), want->values.at("s"));
    }
  }
}

// y = Relu(Conv(Relu(x)) + x): the addend is the caller's feed, which no
// node reads after the conv but the Add, and which the fused conv must still
// copy, not add into: the caller holds it.
Graph ConvPlusInput() {
  std::mt19937 rng(13);
  Graph g;
  g.opset = 17;
  ValueInfo x;
  x.name = "x";
  x.dtype = DataType::kFloat32;
  g.inputs = {x};
  ValueInfo y;
  y.name = "y";
  g.outputs = {y};
  g.initializers["w"] = Random({4, 4, 3, 3}, rng);
  g.nodes = {MakeNode("relu0", "Relu", {"x"}, "rx"),
             Conv("c", {"rx", "w"}, "cv", 1),
             MakeNode("add", "Add", {"cv", "x"}, "sum"),
             MakeNode("relu", "Relu", {"sum"}, "y")};
  return g;
}

TEST(ExecutorFusionTest, CopiesAnAddendItDoesNotOwn) {
  absl::StatusOr<std::unique_ptr<Executor>> ex =
      Executor::Create(ConvPlusInput());
  ASSERT_TRUE(ex.ok()) << ex.status();
  std::mt19937 rng(17);
  const Tensor x = Random({2, 4, 6, 6}, rng);
  const Tensor before = x.Clone();
  RunOptions plain;
  plain.plan_layouts = false;
  absl::StatusOr<RunResult> want = (*ex)->Run({{"x", x}}, plain);
  absl::StatusOr<RunResult> got = (*ex)->Run({{"x", x}});
  ASSERT_TRUE(want.ok()) << want.status();
  ASSERT_TRUE(got.ok()) << got.status();
  ExpectSame(got->outputs[0], want->outputs[0]);
  ExpectSame(x, before);
}

TEST(ExecutorFusionTest, AskingForAFoldedValueRunsThatNodeUnfused) {
  absl::StatusOr<std::unique_ptr<Executor>> ex =
      Executor::Create(ConvPlusInput());
  ASSERT_TRUE(ex.ok()) << ex.status();
  std::mt19937 rng(19);
  TensorMap feeds = {{"x", Random({1, 4, 6, 6}, rng)}};
  RunOptions plain;
  plain.plan_layouts = false;
  plain.extra_outputs = {"cv", "sum"};
  RunOptions planned = plain;
  planned.plan_layouts = true;
  absl::StatusOr<RunResult> want = (*ex)->Run(feeds, plain);
  absl::StatusOr<RunResult> got = (*ex)->Run(feeds, planned);
  ASSERT_TRUE(want.ok()) << want.status();
  ASSERT_TRUE(got.ok()) << got.status();
  ExpectSame(got->values.at("cv"), want->values.at("cv"));
  ExpectSame(got->values.at("sum"), want->values.at("sum"));
  ExpectSame(got->outputs[0], want->outputs[0]);
}

// In the residual block one of q and c3 adds into the other's output, which
// nothing reads after it (which one depends on the topological order): a
// planned run takes that buffer over, unless the caller asked for it.
TEST(ExecutorFusionTest, ARequestedAddendIsNotTakenOver) {
  absl::StatusOr<std::unique_ptr<Executor>> ex =
      Executor::Create(ResidualBlock());
  ASSERT_TRUE(ex.ok()) << ex.status();
  std::mt19937 rng(23);
  TensorMap feeds = {{"x", Random({2, 4, 10, 10}, rng)}};
  // Asking for one operand leaves the other's fusion (which takes it over)
  // in place; asking for both would disable the fusion itself.
  for (const char* wanted : {"qv", "c3v"}) {
    SCOPED_TRACE(wanted);
    RunOptions plain;
    plain.plan_layouts = false;
    plain.extra_outputs = {wanted};
    RunOptions planned = plain;
    planned.plan_layouts = true;
    absl::StatusOr<RunResult> want = (*ex)->Run(feeds, plain);
    absl::StatusOr<RunResult> got = (*ex)->Run(feeds, planned);
    ASSERT_TRUE(want.ok()) << want.status();
    ASSERT_TRUE(got.ok()) << got.status();
    ExpectSame(got->values.at(wanted), want->values.at(wanted));
    ExpectSame(got->outputs[0], want->outputs[0]);
  }
}

INSTANTIATE_TEST_SUITE_P(Batches, ExecutorLayoutTest, ::testing::Values(1, 3));

TEST(ExecutorLayoutTest, AHookSeesOnlyPlainValues) {
  absl::StatusOr<std::unique_ptr<Executor>> ex =
      Executor::Create(ResidualBlock());
  ASSERT_TRUE(ex.ok()) << ex.status();
  std::mt19937 rng(5);
  RunOptions options;  // plan_layouts stays at its default, true
  int seen = 0;
  options.tensor_hook = [&](const Node*, const std::string&, Tensor& value) {
    EXPECT_FALSE(value.channels_last());
    ++seen;
    return absl::OkStatus();
  };
  ASSERT_TRUE((*ex)->Run({{"x", Random({2, 4, 10, 10}, rng)}}, options).ok());
  EXPECT_EQ(seen, 14);  // x and every node's output
}

}  // namespace
}  // namespace quantd
