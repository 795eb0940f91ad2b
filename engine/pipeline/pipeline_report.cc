#include "engine/pipeline/pipeline_report.h"

#include <sys/stat.h>

#include <algorithm>
#include <cmath>

#include "absl/strings/str_cat.h"
#include "engine/evaluation/model_run.h"
#include "engine/quantization/weight_only_lowering.h"
#include "engine/quantization/weight_quantization.h"
#include "kernels/dnnl_context.h"
#include "kernels/post_ops.h"
#include "util/sha256.h"
#include "util/status_macros.h"

#ifndef QUANTD_VERSION
#define QUANTD_VERSION "dev"
#endif

namespace quantd {

StageClock::StageClock(v1::QuantizationReport* report, bool measure_memory)
    : report_(report),
      sampler_(measure_memory && CurrentRssBytes().has_value()
                   ? std::make_unique<RssSampler>(absl::Milliseconds(20))
                   : nullptr) {}

void StageClock::Done(const std::string& stage) {
  absl::Time now = absl::Now();
  v1::StageTiming* t = report_->add_stages();
  t->set_stage(stage);
  if (sampler_ != nullptr) t->set_peak_rss_bytes(sampler_->TakePeak());
  absl::Duration d = now - last_;
  t->mutable_duration()->set_seconds(absl::ToInt64Seconds(d));
  t->mutable_duration()->set_nanos(static_cast<int32_t>(
      absl::ToInt64Nanoseconds(d - absl::Seconds(absl::ToInt64Seconds(d)))));
  last_ = now;
}

std::string PrecisionText(const QuantParams* p) {
  if (p == nullptr) return "float";
  std::string layout = p->axis >= 0 ? "per-channel" : "per-tensor";
  if (p->group_size > 0) {
    // Conv weights group input channels at each kernel position (see
    // Granularity in job_spec.proto).
    layout = p->scales_shape.size() > 2
                 ? absl::StrCat("group ", p->group_size,
                                " input channels per kernel position")
                 : absl::StrCat("group ", p->group_size);
  }
  return absl::StrCat(QuantTypeName(p->type), "[", p->qmin, ",", p->qmax, "] ",
                      layout);
}

void AddLayerReports(const Graph& graph, const std::vector<WeightSlot>& slots,
                     const QuantizationPlan& plan, const LayerFacts& facts,
                     const std::vector<std::string>& excluded_nodes,
                     v1::QuantizationReport* report) {
  auto find = [](const auto& map, const std::string& key) {
    auto it = map.find(key);
    return it == map.end() ? nullptr : &it->second;
  };
  for (const WeightSlot& slot : slots) {
    v1::LayerReport* l = report->add_layers();
    l->set_node(slot.node);
    l->set_op_type(slot.op_type);
    const bool is_float = plan.float_nodes.contains(slot.node);
    const QuantParams* p =
        is_float ? nullptr : find(plan.weights, slot.initializer);
    l->set_weight_precision(PrecisionText(p));
    l->set_activation_precision(is_float ? "float"
                                         : facts.activation_precision);
    if (const double* v = find(facts.local_sqnr_db, slot.node)) {
      l->set_local_sqnr_db(*v);
    }
    if (const double* v = find(facts.sensitivity, slot.node)) {
      l->set_sensitivity(*v);
    }
    if (const std::string* r = find(facts.reasons, slot.node)) {
      l->set_reason(*r);
    }
    if (const auto* a = find(facts.algorithms, slot.node)) {
      for (const std::string& s : *a) l->add_algorithms(s);
    }
    if (const bool* b = find(facts.bias_corrected, slot.node)) {
      l->set_bias_corrected(*b && !is_float);
    }
    if (p == nullptr) continue;
    if (const double* v = find(facts.output_sqnr_db, slot.node)) {
      l->set_output_sqnr_db(*v);
    }
    absl::StatusOr<double> error =
        RelativeWeightError(graph, plan, slot.initializer, *p);
    if (error.ok()) l->set_weight_error(*error);
  }
  for (const std::string& n : excluded_nodes) {
    v1::LayerReport* l = report->add_layers();
    l->set_node(n);
    l->set_weight_precision("float");
    l->set_activation_precision("float");
    l->set_reason("excluded by exclude_nodes");
  }
}

absl::Status MeasurePerformance(Executor& float_ex, Executor& int8_ex,
                                const std::string& int8_kernels,
                                const TensorMap& feeds, int64_t batch_size,
                                int repeats, double max_seconds,
                                v1::PerformanceReport* perf) {
  QUANTD_ASSIGN_OR_RETURN(
      LatencyStats f32, MeasureLatency(float_ex, feeds, repeats, max_seconds));
  QUANTD_ASSIGN_OR_RETURN(LatencyStats i8,
                          MeasureLatency(int8_ex, feeds, repeats, max_seconds));
  perf->set_batch_size(batch_size);
  perf->set_repeats(std::min(f32.runs, i8.runs));
  perf->set_float_latency_ms(f32.median_ms);
  perf->set_quantized_latency_ms(i8.median_ms);
  perf->set_float_throughput(1000.0 * batch_size / f32.median_ms);
  perf->set_quantized_throughput(1000.0 * batch_size / i8.median_ms);
  perf->set_speedup(f32.median_ms / i8.median_ms);
  perf->set_threads(KernelThreads());
  perf->set_cpu_isa(CpuIsaName());
  perf->set_quantized_kernels(int8_kernels);
  perf->set_float_weight_bytes(InitializerBytes(float_ex.graph()));
  perf->set_quantized_weight_bytes(InitializerBytes(int8_ex.graph()));
  return absl::OkStatus();
}

absl::Status FillReproducibility(const std::vector<std::string>& paths,
                                 int64_t calibration_samples, uint64_t seed,
                                 v1::Reproducibility* repro) {
  std::string* digests[] = {repro->mutable_model_sha256(),
                            repro->mutable_calibration_data_sha256(),
                            repro->mutable_evaluation_data_sha256()};
  for (size_t i = 0; i < paths.size() && i < 3; ++i) {
    if (paths[i].empty()) continue;
    QUANTD_ASSIGN_OR_RETURN(std::string d, Sha256File(paths[i]));
    *digests[i] = d;
  }
  repro->set_calibration_samples(calibration_samples);
  repro->set_seed(seed);
  repro->set_quantd_version(QUANTD_VERSION);
  repro->set_cpu_isa(CpuIsaName());
  repro->set_cpu_has_vnni(CpuHasVnni());
  repro->set_weight_qmax(MaxExactInt8WeightMagnitude());
  return absl::OkStatus();
}

int64_t FileSize(const std::string& path) {
  struct stat st;
  return stat(path.c_str(), &st) == 0 ? st.st_size : 0;
}

}  // namespace quantd
