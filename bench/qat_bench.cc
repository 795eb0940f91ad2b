// Training throughput of the fixture CNN (Fashion-MNIST, batch 64):
// fp32 forward + backward vs fake-quant (W4A8 plan) forward + backward, the
// work of one QAT step without the optimizer, and the process's peak RSS.
// Figures go to bench/README.md; ctest runs `qat_bench --quick`.
//
//   build/bench/qat_bench [--quick]
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <set>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "engine/data/array_file.h"
#include "engine/onnx/model_loader.h"
#include "engine/passes/graph_cleanup.h"
#include "engine/qat/autograd.h"
#include "engine/qat/qat_graph.h"
#include "engine/qat/training_loss.h"
#include "engine/quantization/weight_quantization.h"
#include "engine/runtime/executor.h"

namespace quantd {
namespace {

int64_t PeakRssKib() {
  FILE* f = std::fopen("/proc/self/status", "r");
  char line[256];
  int64_t kib = 0;
  while (f != nullptr && std::fgets(line, sizeof(line), f) != nullptr) {
    if (std::strncmp(line, "VmHWM:", 6) == 0) kib = std::atoll(line + 6);
  }
  if (f != nullptr) std::fclose(f);
  return kib;
}

// Median seconds of `reps` training steps (forward with values kept, loss,
// backward to every weight) of `g` on `x`.
double StepSeconds(const Graph& g, const std::set<std::string>& wrt,
                   const Tensor& x, const Tensor& teacher, int reps) {
  std::vector<double> times;
  for (int r = 0; r < reps; ++r) {
    const absl::Time t0 = absl::Now();
    auto ex = Executor::Create(g);
    RunOptions o;
    o.keep_all_values = true;
    auto fwd = (*ex)->Run({{"input", x}}, o);
    if (!fwd.ok()) {
      std::printf("forward failed: %s\n", fwd.status().ToString().c_str());
      return 0;
    }
    auto loss = TrainingLoss(fwd->outputs[0], teacher, Tensor(), {});
    TensorMap values = fwd->values;
    values["input"] = x;
    auto grads = Backward(g, values, {{g.outputs[0].name, loss->grad}}, wrt);
    if (!grads.ok()) {
      std::printf("backward failed: %s\n", grads.status().ToString().c_str());
      return 0;
    }
    times.push_back(absl::ToDoubleSeconds(absl::Now() - t0));
  }
  std::sort(times.begin(), times.end());
  return times[times.size() / 2];
}

}  // namespace
}  // namespace quantd

int main(int argc, char** argv) {
  using namespace quantd;
  const bool quick = argc > 1 && std::strcmp(argv[1], "--quick") == 0;
  const int reps = quick ? 2 : 20;
  auto model = LoadModelFromFile(
      absl::StrCat(QUANTD_TESTDATA_DIR, "/fmnist_cnn/model.onnx"));
  if (!model.ok()) return 1;
  Graph g = std::move(model->graph);
  if (!PrepareGraph(g, DefaultOpRegistry()).ok()) return 1;
  auto eval =
      ArrayFile::Open(absl::StrCat(QUANTD_TESTDATA_DIR, "/fmnist/eval.npz"));
  auto all = (*eval)->ReadArray("input");
  Tensor x = *all->Reshaped({all->dim(0), 1, 28, 28});
  Tensor batch(DataType::kFloat32, {64, 1, 28, 28});
  std::copy(x.data<float>(), x.data<float>() + batch.num_elements(),
            batch.mutable_data<float>());
  auto teacher_ex = Executor::Create(g);
  Tensor teacher = (*(*teacher_ex)->RunOutputs({{"input", batch}}))[0];

  // W4A8: int4 per-channel weights, u8 activations from this batch.
  auto slots = FindQuantizableWeights(g, {});
  QuantizationPlan plan;
  std::set<std::string> weights;
  WeightScheme scheme;
  scheme.type = QuantType::kInt4;
  for (const WeightSlot& s : *slots) {
    plan.weights[s.initializer] =
        *ComputeWeightParams(*g.FindInitializer(s.initializer), s, scheme);
    weights.insert(s.initializer);
  }
  // u8 activations on every quantized layer's input, ranged on this batch.
  RunOptions keep;
  keep.keep_all_values = true;
  auto values = (*teacher_ex)->Run({{"input", batch}}, keep);
  for (const Node& n : g.nodes) {
    bool quantized = false;
    for (const WeightSlot& s : *slots) quantized |= s.node == n.name;
    if (!quantized) continue;
    const std::string& in = n.input(0);
    const Tensor& v = in == "input" ? batch : values->values.at(in);
    float lo = 0, hi = 0;
    for (int64_t i = 0; i < v.num_elements(); ++i) {
      lo = std::min(lo, v.data<float>()[i]);
      hi = std::max(hi, v.data<float>()[i]);
    }
    QuantParams p;
    p.type = QuantType::kUInt8;
    p.qmin = 0;
    p.qmax = 255;
    p.scales = {std::max(hi - lo, 1e-6f) / 255};
    p.zero_points = {static_cast<int32_t>(std::nearbyint(-lo / p.scales[0]))};
    plan.activations[in] = p;
  }
  auto training = BuildTrainingGraph(g, plan);
  if (!training.ok()) return 1;

  const double fp32 = StepSeconds(g, weights, batch, teacher, reps);
  const double fq =
      StepSeconds(training->graph, training->weights, batch, teacher, reps);
  std::printf(
      "CNN training step, batch 64 (forward + loss + backward), median of "
      "%d:\n  fp32        %.2f ms  %.0f samples/s\n  fake-quant  %.2f ms  "
      "%.0f samples/s  (%.2fx of fp32)\n  peak RSS %lld KiB\n",
      reps, fp32 * 1e3, 64 / fp32, fq * 1e3, 64 / fq, fp32 / fq,
      static_cast<long long>(PeakRssKib()));
  return 0;
}
