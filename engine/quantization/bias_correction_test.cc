#include "engine/quantization/bias_correction.h"

#include <random>

#include "engine/runtime/executor.h"
#include "gtest/gtest.h"

namespace quantd {
namespace {

Tensor Random(Shape shape, std::mt19937& rng, float mean) {
  Tensor t(DataType::kFloat32, shape);
  std::normal_distribution<float> n(mean, 1.f);
  for (int64_t i = 0; i < t.num_elements(); ++i) {
    t.mutable_data<float>()[i] = n(rng);
  }
  return t;
}

// Mean over all positions of each output channel (channel axis `axis`).
std::vector<double> ChannelMeans(const Tensor& y, int axis) {
  const int64_t c = y.dim(axis);
  int64_t inner = 1;
  for (int d = axis + 1; d < y.rank(); ++d) inner *= y.dim(d);
  std::vector<double> m(c, 0.0);
  for (int64_t i = 0; i < y.num_elements(); ++i) {
    m[(i / inner) % c] += y.data<float>()[i];
  }
  for (double& v : m) v /= y.num_elements() / c;
  return m;
}

std::vector<double> InputMeans(const Tensor& x, int axis) {
  return ChannelMeans(x, axis);
}

ValueInfo FloatInput(Shape shape) {
  ValueInfo v;
  v.name = "x";
  v.dtype = DataType::kFloat32;
  v.has_shape = true;
  v.shape = std::move(shape);
  return v;
}

ValueInfo Output(const std::string& name) {
  ValueInfo v;
  v.name = name;
  return v;
}

Tensor RunGraph(const Graph& g, const Tensor& x) {
  auto ex = Executor::Create(g);
  EXPECT_TRUE(ex.ok()) << ex.status();
  auto r = (*ex)->Run({{"x", x}});
  EXPECT_TRUE(r.ok()) << r.status();
  return r->outputs[0];
}

// After correction the quantized layer's mean output per channel equals the
// float layer's on the data the means came from (the correction is exact
// in expectation for a linear layer).
void ExpectMeansRestored(Graph g, const WeightSlot& slot, const Tensor& x,
                         int in_axis, int out_axis) {
  const Tensor float_out = RunGraph(g, x);
  std::mt19937 rng(5);
  const Tensor& w = *g.FindInitializer(slot.initializer);
  Tensor q = w.Clone();
  std::uniform_real_distribution<float> noise(-0.05f, 0.1f);  // biased
  for (int64_t i = 0; i < q.num_elements(); ++i) {
    q.mutable_data<float>()[i] += noise(rng);
  }
  const std::string bias = FindBiasInitializer(g, slot);
  ASSERT_FALSE(bias.empty());
  absl::StatusOr<Tensor> b = CorrectedBias(g, slot, q, InputMeans(x, in_axis));
  ASSERT_TRUE(b.ok()) << b.status();
  Graph quantized = g;
  quantized.initializers[slot.initializer] = q;
  const std::vector<double> shifted =
      ChannelMeans(RunGraph(quantized, x), out_axis);
  quantized.initializers[bias] = *b;
  const std::vector<double> corrected =
      ChannelMeans(RunGraph(quantized, x), out_axis);
  const std::vector<double> expected = ChannelMeans(float_out, out_axis);
  double before = 0;
  for (size_t o = 0; o < expected.size(); ++o) {
    EXPECT_NEAR(corrected[o], expected[o], 1e-4) << "channel " << o;
    before = std::max(before, std::fabs(shifted[o] - expected[o]));
  }
  EXPECT_GT(before, 1e-2);  // the noise did shift the means
}

TEST(BiasCorrectionTest, MatMulFollowedByAdd) {
  std::mt19937 rng(1);
  Graph g;
  g.opset = 17;
  g.inputs.push_back(FloatInput({-1, 6}));
  g.outputs.push_back(Output("y"));
  g.initializers["w"] = Random({6, 3}, rng, 0.f);
  g.initializers["b"] = Random({3}, rng, 0.f);
  g.nodes.push_back(Node{"mm", "MatMul", "", {"x", "w"}, {"t"}, {}});
  g.nodes.push_back(Node{"add", "Add", "", {"b", "t"}, {"y"}, {}});
  WeightSlot slot{"mm", "MatMul", "w", 1, 0};
  ExpectMeansRestored(g, slot, Random({40, 6}, rng, 1.5f), 1, 1);
}

TEST(BiasCorrectionTest, GroupedConv) {
  std::mt19937 rng(2);
  Graph g;
  g.opset = 17;
  g.inputs.push_back(FloatInput({-1, 4, 5, 5}));
  g.outputs.push_back(Output("y"));
  // 1x1 kernels: every input position is read equally often, so the
  // per-channel input mean is exactly what each output sees.
  g.initializers["w"] = Random({6, 2, 1, 1}, rng, 0.f);
  g.initializers["b"] = Random({6}, rng, 0.f);
  Node conv{"conv", "Conv", "", {"x", "w", "b"}, {"y"}, {}};
  Attribute group;
  group.i = 2;
  conv.attributes.Set("group", group);
  g.nodes.push_back(conv);
  WeightSlot slot{"conv", "Conv", "w", 0, 1};
  ExpectMeansRestored(g, slot, Random({3, 4, 5, 5}, rng, -1.f), 1, 1);
}

TEST(BiasCorrectionTest, LayersWithoutABias) {
  Graph g;
  std::mt19937 rng(3);
  g.initializers["w"] = Random({6, 3}, rng, 0.f);
  g.nodes.push_back(Node{"mm", "MatMul", "", {"x", "w"}, {"y"}, {}});
  g.outputs.push_back(Output("y"));
  WeightSlot slot{"mm", "MatMul", "w", 1, 0};
  EXPECT_EQ(FindBiasInitializer(g, slot), "");
  EXPECT_EQ(CorrectedBias(g, slot, g.initializers["w"], {0, 0, 0, 0, 0, 0})
                .status()
                .code(),
            absl::StatusCode::kFailedPrecondition);
}

}  // namespace
}  // namespace quantd
