#include "server/run_job_command.h"

#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <cstdio>

#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "engine/onnx/model_loader.h"
#include "engine/pipeline/job_spec.h"
#include "engine/pipeline/pipeline.h"
#include "prometheus/gateway.h"
#include "server/exit_codes.h"
#include "server/metrics.h"

namespace quantd {
namespace {

constexpr char kUsage[] =
    R"(usage: quantd run-job --spec FILE --out DIR [--quiet]
                      [--push-gateway HOST:PORT [--push-job NAME]]

Runs one quantization job without a server: reads the job spec (the
JobSpec message of proto/quantd/v1/job_spec.proto, as protobuf JSON),
quantizes, evaluates against the float model, and writes into DIR:
  model.quant.onnx   the quantized model (QDQ ONNX)
  report.json        the QuantizationReport
Both appear together or not at all. QAT jobs checkpoint into
DIR/.quantd-qat-checkpoint.npz (qat.checkpoint_every_steps); a rerun with
the same DIR resumes from it, and it is removed when the job succeeds.
In the spec, model/data refs use "path" (relative to the current
directory); blob digests need the server.
examples/ holds specs for static W8A8, dynamic, int4 weight-only with
GPTQ or AWQ, SmoothQuant, bias correction and accuracy targets.

  --spec FILE   job spec, protobuf JSON (at most 1 MiB)
  --out DIR     output folder (created if missing)
  --quiet       no progress lines
  --push-gateway HOST:PORT
                push the job's metrics (docs/METRICS.md: jobs finished,
                durations, stage durations, accuracy/perplexity delta, size
                ratio, speedup) to a Prometheus Pushgateway when it ends, so
                batch runs appear on the same dashboards as the service
  --push-job NAME  the Pushgateway job label (default quantd-batch); the
                instance label is the host name
  --help        this text

Exit codes (for scripts and Kubernetes podFailurePolicy):
  0  success
  1  a failure that may succeed on retry (I/O, resources, internal)
  2  bad input: spec, model or data (do not retry)
  3  interrupted by SIGTERM or SIGINT before it finished (retry); nothing
     was written to DIR
A failed push to the Pushgateway is reported on stderr and does not change
the exit code: the artifacts are the job's result.
)";

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
    (*m)->JobQuality(method, model == spec.labels().end() ? "" : model->second,
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

}  // namespace

int RunJobCommand(const std::vector<std::string>& args) {
  std::string spec_path, out_dir, push_gateway, push_job = "quantd-batch";
  bool quiet = false;
  for (size_t i = 0; i < args.size(); ++i) {
    const std::string& a = args[i];
    if (a == "--help" || a == "-h") {
      std::fputs(kUsage, stdout);
      return kExitOk;
    } else if ((a == "--spec" || a == "--out") && i + 1 < args.size()) {
      (a == "--spec" ? spec_path : out_dir) = args[++i];
    } else if ((a == "--push-gateway" || a == "--push-job") &&
               i + 1 < args.size()) {
      (a == "--push-gateway" ? push_gateway : push_job) = args[++i];
    } else if (a == "--quiet") {
      quiet = true;
    } else {
      std::fprintf(stderr, "quantd run-job: unexpected argument '%s'\n%s",
                   a.c_str(), kUsage);
      return kExitBadInput;
    }
  }
  if (spec_path.empty() || out_dir.empty()) {
    std::fprintf(stderr, "quantd run-job: --spec and --out are required\n%s",
                 kUsage);
    return kExitBadInput;
  }
  absl::StatusOr<std::string> text =
      ReadFileBounded(spec_path, kMaxJobSpecBytes);
  absl::StatusOr<v1::JobSpec> spec =
      text.ok() ? ParseJobSpecJson(*text)
                : absl::StatusOr<v1::JobSpec>(text.status());
  if (!spec.ok()) {
    std::fprintf(stderr, "quantd run-job: %s\n",
                 std::string(spec.status().message()).c_str());
    return ExitCodeFor(spec.status());
  }
  absl::StatusOr<JobPlan> plan =
      PlanJob(*spec, SpecOrigin::kBatch, LocalPathResolver());
  if (!plan.ok()) {
    std::fprintf(stderr, "quantd run-job: %s\n",
                 std::string(plan.status().message()).c_str());
    return ExitCodeFor(plan.status());
  }
  if (absl::Status s = CreateOutputFolder(out_dir); !s.ok()) {
    std::fprintf(stderr, "quantd run-job: %s\n",
                 std::string(s.message()).c_str());
    return kExitBadInput;
  }
  std::string last_stage;
  int last_percent = -1;
  ProgressCallback progress = [&](const ProgressEvent& e) {
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
  // SIGTERM (a pod being evicted) or SIGINT cancels the pipeline between
  // batches: nothing is written, and exit code 3 says "run it again".
  signal(SIGTERM, OnSignal);
  signal(SIGINT, OnSignal);
  // QAT checkpoints sit in the output folder, so that a rerun of an
  // interrupted job (a retried Kubernetes Job) resumes; removed on success.
  PipelineOptions pipeline_options;
  pipeline_options.checkpoint_path =
      absl::StrCat(out_dir, "/.quantd-qat-checkpoint.npz");
  const absl::Time start = absl::Now();
  absl::StatusOr<PipelineResult> result =
      RunPipeline(*plan, progress, &g_interrupted, pipeline_options);
  const double seconds = absl::ToDoubleSeconds(absl::Now() - start);
  auto push = [&](const std::string& outcome,
                  const v1::QuantizationReport* report) {
    if (push_gateway.empty()) return;
    const std::string why =
        PushMetrics(push_gateway, push_job, *spec, outcome, seconds, report);
    if (!why.empty()) {
      std::fprintf(stderr, "quantd run-job: metrics not pushed: %s\n",
                   why.c_str());
    }
  };
  if (!result.ok() && g_interrupted) {
    std::fprintf(stderr,
                 "quantd run-job: interrupted by a signal; nothing was "
                 "written to '%s'\n",
                 out_dir.c_str());
    push("cancelled", nullptr);
    return kExitInterrupted;
  }
  if (!result.ok()) {
    std::fprintf(stderr, "quantd run-job: %s\n",
                 std::string(result.status().message()).c_str());
    push("failed", nullptr);
    return ExitCodeFor(result.status());
  }
  if (absl::Status s = WriteArtifacts(out_dir, *result); !s.ok()) {
    std::fprintf(stderr, "quantd run-job: %s\n",
                 std::string(s.message()).c_str());
    return ExitCodeFor(s);
  }
  push("succeeded", &result->report);
  std::remove(pipeline_options.checkpoint_path.c_str());
  const v1::QuantizationReport& r = result->report;
  auto print_metrics = [](const char* name, const v1::EvaluationMetrics& m) {
    if (m.samples() == 0) return;
    std::printf("%-11s top-1 agreement %.2f%%", name, 100 * m.top1_agreement());
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
  };
  print_metrics("fake-quant", r.fake_quant());
  print_metrics("int8", r.int8());
  std::printf("size        %lld -> %lld bytes (%.2fx smaller)\n",
              static_cast<long long>(r.size().float_bytes()),
              static_cast<long long>(r.size().quantized_bytes()),
              r.size().compression_ratio());
  if (r.performance().batch_size() > 0) {
    std::printf("latency     batch %lld: fp32 %.3f ms, int8 %.3f ms (%.2fx)\n",
                static_cast<long long>(r.performance().batch_size()),
                r.performance().float_latency_ms(),
                r.performance().quantized_latency_ms(),
                r.performance().speedup());
  }
  // The layers most worth a look: the fallback's choices, and the lowest
  // output SQNR.
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
  for (const std::string& w : r.warnings()) {
    std::printf("note        %s\n", w.c_str());
  }
  std::printf("wrote       %s/%s and %s/%s\n", out_dir.c_str(), kModelArtifact,
              out_dir.c_str(), kReportArtifact);
  return kExitOk;
}

}  // namespace quantd
