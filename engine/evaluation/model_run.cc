#include "engine/evaluation/model_run.h"

#include <algorithm>
#include <cmath>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "engine/data/array_file.h"
#include "engine/runtime/executor.h"
#include "kernels/dnnl_context.h"
#include "kernels/post_ops.h"
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
                                            const TensorMap& feeds,
                                            int repeats) {
  // One untimed run creates the oneDNN primitives and packs weights.
  if (absl::StatusOr<std::vector<Tensor>> w = ex.RunOutputs(feeds); !w.ok()) {
    return w.status();
  }
  std::vector<double> ms;
  for (int i = 0; i < repeats; ++i) {
    absl::Time start = absl::Now();
    QUANTD_RETURN_IF_ERROR((ex.RunOutputs(feeds)).status());
    ms.push_back(absl::ToDoubleMilliseconds(absl::Now() - start));
  }
  return SummarizeLatencies(std::move(ms));
}

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
  run_options.tensor_hook = recorder.Hook();
  QUANTD_ASSIGN_OR_RETURN(RunResult fp32_result,
                          (*fp32)->Run(feeds, run_options));
  report.fp32_outputs = fp32_result.outputs;

  Graph int8_graph = graph;
  report.weight_qmax = MaxExactInt8WeightMagnitude();
  report.cpu_isa = CpuIsaName();
  QUANTD_RETURN_IF_ERROR(
      LowerToInt8(int8_graph, recorder.ranges(), {}, &report.lowering));
  absl::StatusOr<std::unique_ptr<Executor>> int8 = Executor::Create(int8_graph);
  if (!int8.ok()) return int8.status();
  QUANTD_ASSIGN_OR_RETURN(std::vector<Tensor> int8_outputs,
                          (*int8)->RunOutputs(feeds));

  for (size_t i = 0; i < graph.outputs.size(); ++i) {
    OutputComparison c;
    c.name = graph.outputs[i].name;
    const Tensor& f = report.fp32_outputs[i];
    c.shape = f.shape();
    if ((data)->Contains(c.name)) {
      QUANTD_ASSIGN_OR_RETURN(std::unique_ptr<ArrayStream> s,
                              (data)->OpenStream(c.name));
      QUANTD_ASSIGN_OR_RETURN(Tensor ref, (s)->ReadRows(options.max_samples));
      c.has_reference = true;
      c.fp32_max_abs_diff = MaxAbsDiff(f, ref);
      c.top1_fp32_vs_reference = Top1Agreement(f, ref);
    }
    c.int8_max_abs_diff = MaxAbsDiff((int8_outputs)[i], f);
    c.top1_int8_vs_fp32 = Top1Agreement((int8_outputs)[i], f);
    report.outputs.push_back(std::move(c));
  }
  QUANTD_ASSIGN_OR_RETURN(LatencyStats t32,
                          MeasureLatency(**fp32, feeds, options.repeats));
  report.fp32 = t32;
  QUANTD_ASSIGN_OR_RETURN(LatencyStats t8,
                          MeasureLatency(**int8, feeds, options.repeats));
  report.int8 = t8;
  return report;
}

}  // namespace quantd
