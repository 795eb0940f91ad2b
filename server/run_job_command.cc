#include "server/run_job_command.h"

#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "engine/onnx/model_loader.h"
#include "engine/pipeline/job_spec.h"
#include "engine/pipeline/pipeline.h"
#include "prometheus/gateway.h"
#include "server/exit_codes.h"
#include "server/metrics.h"
#include "util/status_macros.h"

namespace quantd {
namespace {

std::atomic<bool> g_interrupted{false};

void OnSignal(int) { g_interrupted = true; }

// Pushes the finished job's figures; "" on success, else why not.
std::string PushMetrics(const std::string& gateway, const std::string& job,
                        const v1::JobSpec& spec, const std::string& outcome,
                        double seconds, const v1::QuantizationReport* report) {
  std::vector<std::string> host_port =
      absl::StrSplit(gateway, absl::MaxSplits(':', 1));
  if (host_port.size() != 2 || host_port[0].empty() || host_port[1].empty()) {
    return "--push-gateway must be HOST:PORT";
  }
  MetricsOptions options;
  options.listen_address = "";
  absl::StatusOr<std::unique_ptr<ServiceMetrics>> m =
      ServiceMetrics::Create(options);
  if (!m.ok()) return std::string(m.status().message());
  const std::string method = spec.method() == v1::METHOD_QAT ? "qat" : "ptq";
  (*m)->JobFinished(method, outcome, seconds);
  if (report != nullptr) {
    for (const v1::StageTiming& st : report->stages()) {
      (*m)->StageFinished(
          st.stage(), st.duration().seconds() + st.duration().nanos() / 1e9);
    }
    auto model = spec.labels().find("model");
    // One job, one operator: no tenant.
    (*m)->JobQuality(method, /*tenant=*/"",
                     model == spec.labels().end() ? "" : model->second,
                     *report);
  }
  char host[256] = {0};
  gethostname(host, sizeof(host) - 1);
  try {
    prometheus::Gateway gw(host_port[0], host_port[1], job,
                           prometheus::Gateway::GetInstanceLabel(host));
    gw.RegisterCollectable((*m)->shared_registry());
    const int code = gw.Push();
    if (code < 200 || code >= 300) {
      return absl::StrFormat("the Pushgateway at %s answered HTTP %d", gateway,
                             code);
    }
  } catch (const std::exception& e) {
    return e.what();
  }
  return "";
}

// With --push-gateway: pushes, and says on stderr if that failed (which
// does not change the exit code: the artifacts are the job's result).
void MaybePushMetrics(const RunJobFlags& flags, const v1::JobSpec& spec,
                      const std::string& outcome, double seconds,
                      const v1::QuantizationReport* report) {
  if (flags.push_gateway.empty()) return;
  const std::string why = PushMetrics(flags.push_gateway, flags.push_job, spec,
                                      outcome, seconds, report);
  if (!why.empty()) {
    std::fprintf(stderr, "quantd run-job: metrics not pushed: %s\n",
                 why.c_str());
  }
}

// Progress on stderr: a line per stage and per 10%, none with --quiet.
ProgressCallback ProgressPrinter(bool quiet) {
  return [quiet, last_stage = std::string(),
          last_percent = -1](const ProgressEvent& e) mutable {
    if (quiet) return;
    const int percent = static_cast<int>(100 * e.fraction);
    if (e.stage == last_stage && percent / 10 == last_percent / 10) return;
    last_stage = e.stage;
    last_percent = percent;
    std::fprintf(stderr, "[%-20s] %3d%%%s%s\n", e.stage.c_str(), percent,
                 e.samples_done > 0
                     ? absl::StrFormat("  %d samples", e.samples_done).c_str()
                     : "",
                 e.message.empty() ? "" : ("  " + e.message).c_str());
  };
}

absl::StatusOr<v1::JobSpec> ReadSpec(const std::string& path) {
  QUANTD_ASSIGN_OR_RETURN(std::string text,
                          ReadFileBounded(path, kMaxJobSpecBytes));
  return ParseJobSpecJson(text);
}

void PrintEvaluation(const char* name, const v1::EvaluationMetrics& m) {
  if (m.samples() == 0) return;
  // Output-fidelity and segmentation tasks have no classes to agree on.
  const bool has_top1 =
      m.task() != "output_fidelity" && m.task() != "segmentation";
  std::printf("%-11s %s", name, has_top1 ? "" : m.task().c_str());
  if (has_top1) std::printf("top-1 agreement %.2f%%", 100 * m.top1_agreement());
  if (m.task() == "segmentation") std::printf(", mask IoU %.4f", m.mask_iou());
  if (m.has_labels()) {
    std::printf(", accuracy %.2f%% -> %.2f%% (delta %+.2f points)",
                100 * m.float_accuracy(), 100 * m.quantized_accuracy(),
                m.accuracy_delta_points());
  }
  if (m.is_language_model()) {
    std::printf(", perplexity %.3f -> %.3f (%+.2f%%)", m.float_perplexity(),
                m.quantized_perplexity(), m.perplexity_delta_percent());
  }
  std::printf(", output SQNR %.1f dB\n", m.output_sqnr_db());
}

// The layers most worth a look: the fallback's choices, and the lowest
// output SQNR.
void PrintLayers(const v1::QuantizationReport& r) {
  for (const v1::FallbackStep& f : r.fallback_steps()) {
    std::printf("fallback    %s: %s -> %s (%s %.3g after)\n", f.node().c_str(),
                f.from_precision().c_str(), f.to_precision().c_str(),
                r.sensitivity_metric().c_str(), f.metric_after());
  }
  if (!r.accuracy_target_message().empty()) {
    std::printf("target      %s\n", r.accuracy_target_message().c_str());
  }
  const v1::LayerReport* worst = nullptr;
  for (const v1::LayerReport& l : r.layers()) {
    if (l.weight_precision() != "float" &&
        (worst == nullptr || l.output_sqnr_db() < worst->output_sqnr_db())) {
      worst = &l;
    }
  }
  if (worst != nullptr) {
    std::printf("worst layer %s (%s): output SQNR %.1f dB\n",
                worst->node().c_str(), worst->weight_precision().c_str(),
                worst->output_sqnr_db());
  }
}

// Time and peak memory of the stages that did something (> 50 ms), so a
// user sees where a large model's time and memory go.
void PrintStages(const v1::QuantizationReport& r) {
  std::string line;
  const v1::StageTiming* peak = nullptr;
  for (const v1::StageTiming& st : r.stages()) {
    const double s = st.duration().seconds() + st.duration().nanos() / 1e9;
    if (peak == nullptr || st.peak_rss_bytes() > peak->peak_rss_bytes()) {
      peak = &st;
    }
    if (s < 0.05) continue;
    absl::StrAppend(&line, line.empty() ? "" : ", ", st.stage(), " ",
                    absl::StrFormat("%.1f s", s));
    if (st.peak_rss_bytes() > 0) {
      absl::StrAppend(&line,
                      absl::StrFormat(" (%.2f GB)", st.peak_rss_bytes() / 1e9));
    }
  }
  std::printf("stages      %s\n", line.c_str());
  if (peak != nullptr && peak->peak_rss_bytes() > 0) {
    std::printf("memory      peak RSS %.2f GB, in %s\n",
                peak->peak_rss_bytes() / 1e9, peak->stage().c_str());
  }
}

void PrintSummary(const PipelineResult& result, const std::string& dir) {
  const v1::QuantizationReport& r = result.report;
  PrintEvaluation("fake-quant", r.fake_quant());
  const char* quantized =
      r.spec().mode() == v1::QUANT_MODE_WEIGHT_ONLY ? "weight-only" : "int8";
  PrintEvaluation(quantized, r.int8());
  std::printf("size        %lld -> %lld bytes (%.2fx smaller)\n",
              static_cast<long long>(r.size().float_bytes()),
              static_cast<long long>(r.size().quantized_bytes()),
              r.size().compression_ratio());
  if (r.performance().batch_size() > 0) {
    std::printf(
        "latency     batch %lld, %d threads, %s: fp32 %.3f ms, %s %.3f ms "
        "(%.2fx)\n",
        static_cast<long long>(r.performance().batch_size()),
        r.performance().threads(), r.performance().cpu_isa().c_str(),
        r.performance().float_latency_ms(), quantized,
        r.performance().quantized_latency_ms(), r.performance().speedup());
    std::printf("kernels     %s\n",
                r.performance().quantized_kernels().c_str());
    std::printf("weights     %.1f -> %.1f MB in memory\n",
                r.performance().float_weight_bytes() / 1e6,
                r.performance().quantized_weight_bytes() / 1e6);
  }
  PrintLayers(r);
  PrintStages(r);
  for (const std::string& w : r.warnings()) {
    std::printf("note        %s\n", w.c_str());
  }
  std::printf("wrote       %s/%s and %s/%s\n", dir.c_str(), kModelArtifact,
              dir.c_str(), kReportArtifact);
  if (!result.model_external_data.empty()) {
    std::printf("            %s/%s (the model's weights; keep it beside it)\n",
                dir.c_str(), kModelDataArtifact);
  }
}

// Plans, runs and writes the job; an error's code picks the exit code
// (CancelledError: interrupted by a signal).
absl::Status RunJob(const RunJobFlags& flags) {
  QUANTD_ASSIGN_OR_RETURN(v1::JobSpec spec, ReadSpec(flags.spec_path));
  QUANTD_ASSIGN_OR_RETURN(
      JobPlan plan, PlanJob(spec, SpecOrigin::kBatch, LocalPathResolver()));
  // Checked before the run, which may take hours; whatever the cause, an
  // output folder that cannot be made is the caller's to fix.
  if (absl::Status s = CreateOutputFolder(flags.out_dir); !s.ok()) {
    return absl::InvalidArgumentError(s.message());
  }
  // SIGTERM (a pod being evicted) or SIGINT cancels the pipeline between
  // batches: nothing is written, and exit code 3 says "run it again".
  signal(SIGTERM, OnSignal);
  signal(SIGINT, OnSignal);
  // QAT checkpoints sit in the output folder, so that a rerun of an
  // interrupted job (a retried Kubernetes Job) resumes; removed on success.
  PipelineOptions pipeline_options;
  pipeline_options.checkpoint_path =
      absl::StrCat(flags.out_dir, "/.quantd-qat-checkpoint.npz");
  pipeline_options.measure_stage_memory = true;  // one job in this process
  const absl::Time start = absl::Now();
  absl::StatusOr<PipelineResult> result = RunPipeline(
      plan, ProgressPrinter(flags.quiet), &g_interrupted, pipeline_options);
  const double seconds = absl::ToDoubleSeconds(absl::Now() - start);
  if (!result.ok()) {
    const bool interrupted = g_interrupted;
    MaybePushMetrics(flags, spec, interrupted ? "cancelled" : "failed", seconds,
                     nullptr);
    if (!interrupted) return result.status();
    return absl::CancelledError(
        absl::StrCat("interrupted by a signal; nothing was written to '",
                     flags.out_dir, "'"));
  }
  if (absl::Status s = WriteArtifacts(flags.out_dir, *result); !s.ok()) {
    return s;
  }
  MaybePushMetrics(flags, spec, "succeeded", seconds, &result->report);
  std::remove(pipeline_options.checkpoint_path.c_str());
  PrintSummary(*result, flags.out_dir);
  return absl::OkStatus();
}

}  // namespace

int RunJobCommand(const RunJobFlags& flags) {
  const absl::Status s = RunJob(flags);
  if (s.ok()) return kExitOk;
  std::fprintf(stderr, "quantd run-job: %s\n",
               std::string(s.message()).c_str());
  if (s.code() == absl::StatusCode::kCancelled && g_interrupted) {
    return kExitInterrupted;
  }
  return ExitCodeFor(s);
}

}  // namespace quantd
