#include "server/run_job_flags.h"

#include "server/command_flags.h"

namespace quantd {
namespace {

constexpr char kSummary[] =
    "run a quantization job from a JSON job spec and write the quantized "
    "model and its report\n"
    "(quantd run-job --help for its options)";

constexpr char kDescription[] =
    R"(Runs one quantization job without a server: reads the job spec (the
JobSpec message of proto/quantd/v1/job_spec.proto, as protobuf JSON),
quantizes, evaluates against the float model, and writes into DIR:
  model.quant.onnx       the quantized model (QDQ ONNX)
  model.quant.onnx.data  its weights, when they are kept outside the .onnx
                         file (models loaded with external data, or past
                         protobuf's 2 GiB); keep it beside the model
  report.json            the QuantizationReport
They appear together or not at all. The summary printed at the end
gives the accuracy figures, size, latency, and each stage's time and peak
memory (also in the report: stages[].peakRssBytes). QAT jobs checkpoint into
DIR/.quantd-qat-checkpoint.npz (qat.checkpoint_every_steps); a rerun with
the same DIR resumes from it, and it is removed when the job succeeds.
In the spec, model/data refs use "path" (relative to the current
directory); blob digests need the server.
examples/ holds specs for static W8A8, dynamic, int4 weight-only with
GPTQ or AWQ, SmoothQuant, bias correction and accuracy targets.
)";

constexpr char kFooter[] =
    R"(Exit codes (for scripts and Kubernetes podFailurePolicy):
  0  success
  1  a failure that may succeed on retry (I/O, resources, internal)
  2  bad input: spec, model or data (do not retry)
  3  interrupted by SIGTERM or SIGINT before it finished (retry); nothing
     was written to DIR
A failed push to the Pushgateway is reported on stderr and does not change
the exit code: the artifacts are the job's result.)";

}  // namespace

CLI::App* AddRunJobCommand(CLI::App& app, RunJobFlags* flags) {
  CLI::App* cmd = AddCommand(app, "run-job", kSummary, kDescription, kFooter);
  // --spec and --out are checked by CheckRunJobFlags, not CLI11's
  // required(), to keep the one message for both that scripts know.
  cmd->add_option("--spec", flags->spec_path,
                  "job spec, protobuf JSON (at most 1 MiB); required")
      ->type_name("FILE");
  cmd->add_option("--out", flags->out_dir,
                  "output folder (created if missing); required")
      ->type_name("DIR");
  cmd->add_flag("--quiet", flags->quiet, "no progress lines");
  cmd->add_option("--push-gateway", flags->push_gateway,
                  "push the job's metrics (docs/METRICS.md: jobs finished, "
                  "durations, stage durations, accuracy/perplexity delta, "
                  "size ratio, speedup) to a Prometheus Pushgateway when it "
                  "ends, so batch runs appear on the same dashboards as the "
                  "service")
      ->type_name("HOST:PORT");
  cmd->add_option("--push-job", flags->push_job,
                  "the Pushgateway job label; the instance label is the "
                  "host name")
      ->type_name("NAME")
      ->capture_default_str();
  cmd->callback([flags] { ThrowIfError(CheckRunJobFlags(*flags)); });
  return cmd;
}

absl::Status CheckRunJobFlags(const RunJobFlags& flags) {
  if (flags.spec_path.empty() || flags.out_dir.empty()) {
    return absl::InvalidArgumentError("--spec and --out are required");
  }
  return absl::OkStatus();
}

}  // namespace quantd
