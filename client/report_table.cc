#include "client/report_table.h"

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"

namespace quantd::client {
namespace {

std::string Row(const char* name, const v1::EvaluationMetrics& m,
                bool language_model) {
  std::string metric = "-", delta = "-";
  if (language_model) {
    metric = absl::StrFormat("%.3f -> %.3f", m.float_perplexity(),
                             m.quantized_perplexity());
    delta = absl::StrFormat("%+.2f%%", m.perplexity_delta_percent());
  } else if (m.task() == "segmentation") {
    metric = absl::StrFormat("mask IoU %.4f", m.mask_iou());
  } else if (m.has_labels()) {
    metric = absl::StrFormat("%.2f%% -> %.2f%%", 100 * m.float_accuracy(),
                             100 * m.quantized_accuracy());
    delta = absl::StrFormat("%+.2f pt", m.accuracy_delta_points());
  }
  // Output-fidelity and segmentation tasks have no classes to agree on.
  const std::string top1 =
      m.task() == "output_fidelity" || m.task() == "segmentation"
          ? "-"
          : absl::StrFormat("%.2f%%", 100 * m.top1_agreement());
  return absl::StrFormat("%-11s %9s  %-24s %-11s %7.2f dB\n", name, top1,
                         metric, delta, m.output_sqnr_db());
}

}  // namespace

std::string FormatReportTable(const v1::QuantizationReport& report) {
  const bool lm = report.int8().is_language_model() ||
                  report.fake_quant().is_language_model();
  std::string out = absl::StrFormat(
      "%-11s %9s  %-24s %-11s %10s\n", "", "top-1 agr",
      lm ? "perplexity (float->q)" : "accuracy (float->q)", "delta", "SQNR");
  absl::StrAppend(&out, Row("fake-quant", report.fake_quant(), lm));
  absl::StrAppend(&out, Row("int8", report.int8(), lm));
  const v1::SizeReport& size = report.size();
  absl::StrAppend(
      &out,
      absl::StrFormat("size        %.2f MB -> %.2f MB (%.2fx smaller)\n",
                      size.float_bytes() / 1e6, size.quantized_bytes() / 1e6,
                      size.compression_ratio()));
  const v1::PerformanceReport& perf = report.performance();
  absl::StrAppend(
      &out, absl::StrFormat("speedup     %.2fx (float %.3f ms, int8 %.3f ms, "
                            "batch %d, %d threads, %s)\n",
                            perf.speedup(), perf.float_latency_ms(),
                            perf.quantized_latency_ms(), perf.batch_size(),
                            perf.threads(), perf.cpu_isa()));
  // What "int8" ran on (oneDNN int8, or the weight-only kernel for
  // WEIGHT_ONLY jobs) and the weight bytes each model held; servers before
  // these fields leave them empty.
  if (!perf.quantized_kernels().empty()) {
    absl::StrAppend(
        &out, absl::StrFormat("kernels     %s; weights %.2f MB -> %.2f MB in "
                              "memory\n",
                              perf.quantized_kernels(),
                              perf.float_weight_bytes() / 1e6,
                              perf.quantized_weight_bytes() / 1e6));
  }
  if (report.has_size_budget()) {
    const v1::SizeBudgetReport& b = report.size_budget();
    absl::StrAppend(
        &out,
        absl::StrFormat("budget      %d weight bytes: planned %d (%s; "
                        "metric knapsack %.2f, sensitivity order %.2f)\n",
                        b.budget_bytes(), b.planned_bytes(), b.chosen(),
                        b.knapsack_metric(), b.sensitivity_order_metric()));
  }
  if (!report.accuracy_target_message().empty()) {
    absl::StrAppend(&out, "target      ",
                    report.accuracy_target_met() ? "met: " : "NOT met: ",
                    report.accuracy_target_message(), "\n");
  }
  return out;
}

}  // namespace quantd::client
