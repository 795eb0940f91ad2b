#include "engine/qat/autograd.h"

#include <random>

#include "absl/strings/str_cat.h"
#include "engine/runtime/op_registry.h"
#include "engine/runtime/ops/fake_quant_op.h"
#include "engine/testing/test_graphs.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace quantd {
namespace {

using ::testing::HasSubstr;

Tensor Random(Shape shape, uint32_t seed, float scale = 0.5f) {
  Tensor t(DataType::kFloat32, shape);
  std::mt19937 rng(seed);
  std::normal_distribution<float> n(0.f, scale);
  for (int64_t i = 0; i < t.num_elements(); ++i) {
    t.mutable_data<float>()[i] = n(rng);
  }
  return t;
}

// x [2,1,6,6] -> Conv 3x3 (3 ch, pad 1) -> Relu -> MaxPool 2 -> Flatten
// -> Gemm (transB) -> Tanh -> y [2, 4]: the layers of the fixture CNN.
Graph SmallCnn() {
  Graph g;
  g.opset = 17;
  ValueInfo x;
  x.name = "x";
  x.dtype = DataType::kFloat32;
  x.has_shape = true;
  x.shape = {2, 1, 6, 6};
  g.inputs = {x};
  ValueInfo y;
  y.name = "y";
  g.outputs = {y};
  g.initializers["w"] = Random({3, 1, 3, 3}, 1);
  g.initializers["b"] = Random({3}, 2);
  g.initializers["fw"] = Random({4, 27}, 3, 0.3f);
  g.initializers["fb"] = Random({4}, 4);
  Node conv = MakeNode("conv", "Conv", {"x", "w", "b"}, "c");
  conv.attributes.Set("pads", Ints({1, 1, 1, 1}));
  Node pool = MakeNode("pool", "MaxPool", {"r"}, "p");
  pool.attributes.Set("kernel_shape", Ints({2, 2}));
  pool.attributes.Set("strides", Ints({2, 2}));
  Node gemm = MakeNode("fc", "Gemm", {"f", "fw", "fb"}, "z");
  gemm.attributes.Set("transB", Int(1));
  g.nodes = {conv, MakeNode("relu", "Relu", {"c"}, "r"),
             pool, MakeNode("flat", "Flatten", {"p"}, "f"),
             gemm, MakeNode("tanh", "Tanh", {"z"}, "y")};
  return g;
}

double Loss(const Graph& g, const Tensor& x, const Tensor& dy) {
  auto ex = Executor::Create(g);
  EXPECT_TRUE(ex.ok()) << ex.status();
  auto r = (*ex)->Run({{"x", x}});
  EXPECT_TRUE(r.ok()) << r.status();
  double l = 0;
  for (int64_t i = 0; i < dy.num_elements(); ++i) {
    l += double{dy.data<float>()[i]} * r->outputs[0].data<float>()[i];
  }
  return l;
}

TEST(AutogradTest, CnnGradientsMatchFiniteDifferences) {
  const Graph g = SmallCnn();
  const Tensor x = Random({2, 1, 6, 6}, 5, 1.f);
  const Tensor dy = Random({2, 4}, 6, 1.f);
  auto ex = Executor::Create(g);
  ASSERT_TRUE(ex.ok()) << ex.status();
  RunOptions o;
  o.keep_all_values = true;
  auto fwd = (*ex)->Run({{"x", x}}, o);
  ASSERT_TRUE(fwd.ok()) << fwd.status();
  TensorMap values = fwd->values;
  values["x"] = x;
  const std::set<std::string> wrt = {"w", "b", "fw", "fb"};
  ASSERT_TRUE(CheckDifferentiable(g, wrt).ok());
  absl::StatusOr<Gradients> grads = Backward(g, values, {{"y", dy}}, wrt);
  ASSERT_TRUE(grads.ok()) << grads.status();
  for (const std::string& name : wrt) {
    const Tensor& an = grads->at(name);
    ASSERT_EQ(an.shape(), g.FindInitializer(name)->shape()) << name;
    for (int64_t i = 0; i < an.num_elements(); ++i) {
      const double eps = 1e-3;
      Graph plus = g, minus = g;
      plus.initializers[name] = g.FindInitializer(name)->Clone();
      minus.initializers[name] = g.FindInitializer(name)->Clone();
      plus.initializers[name].mutable_data<float>()[i] += eps;
      minus.initializers[name].mutable_data<float>()[i] -= eps;
      const double fd = (Loss(plus, x, dy) - Loss(minus, x, dy)) / (2 * eps);
      EXPECT_NEAR(an.data<float>()[i], fd, 2e-3 + 2e-2 * std::fabs(fd))
          << name << "[" << i << "]";
    }
  }
}

// Fake quantization passes the gradient straight through inside the range
// and gives its scale an LSQ gradient.
TEST(AutogradTest, FakeQuantIsStraightThroughWithAScaleGradient) {
  Graph g;
  g.opset = 17;
  ValueInfo x;
  x.name = "x";
  x.dtype = DataType::kFloat32;
  g.inputs = {x};
  ValueInfo y;
  y.name = "y";
  g.outputs = {y};
  g.initializers["w"] = Random({4, 3}, 7);
  g.initializers["s"] = Tensor::FromVector<float>({1}, {0.05f});
  Node fq = MakeNode("fq", kFakeQuantOp, {"w", "s"}, "wq");
  fq.domain = kQuantdDomain;
  fq.attributes.Set("qmin", Int(-8));
  fq.attributes.Set("qmax", Int(7));
  g.nodes = {fq, MakeNode("mm", "MatMul", {"x", "wq"}, "y")};
  const Tensor in = Random({2, 4}, 8, 1.f);
  const Tensor dy = Random({2, 3}, 9, 1.f);
  auto ex = Executor::Create(g);
  ASSERT_TRUE(ex.ok()) << ex.status();
  RunOptions o;
  o.keep_all_values = true;
  auto fwd = (*ex)->Run({{"x", in}}, o);
  ASSERT_TRUE(fwd.ok()) << fwd.status();
  TensorMap values = fwd->values;
  values["x"] = in;
  absl::StatusOr<Gradients> grads =
      Backward(g, values, {{"y", dy}}, {"w", "s"});
  ASSERT_TRUE(grads.ok()) << grads.status();
  // d/dwq = x^T dy; STE copies it where w/s rounds inside [-8, 7].
  const Tensor& w = *g.FindInitializer("w");
  for (int64_t k = 0; k < 4; ++k) {
    for (int64_t n = 0; n < 3; ++n) {
      double dwq = 0;
      for (int64_t m = 0; m < 2; ++m) {
        dwq +=
            double{in.data<float>()[m * 4 + k]} * dy.data<float>()[m * 3 + n];
      }
      const double q = std::nearbyint(w.data<float>()[k * 3 + n] / 0.05);
      const double expect = (q >= -8 && q <= 7) ? dwq : 0.0;
      EXPECT_NEAR(grads->at("w").data<float>()[k * 3 + n], expect, 1e-5);
    }
  }
  EXPECT_NE(grads->at("s").data<float>()[0], 0.f);
}

TEST(AutogradTest, ListsOpsWithoutBackward) {
  Graph g = SmallCnn();
  g.nodes[1].op_type = "Softplus";
  absl::Status s = CheckDifferentiable(g, {"w"});
  EXPECT_EQ(s.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(s.message(), HasSubstr("Softplus (1)"));
  // Ops that no weight reaches do not matter.
  EXPECT_TRUE(CheckDifferentiable(g, {"fw"}).ok());
}

}  // namespace
}  // namespace quantd
