#include "server/run_job_command.h"

#include <cstdio>

#include "absl/strings/str_format.h"
#include "engine/job_spec.h"
#include "engine/model_loader.h"
#include "engine/ptq_pipeline.h"
#include "server/exit_codes.h"

namespace quantd {
namespace {

constexpr char kUsage[] =
    R"(usage: quantd run-job --spec FILE --out DIR [--quiet]

Runs one quantization job without a server: reads the job spec (the
JobSpec message of proto/quantd/v1/job_spec.proto, as protobuf JSON),
quantizes, evaluates against the float model, and writes into DIR:
  model.quant.onnx   the quantized model (QDQ ONNX)
  report.json        the QuantizationReport
Both appear together or not at all. In the spec, model/data refs use
"path" (relative to the current directory); blob digests need the server.
examples/ holds specs for static W8A8, dynamic, int4 weight-only with
GPTQ or AWQ, SmoothQuant, bias correction and accuracy targets.

  --spec FILE   job spec, protobuf JSON (at most 1 MiB)
  --out DIR     output folder (created if missing)
  --quiet       no progress lines
  --help        this text

Exit codes: 0 success, 2 bad input (spec, model, data), 1 other failure.
)";

std::string PathOf(const v1::DataRef& ref) {
  return ref.source_case() == v1::DataRef::kPath ? ref.path() : "";
}

}  // namespace

int RunJobCommand(const std::vector<std::string>& args) {
  std::string spec_path, out_dir;
  bool quiet = false;
  for (size_t i = 0; i < args.size(); ++i) {
    const std::string& a = args[i];
    if (a == "--help" || a == "-h") {
      std::fputs(kUsage, stdout);
      return kExitOk;
    } else if ((a == "--spec" || a == "--out") && i + 1 < args.size()) {
      (a == "--spec" ? spec_path : out_dir) = args[++i];
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
  if (absl::Status s = CreateOutputFolder(out_dir); !s.ok()) {
    std::fprintf(stderr, "quantd run-job: %s\n",
                 std::string(s.message()).c_str());
    return kExitBadInput;
  }
  JobPaths paths{PathOf(spec->model()), PathOf(spec->calibration_data()),
                 PathOf(spec->evaluation_data())};
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
  absl::StatusOr<PipelineResult> result =
      RunPtqPipeline(*spec, paths, progress);
  if (!result.ok()) {
    std::fprintf(stderr, "quantd run-job: %s\n",
                 std::string(result.status().message()).c_str());
    return ExitCodeFor(result.status());
  }
  if (absl::Status s = WriteArtifacts(out_dir, *result); !s.ok()) {
    std::fprintf(stderr, "quantd run-job: %s\n",
                 std::string(s.message()).c_str());
    return ExitCodeFor(s);
  }
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
