// Pieces of the QuantizationReport the pipeline fills in: stage timings,
// per-layer entries, size, latency and the reproducibility record.
//
//   StageClock clock(&report, /*measure_memory=*/false);
//   ... clock.Done("calibrate");
//   AddLayerReports(graph, slots, plan, precisions, ..., &report);
#ifndef QUANTD_ENGINE_PIPELINE_PIPELINE_REPORT_H_
#define QUANTD_ENGINE_PIPELINE_PIPELINE_REPORT_H_

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/clock.h"
#include "engine/ir/graph.h"
#include "engine/ir/quantization_plan.h"
#include "engine/quantization/weight_quantization.h"
#include "engine/runtime/executor.h"
#include "quantd/v1/report.pb.h"
#include "util/process_memory.h"

namespace quantd {

// Appends a StageTiming per Done(): the time since the previous one, and
// with `measure_memory` the process's peak RSS since then
// (util/process_memory.h: for one-job processes only).
class StageClock {
 public:
  StageClock(v1::QuantizationReport* report, bool measure_memory);
  void Done(const std::string& stage);

 private:
  v1::QuantizationReport* report_;
  std::unique_ptr<RssSampler> sampler_;  // null: not measured
  absl::Time last_ = absl::Now();
};

// "int8[-64,64] per-channel", "int4[-7,7] group 32", "float".
std::string PrecisionText(const QuantParams* p);

struct LayerFacts {
  std::string activation_precision;  // "uint8 per-tensor", "float", ...
  std::map<std::string, double> output_sqnr_db;                // by node
  std::map<std::string, double> sensitivity;                   // by node
  std::map<std::string, double> local_sqnr_db;                 // by node
  std::map<std::string, std::string> reasons;                  // by node
  std::map<std::string, std::vector<std::string>> algorithms;  // by node
  std::map<std::string, bool> bias_corrected;                  // by node
};

// One LayerReport per slot (float layers included, with their reason),
// then one per excluded node.
void AddLayerReports(const Graph& graph, const std::vector<WeightSlot>& slots,
                     const QuantizationPlan& plan, const LayerFacts& facts,
                     const std::vector<std::string>& excluded_nodes,
                     v1::QuantizationReport* report);

// fp32 vs quantized latency and throughput on one batch, median of up to
// `repeats` runs each within `max_seconds` per precision (MeasureLatency),
// and the weight bytes each executor holds; `int8_kernels` says what
// int8_ex runs on (PerformanceReport.quantized_kernels).
absl::Status MeasurePerformance(Executor& float_ex, Executor& int8_ex,
                                const std::string& int8_kernels,
                                const TensorMap& feeds, int64_t batch_size,
                                int repeats, double max_seconds,
                                v1::PerformanceReport* perf);

// sha256 of the inputs, sample count, seed, version, CPU features.
absl::Status FillReproducibility(const std::vector<std::string>& paths,
                                 int64_t calibration_samples, uint64_t seed,
                                 v1::Reproducibility* repro);

int64_t FileSize(const std::string& path);

}  // namespace quantd

#endif  // QUANTD_ENGINE_PIPELINE_PIPELINE_REPORT_H_
