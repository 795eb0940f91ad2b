// Calibration cost on the fixture CNN.
//
// Time (Google Benchmark): calibrating 512 samples (histogram calibrators on
// every quantized activation, percentile) against running the float model
// over the same 512 samples twice.
//   build/bench/calibration_bench
//
// Memory (separate processes, since peak RSS only grows within one):
//   build/bench/calibration_bench --make-data=N FILE   write N samples
//   build/bench/calibration_bench --rss FILE           calibrate, print RSS
// bench/calibration_memory.sh runs both for 512 and 5120 samples.
#include <sys/resource.h>

#include <cstdio>
#include <cstring>
#include <memory>
#include <set>
#include <string>

#include "benchmark/benchmark.h"
#include "engine/calibration/calibration_session.h"
#include "engine/data/array_file.h"
#include "engine/data/dataset.h"
#include "engine/onnx/model_loader.h"
#include "engine/passes/graph_cleanup.h"
#include "engine/quantization/weight_quantization.h"
#include "engine/runtime/executor.h"

namespace quantd {
namespace {

const std::string kTestdata = QUANTD_TESTDATA_DIR;

Graph LoadCnn() {
  absl::StatusOr<LoadedModel> m =
      LoadModelFromFile(kTestdata + "/fmnist_cnn/model.onnx");
  if (!m.ok() || !PrepareGraph(m->graph, DefaultOpRegistry()).ok()) {
    std::abort();
  }
  return m->graph;
}

// The activations the PTQ pipeline calibrates: inputs of quantized nodes.
std::set<std::string> Watched(const Graph& g) {
  absl::StatusOr<std::vector<WeightSlot>> slots = FindQuantizableWeights(g, {});
  std::set<std::string> nodes, watched;
  for (const WeightSlot& s : *slots) nodes.insert(s.node);
  for (const Node& n : g.nodes) {
    if (nodes.contains(n.name)) watched.insert(n.input(0));
  }
  return watched;
}

// One pass over the dataset, calibrating when `session` is given.
absl::Status Pass(Executor& ex, Dataset& data, CalibrationSession* session) {
  if (absl::Status s = data.Rewind(); !s.ok()) return s;
  RunOptions opts;
  if (session != nullptr) opts.tensor_hook = session->Hook();
  while (true) {
    absl::StatusOr<std::optional<DataBatch>> b = data.Next();
    if (!b.ok()) return b.status();
    if (!b->has_value()) return absl::OkStatus();
    if (absl::StatusOr<RunResult> r = ex.Run((*b)->feeds, opts); !r.ok()) {
      return r.status();
    }
  }
}

CalibrationOptions Percentile() {
  CalibrationOptions o;
  o.method = CalibrationMethod::kPercentile;
  return o;
}

void BM_Calibrate512(benchmark::State& state) {
  Graph g = LoadCnn();
  auto ex = Executor::Create(g);
  auto data = Dataset::Open(kTestdata + "/fmnist/calib.npz", g);
  for (auto _ : state) {
    auto session = CalibrationSession::Create(Watched(g), Percentile());
    if (!Pass(**ex, **data, session->get()).ok() ||
        !(*session)->Finish().ok()) {
      state.SkipWithError("calibration failed");
    }
  }
  state.counters["samples"] = 512;
}

void BM_FloatPassesTwice512(benchmark::State& state) {
  Graph g = LoadCnn();
  auto ex = Executor::Create(g);
  auto data = Dataset::Open(kTestdata + "/fmnist/calib.npz", g);
  for (auto _ : state) {
    if (!Pass(**ex, **data, nullptr).ok() ||
        !Pass(**ex, **data, nullptr).ok()) {
      state.SkipWithError("run failed");
    }
  }
}

BENCHMARK(BM_Calibrate512)->Unit(benchmark::kMillisecond);
BENCHMARK(BM_FloatPassesTwice512)->Unit(benchmark::kMillisecond);

int MakeData(int64_t samples, const std::string& path) {
  absl::StatusOr<std::unique_ptr<ArrayFile>> f =
      ArrayFile::Open(kTestdata + "/fmnist/calib.npz");
  if (!f.ok()) return 1;
  absl::StatusOr<Tensor> base = (*f)->ReadArray("input");
  if (!base.ok()) return 1;
  Tensor big(DataType::kFloat32, {samples, 1, 28, 28});
  const int64_t row = 28 * 28;
  for (int64_t i = 0; i < samples; ++i) {
    std::memcpy(big.mutable_data<float>() + i * row,
                base->data<float>() + (i % base->dim(0)) * row, row * 4);
  }
  return WriteNpz(path, {{"input", big}}).ok() ? 0 : 1;
}

int MeasureRss(const std::string& path) {
  Graph g = LoadCnn();
  auto ex = Executor::Create(g);
  DatasetOptions options;
  options.batch_size = 32;
  auto data = Dataset::Open(path, g, options);
  auto session = CalibrationSession::Create(Watched(g), Percentile());
  if (!ex.ok() || !data.ok() || !session.ok() ||
      !Pass(**ex, **data, session->get()).ok() || !(*session)->Finish().ok()) {
    std::fprintf(stderr, "calibration failed\n");
    return 1;
  }
  struct rusage usage;
  getrusage(RUSAGE_SELF, &usage);
  std::printf("samples %lld peak_rss_kb %ld\n",
              static_cast<long long>((*data)->num_samples()), usage.ru_maxrss);
  return 0;
}

}  // namespace
}  // namespace quantd

int main(int argc, char** argv) {
  if (argc == 3 && std::strncmp(argv[1], "--make-data=", 12) == 0) {
    return quantd::MakeData(std::atoll(argv[1] + 12), argv[2]);
  }
  if (argc == 3 && std::strcmp(argv[1], "--rss") == 0) {
    return quantd::MeasureRss(argv[2]);
  }
  benchmark::Initialize(&argc, argv);
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
