#include "engine/pipeline/block_reconstruction.h"

#include "engine/testing/test_graphs.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace quantd {
namespace {

std::vector<TensorMap> Batches(int count) {
  std::vector<TensorMap> out;
  for (int b = 0; b < count; ++b) {
    out.push_back({{"x", RandomUniform({32, 8}, 100 + b)}});
  }
  return out;
}

// Mean squared error of the block's output with `weights` against the
// float block's, averaged over the batches, computed independently of
// ReconstructBlock.
double BlockError(const Graph& g, const std::vector<TensorMap>& batches,
                  const std::map<std::string, Tensor>& weights) {
  Graph q = g;
  for (const auto& [name, t] : weights) q.initializers[name] = t;
  auto fe = Executor::Create(g);
  auto qe = Executor::Create(q);
  double total = 0;
  for (const TensorMap& feeds : batches) {
    std::vector<Tensor> f = *(*fe)->RunOutputs(feeds);
    std::vector<Tensor> y = *(*qe)->RunOutputs(feeds);
    double sum = 0;
    for (int64_t i = 0; i < f[0].num_elements(); ++i) {
      const double d = y[0].data<float>()[i] - f[0].data<float>()[i];
      sum += d * d;
    }
    total += sum / f[0].num_elements();
  }
  return total / batches.size();
}

TEST(BlockReconstructionTest, LowersTheBlockErrorOfRoundToNearest) {
  const Graph g = LinearLayersGraph();
  const std::vector<WeightSlot> slots = {{"q", "MatMul", "wq", 1, 0},
                                         {"k", "MatMul", "wk", 1, 0},
                                         {"out", "MatMul", "wo", 1, 0}};
  const WeightScheme scheme{.type = QuantType::kInt4, .bits = 3};
  std::vector<BlockLayer> layers;
  std::map<std::string, Tensor> rtn;
  for (const WeightSlot& s : slots) {
    const Tensor& w = *g.FindInitializer(s.initializer);
    QuantParams p = *ComputeWeightParams(w, s, scheme);
    Tensor fq = *FakeQuantizeWeights(w, p);
    rtn[s.initializer] = fq;
    layers.push_back({&s, p, fq});
  }
  const std::vector<TensorMap> batches = Batches(4);
  std::vector<std::pair<int, double>> scores;
  BlockReconstructionOptions options;
  options.on_score = [&](int step, double relative) {
    scores.emplace_back(step, relative);
  };
  absl::StatusOr<BlockReconstructionResult> r =
      ReconstructBlock(g, batches, nullptr, scheme, options, layers);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_NEAR(r->start_loss, BlockError(g, batches, rtn), 1e-5 * r->start_loss);
  std::map<std::string, Tensor> learned;
  for (const BlockLayer& l : layers) {
    learned[l.slot->initializer] = l.weights;
    // On the grid of the parameters it returns, within 3 bits.
    Tensor fq = *FakeQuantizeWeights(l.weights, l.params);
    for (int64_t e = 0; e < fq.num_elements(); ++e) {
      ASSERT_FLOAT_EQ(fq.data<float>()[e], l.weights.data<float>()[e]);
    }
    EXPECT_EQ(l.params.qmax, 3);
  }
  EXPECT_NEAR(r->loss, BlockError(g, batches, learned), 1e-5 * r->loss);
  EXPECT_LT(r->loss, 0.8 * r->start_loss)
      << "start " << r->start_loss << ", learned " << r->loss;
  // Progress: the start, then every quarter of the steps; the kept loss is
  // the best score.
  ASSERT_EQ(scores.size(), 5u);
  EXPECT_EQ(scores[0], std::make_pair(0, 1.0));
  EXPECT_EQ(scores[4].first, 200);
  double best = 1;
  for (const auto& [step, relative] : scores) best = std::min(best, relative);
  EXPECT_NEAR(best, r->loss / r->start_loss, 1e-12);
}

// With static int8 inputs simulated, the start's loss is the block's as
// deployed (weights and inputs quantized), and the learned rounding lowers
// that loss, not the float-input one.
TEST(BlockReconstructionTest, SimulatesStaticActivationsWhenGiven) {
  const Graph g = LinearLayersGraph();
  const std::vector<WeightSlot> slots = {{"q", "MatMul", "wq", 1, 0},
                                         {"k", "MatMul", "wk", 1, 0},
                                         {"out", "MatMul", "wo", 1, 0}};
  const WeightScheme scheme{.type = QuantType::kInt4};
  std::vector<BlockLayer> plain_layers, simulated_layers;
  for (const WeightSlot& s : slots) {
    const Tensor& w = *g.FindInitializer(s.initializer);
    QuantParams p = *ComputeWeightParams(w, s, scheme);
    Tensor fq = *FakeQuantizeWeights(w, p);
    plain_layers.push_back({&s, p, fq});
    simulated_layers.push_back({&s, p, fq});
  }
  // Coarse activation steps (16 levels over the inputs' ranges), so the
  // difference is far above rounding noise.
  std::map<std::string, QuantParams> activations;
  for (const char* value : {"h", "r"}) {
    QuantParams a;
    a.type = QuantType::kInt4;
    a.scales = {0.25f};
    a.zero_points = {0};
    a.qmin = -8;
    a.qmax = 7;
    activations[value] = a;
  }
  const std::vector<TensorMap> batches = Batches(4);
  BlockReconstructionOptions plain, simulated;
  plain.iterations = simulated.iterations = 100;
  simulated.activations = &activations;
  absl::StatusOr<BlockReconstructionResult> a =
      ReconstructBlock(g, batches, nullptr, scheme, plain, plain_layers);
  absl::StatusOr<BlockReconstructionResult> b = ReconstructBlock(
      g, batches, nullptr, scheme, simulated, simulated_layers);
  ASSERT_TRUE(a.ok()) << a.status();
  ASSERT_TRUE(b.ok()) << b.status();
  EXPECT_GT(b->start_loss, 2 * a->start_loss);  // inputs quantized too
  EXPECT_LT(b->loss, b->start_loss);
  // The two runs learned different roundings.
  bool differ = false;
  for (size_t i = 0; i < slots.size(); ++i) {
    differ |= plain_layers[i].weights.ToVector<float>() !=
              simulated_layers[i].weights.ToVector<float>();
  }
  EXPECT_TRUE(differ);
}

TEST(BlockReconstructionTest, RefusesEmptyInputs) {
  const Graph g = LinearLayersGraph();
  std::vector<BlockLayer> none;
  EXPECT_EQ(
      ReconstructBlock(g, Batches(1), nullptr, {}, {}, none).status().code(),
      absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace quantd
