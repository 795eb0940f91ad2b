#include "engine/evaluation/model_run.h"

#include <algorithm>
#include <cmath>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "engine/data/array_file.h"
#include "engine/quantization/weight_quantization.h"
#include "engine/runtime/executor.h"
#include "kernels/dnnl_context.h"
#include "kernels/post_ops.h"
#include "kernels/weight_only_matmul.h"
#include "util/status_macros.h"

namespace quantd {

LatencyStats SummarizeLatencies(std::vector<double> ms) {
  LatencyStats s;
  if (ms.empty()) return s;
  std::sort(ms.begin(), ms.end());
  s.min_ms = ms.front();
  s.max_ms = ms.back();
  s.median_ms = ms.size() % 2 == 1
                    ? ms[ms.size() / 2]
                    : 0.5 * (ms[ms.size() / 2 - 1] + ms[ms.size() / 2]);
  return s;
}

namespace {

float MaxAbsDiff(const Tensor& a, const Tensor& b) {
  if (a.dtype() != DataType::kFloat32 || b.dtype() != DataType::kFloat32 ||
      a.num_elements() != b.num_elements()) {
    return INFINITY;
  }
  float m = 0;
  for (int64_t i = 0; i < a.num_elements(); ++i) {
    m = std::max(m, std::fabs(a.data<float>()[i] - b.data<float>()[i]));
  }
  return m;
}

// Fraction of rows whose argmax agrees, for [N, C] float tensors; -1 if the
// tensors are not shaped like classifier outputs.
float Top1Agreement(const Tensor& a, const Tensor& b) {
  if (a.rank() != 2 || a.shape() != b.shape() ||
      a.dtype() != DataType::kFloat32 || b.dtype() != DataType::kFloat32 ||
      a.dim(0) == 0) {
    return -1;
  }
  const int64_t n = a.dim(0), c = a.dim(1);
  int64_t agree = 0;
  for (int64_t i = 0; i < n; ++i) {
    const float* ra = a.data<float>() + i * c;
    const float* rb = b.data<float>() + i * c;
    agree +=
        std::max_element(ra, ra + c) - ra == std::max_element(rb, rb + c) - rb;
  }
  return static_cast<float>(agree) / n;
}

}  // namespace

absl::StatusOr<LatencyStats> MeasureLatency(Executor& ex,
                                            const TensorMap& feeds, int repeats,
                                            double max_seconds) {
  // One untimed run creates the oneDNN primitives and packs weights.
  if (absl::StatusOr<std::vector<Tensor>> w = ex.RunOutputs(feeds); !w.ok()) {
    return w.status();
  }
  std::vector<double> ms;
  double total_ms = 0;
  for (int i = 0; i < repeats; ++i) {
    if (max_seconds > 0 && i >= 3 && total_ms >= 1000 * max_seconds) break;
    absl::Time start = absl::Now();
    QUANTD_RETURN_IF_ERROR((ex.RunOutputs(feeds)).status());
    ms.push_back(absl::ToDoubleMilliseconds(absl::Now() - start));
    total_ms += ms.back();
  }
  const int runs = static_cast<int>(ms.size());
  LatencyStats stats = SummarizeLatencies(std::move(ms));
  stats.runs = runs;
  return stats;
}

namespace {

// Round-to-nearest symmetric weights for every Gemm/MatMul, lowered onto
// the weight-only kernel (Conv weights stay f32: the kernel has no Conv).
absl::StatusOr<WeightOnlyRun> LowerWeightOnlyRtn(Graph& graph, int bits,
                                                 int64_t group_size) {
  if (bits != 4 && bits != 8) {
    return absl::InvalidArgumentError(
        absl::StrCat("weight-only bits must be 4 or 8, got ", bits));
  }
  WeightSelection selection;
  selection.excluded_op_types = {"Conv"};
  QUANTD_ASSIGN_OR_RETURN(std::vector<WeightSlot> slots,
                          FindQuantizableWeights(graph, selection));
  WeightScheme scheme;
  scheme.type = bits == 4 ? QuantType::kInt4 : QuantType::kInt8;
  scheme.granularity = group_size > 0 ? WeightGranularity::kPerGroup
                                      : WeightGranularity::kPerChannel;
  scheme.group_size = group_size;
  scheme.allow_partial_groups = true;
  scheme.int8_max_magnitude = 127;  // f32 arithmetic: no VNNI limit
  std::map<std::string, QuantParams> weights;
  for (const WeightSlot& slot : slots) {
    QUANTD_ASSIGN_OR_RETURN(
        QuantParams p,
        ComputeWeightParams(*graph.FindInitializer(slot.initializer), slot,
                            scheme));
    weights[slot.initializer] = std::move(p);
  }
  WeightOnlyRun run;
  run.kernel_isa = WeightOnlyIsa();
  QUANTD_RETURN_IF_ERROR(LowerWeightOnly(graph, weights, {}, &run.lowering));
  return run;
}

// Each output against the reference stored beside the inputs (if any) and
// the quantized model's against fp32.
absl::StatusOr<std::vector<OutputComparison>> CompareOutputs(
    const Graph& graph, ArrayFile& data, int64_t max_samples,
    const std::vector<Tensor>& fp32, const std::vector<Tensor>& quantized) {
  std::vector<OutputComparison> out;
  for (size_t i = 0; i < graph.outputs.size(); ++i) {
    OutputComparison c;
    c.name = graph.outputs[i].name;
    const Tensor& f = fp32[i];
    c.shape = f.shape();
    if (data.Contains(c.name)) {
      QUANTD_ASSIGN_OR_RETURN(std::unique_ptr<ArrayStream> s,
                              data.OpenStream(c.name));
      QUANTD_ASSIGN_OR_RETURN(Tensor ref, s->ReadRows(max_samples));
      c.has_reference = true;
      c.fp32_max_abs_diff = MaxAbsDiff(f, ref);
      c.top1_fp32_vs_reference = Top1Agreement(f, ref);
    }
    c.int8_max_abs_diff = MaxAbsDiff(quantized[i], f);
    c.top1_int8_vs_fp32 = Top1Agreement(quantized[i], f);
    out.push_back(std::move(c));
  }
  return out;
}

// The quantized model run-model compares: int8 lowering with the recorded
// ranges, or weight-only RTN (options.weight_only_bits).
absl::Status LowerForRun(const ModelRunOptions& options, const RangeMap& ranges,
                         Graph& graph, ModelRunReport& report) {
  report.weight_qmax = MaxExactInt8WeightMagnitude();
  report.cpu_isa = CpuIsaName();
  if (options.weight_only_bits == 0) {
    report.quantized_label = "int8";
    return LowerToInt8(graph, ranges, {}, &report.lowering);
  }
  QUANTD_ASSIGN_OR_RETURN(WeightOnlyRun run,
                          LowerWeightOnlyRtn(graph, options.weight_only_bits,
                                             options.weight_only_group_size));
  report.weight_only = run;
  report.quantized_label =
      absl::StrCat("w", options.weight_only_bits,
                   options.weight_only_group_size > 0
                       ? absl::StrCat("g", options.weight_only_group_size)
                       : std::string("pc"));
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<ModelRunReport> RunModel(const ModelRunOptions& options) {
  ModelRunReport report;
  QUANTD_ASSIGN_OR_RETURN(LoadedModel model,
                          LoadModelFromFile(options.model_path));
  report.source_opset = model.source_opset;
  report.opset = model.graph.opset;
  report.producer = model.producer;
  report.conversion_note = model.conversion_note;
  report.nodes_loaded = static_cast<int>(model.graph.nodes.size());
  Graph graph = std::move(model.graph);
  QUANTD_RETURN_IF_ERROR(
      PrepareGraph(graph, DefaultOpRegistry(), &report.prepare));
  report.nodes_prepared = static_cast<int>(graph.nodes.size());

  QUANTD_ASSIGN_OR_RETURN(std::unique_ptr<ArrayFile> data,
                          ArrayFile::Open(options.data_path));
  TensorMap feeds;
  for (const ValueInfo& in : graph.inputs) {
    absl::StatusOr<std::unique_ptr<ArrayStream>> s =
        (data)->OpenStream(in.name);
    if (!s.ok()) {
      return absl::InvalidArgumentError(absl::StrCat(
          "the data file has no array for model input '", in.name, "'"));
    }
    QUANTD_ASSIGN_OR_RETURN(Tensor t, (*s)->ReadRows(options.max_samples));
    report.samples = t.dim(0);
    feeds[in.name] = std::move(t);
  }

  absl::StatusOr<std::unique_ptr<Executor>> fp32 = Executor::Create(graph);
  if (!fp32.ok()) return fp32.status();
  // The fp32 run doubles as calibration of the int8 activation ranges.
  ActivationRangeRecorder recorder(graph);
  RunOptions run_options;
  if (options.weight_only_bits == 0) run_options.tensor_hook = recorder.Hook();
  QUANTD_ASSIGN_OR_RETURN(RunResult fp32_result,
                          (*fp32)->Run(feeds, run_options));
  report.fp32_outputs = fp32_result.outputs;

  Graph quantized_graph = graph;
  QUANTD_RETURN_IF_ERROR(
      LowerForRun(options, recorder.ranges(), quantized_graph, report));
  absl::StatusOr<std::unique_ptr<Executor>> int8 =
      Executor::Create(quantized_graph);
  if (!int8.ok()) return int8.status();
  QUANTD_ASSIGN_OR_RETURN(std::vector<Tensor> int8_outputs,
                          (*int8)->RunOutputs(feeds));

  QUANTD_ASSIGN_OR_RETURN(report.outputs,
                          CompareOutputs(graph, *data, options.max_samples,
                                         report.fp32_outputs, int8_outputs));
  QUANTD_ASSIGN_OR_RETURN(LatencyStats t32,
                          MeasureLatency(**fp32, feeds, options.repeats));
  report.fp32 = t32;
  QUANTD_ASSIGN_OR_RETURN(LatencyStats t8,
                          MeasureLatency(**int8, feeds, options.repeats));
  report.int8 = t8;
  if (options.profile) {
    QUANTD_ASSIGN_OR_RETURN(report.fp32_profile,
                            ProfileOps(**fp32, feeds, options.repeats));
    QUANTD_ASSIGN_OR_RETURN(report.int8_profile,
                            ProfileOps(**int8, feeds, options.repeats));
  }
  return report;
}

}  // namespace quantd
