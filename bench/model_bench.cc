// End-to-end throughput of the fixture CNN in fp32 and int8 (images/s) at
// batch 1 and 64. int8 = the graph lowered by LowerToInt8 with activation
// ranges recorded on the calibration set.
//
//   build/bench/model_bench
#include <memory>

#include "benchmark/benchmark.h"
#include "engine/data/array_file.h"
#include "engine/onnx/model_loader.h"
#include "engine/passes/graph_cleanup.h"
#include "engine/passes/int8_lowering.h"
#include "engine/runtime/executor.h"

namespace quantd {
namespace {

struct Prepared {
  Graph fp32;
  Graph int8;
  Tensor images;  // [512, 1, 28, 28]
};

const Prepared& CnnFixture() {
  static const Prepared* prepared = [] {
    auto* p = new Prepared();
    const std::string dir = QUANTD_TESTDATA_DIR;
    absl::StatusOr<LoadedModel> m =
        LoadModelFromFile(dir + "/fmnist_cnn/model.onnx");
    if (!m.ok() || !PrepareGraph(m->graph, DefaultOpRegistry()).ok()) {
      std::abort();
    }
    p->fp32 = m->graph;
    absl::StatusOr<std::unique_ptr<ArrayFile>> calib =
        ArrayFile::Open(dir + "/fmnist/calib.npz");
    if (!calib.ok()) std::abort();
    absl::StatusOr<Tensor> images = (*calib)->ReadArray("input");
    if (!images.ok()) std::abort();
    p->images = *images;
    absl::StatusOr<std::unique_ptr<Executor>> ex = Executor::Create(p->fp32);
    if (!ex.ok()) std::abort();
    ActivationRangeRecorder recorder(p->fp32);
    RunOptions options;
    options.tensor_hook = recorder.Hook();
    if (!(*ex)->Run({{"input", p->images}}, options).ok()) std::abort();
    p->int8 = p->fp32;
    if (!LowerToInt8(p->int8, recorder.ranges()).ok()) std::abort();
    return p;
  }();
  return *prepared;
}

void RunCnn(benchmark::State& state, bool int8) {
  const Prepared& p = CnnFixture();
  const int64_t batch = state.range(0);
  absl::StatusOr<std::unique_ptr<Executor>> ex =
      Executor::Create(int8 ? p.int8 : p.fp32);
  if (!ex.ok()) {
    state.SkipWithError("executor");
    return;
  }
  Tensor input(DataType::kFloat32, {batch, 1, 28, 28});
  std::memcpy(input.mutable_raw_data(), p.images.raw_data(), input.byte_size());
  TensorMap feeds = {{"input", input}};
  for (auto _ : state) {
    if (!(*ex)->RunOutputs(feeds).ok()) state.SkipWithError("run");
  }
  state.counters["images_per_s"] =
      benchmark::Counter(static_cast<double>(batch),
                         benchmark::Counter::kIsIterationInvariantRate);
}

void BM_CnnFp32(benchmark::State& state) { RunCnn(state, false); }
void BM_CnnInt8(benchmark::State& state) { RunCnn(state, true); }
BENCHMARK(BM_CnnFp32)->Arg(1)->Arg(64)->Unit(benchmark::kMillisecond);
BENCHMARK(BM_CnnInt8)->Arg(1)->Arg(64)->Unit(benchmark::kMillisecond);

}  // namespace
}  // namespace quantd

BENCHMARK_MAIN();
