#include "client/quantize_command.h"

#include <unistd.h>

#include <cstdio>
#include <fstream>
#include <memory>
#include <optional>
#include <sstream>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "client/client.h"
#include "client/exit_codes.h"
#include "client/progress.h"
#include "client/report_table.h"
#include "client/spec_flags.h"
#include "client/transfer_commands.h"
#include "google/protobuf/util/json_util.h"
#include "quantd/v1/service.pb.h"

namespace quantd::client {
namespace {

struct QuantizeArgs {
  std::string model, calib, eval, spec_file, out, request_id, output_uri;
  bool detach = false;
  int priority = 0;
  QuantizeFlags flags;
};

// Follows a job to its end with the progress line on stderr: one updating
// line on a terminal, a line per stage and per 10% otherwise.
absl::Status FollowWithProgress(Client* client, const std::string& name) {
  const bool tty = isatty(STDERR_FILENO) == 1;
  ProgressLine line;
  std::string last_stage;
  int last_decile = -1;
  bool open_line = false;
  absl::Status s = client->Watch(name, 0, [&](const v1::JobEvent& e) {
    if (e.has_progress()) {
      const std::string text = line.Update(e.progress(), absl::Now());
      const int decile = static_cast<int>(e.progress().fraction() * 10);
      if (tty) {
        std::fprintf(stderr, "\r%s\x1b[K", text.c_str());
        open_line = true;
      } else if (e.progress().stage() != last_stage || decile != last_decile) {
        std::fprintf(stderr, "%s\n", text.c_str());
      }
      last_stage = e.progress().stage();
      last_decile = decile;
    } else {
      if (open_line) std::fputc('\n', stderr);
      open_line = false;
      if (e.has_state_change()) {
        std::fprintf(stderr, "%s: %s\n", name.c_str(),
                     StateName(e.state_change()).c_str());
      } else if (!e.message().empty()) {
        std::fprintf(stderr, "%s: %s\n", name.c_str(), e.message().c_str());
      }
    }
    std::fflush(stderr);
    return true;
  });
  if (open_line) std::fputc('\n', stderr);
  return s;
}

absl::StatusOr<v1::JobSpec> ReadSpec(const std::string& path) {
  v1::JobSpec spec;
  if (path.empty()) return spec;
  std::ifstream f(path, std::ios::binary);
  if (!f) {
    return absl::InvalidArgumentError(absl::StrCat("cannot read '", path, "'"));
  }
  std::stringstream text;
  text << f.rdbuf();
  auto s = google::protobuf::util::JsonStringToMessage(text.str(), &spec);
  if (!s.ok()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "--spec '", path, "' is not JobSpec JSON: ", s.message().ToString()));
  }
  return spec;
}

// Points `ref` at `input`: an s3:// URI as is (the server reads it with
// the tenant's credentials), a local file uploaded first. Answers kExitOk,
// or the exit code of the upload that failed (reported on stderr).
int SetInput(Client* client, const std::string& input, v1::BlobKind kind,
             v1::DataRef* ref) {
  if (absl::StartsWith(input, "s3://")) {
    ref->set_uri(input);
    return kExitOk;
  }
  absl::StatusOr<std::string> digest = UploadAndSay(client, input, kind);
  if (!digest.ok()) return Fail(digest.status(), "upload " + input);
  ref->set_blob_sha256(*digest);
  return kExitOk;
}

// MODEL, --calib and --eval into the spec, uploading local files.
int UploadInputs(Client* client, const QuantizeArgs& a, v1::JobSpec* spec) {
  int rc =
      SetInput(client, a.model, v1::BLOB_KIND_MODEL, spec->mutable_model());
  if (rc == kExitOk && !a.calib.empty()) {
    rc = SetInput(client, a.calib, v1::BLOB_KIND_DATASET,
                  spec->mutable_calibration_data());
  }
  if (rc == kExitOk && !a.eval.empty()) {
    rc = SetInput(client, a.eval, v1::BLOB_KIND_DATASET,
                  spec->mutable_evaluation_data());
  }
  if (!a.output_uri.empty()) spec->set_output_uri(a.output_uri);
  return rc;
}

// A local file that exists, or an s3:// URI (checked by the server).
const CLI::Validator kFileOrS3(
    [](std::string& s) -> std::string {
      if (absl::StartsWith(s, "s3://")) return "";
      return CLI::ExistingFile(s);
    },
    "FILE|s3://BUCKET/KEY");

// After the job ended: its outcome, and for SUCCEEDED the model at --out,
// the report beside it and the delta table.
int FinishJob(Client* client, const GlobalOptions& g, const QuantizeArgs& a,
              const std::string& name) {
  absl::StatusOr<v1::Job> job = client->GetJob(name);
  if (!job.ok()) return Fail(job.status(), "get job");
  if (job->state() != v1::JOB_STATE_SUCCEEDED) {
    if (g.json) PrintJson(*job, /*one_line=*/true);
    std::fprintf(stderr, "quantctl: %s %s%s%s\n", job->name().c_str(),
                 StateName(job->state()).c_str(),
                 job->error().empty() ? "" : ": ", job->error().c_str());
    return ExitCodeForJob(job->state());
  }
  const std::string report_path = a.out + ".report.json";
  absl::StatusOr<v1::ArtifactHeader> m =
      client->Download(job->name(), v1::ARTIFACT_KIND_MODEL, a.out);
  if (!m.ok()) return Fail(m.status(), "download the model");
  absl::StatusOr<v1::ArtifactHeader> r =
      client->Download(job->name(), v1::ARTIFACT_KIND_REPORT, report_path);
  if (!r.ok()) return Fail(r.status(), "download the report");
  if (g.json) {
    PrintJson(*job, /*one_line=*/true);  // the last JSON line
  } else {
    std::printf("%s SUCCEEDED\n\n%s\n", job->name().c_str(),
                FormatReportTable(job->report()).c_str());
    std::printf("model       %s (%lld bytes, sha256 %s)\n", a.out.c_str(),
                static_cast<long long>(m->size()), m->sha256().c_str());
    std::printf("report      %s\n", report_path.c_str());
  }
  return kExitOk;
}

int Quantize(const GlobalOptions& g, const QuantizeArgs& a) {
  if (!a.detach && a.out.empty()) {
    return Fail(absl::InvalidArgumentError(
        "--out FILE is required (or --detach to return the job at once)"));
  }
  absl::StatusOr<v1::JobSpec> spec = ReadSpec(a.spec_file);
  if (!spec.ok()) return Fail(spec.status());
  if (absl::Status s = ApplyQuantizeFlags(a.flags, &*spec); !s.ok()) {
    return Fail(s);
  }
  absl::StatusOr<std::unique_ptr<Client>> client = Connect(g);
  if (!client.ok()) return Fail(client.status());
  if (int rc = UploadInputs(client->get(), a, &*spec); rc != kExitOk) {
    return rc;
  }
  absl::StatusOr<v1::Job> job =
      (*client)->CreateJob(*spec, a.request_id, a.priority);
  if (!job.ok()) return Fail(job.status(), "create job");
  if (a.detach) {
    if (g.json) {
      PrintJson(*job);
    } else {
      std::printf("%s\n", job->name().c_str());
    }
    return kExitOk;
  }
  // --json: every event as one JSON line on stdout (machine-readable, as
  // `quantctl jobs watch --json`), then the job; otherwise a progress line.
  absl::Status followed =
      g.json ? (*client)->Watch(job->name(), 0,
                                [](const v1::JobEvent& e) {
                                  PrintJson(e, /*one_line=*/true);
                                  return true;  // to the end
                                })
             : FollowWithProgress(client->get(), job->name());
  if (absl::Status s = followed; !s.ok()) {
    std::fprintf(stderr,
                 "quantctl: lost the job's progress; it continues on the "
                 "server: quantctl jobs watch %s\n",
                 job->name().c_str());
    return Fail(s, "watch " + job->name());
  }
  return FinishJob(client->get(), g, a, job->name());
}

// An option that fills `value` only when given, so that a flag left out
// keeps what --spec says (see spec_flags.h).
template <typename T>
CLI::Option* AddOptional(CLI::App* command, const std::string& name,
                         std::optional<T>* value,
                         const std::string& description) {
  return command->add_option(
      name,
      [value](const CLI::results_t& r) {
        T v;
        if (!CLI::detail::lexical_cast(r[0], v)) return false;
        *value = v;
        return true;
      },
      description);
}

void AddDataOptions(CLI::App* quantize, QuantizeArgs* a) {
  quantize
      ->add_option("MODEL", a->model,
                   "float ONNX model: a file (uploaded) or s3://BUCKET/KEY "
                   "(read by the server with your tenant's keys)")
      ->required()
      ->check(kFileOrS3);
  quantize
      ->add_option("--calib", a->calib,
                   ".npz calibration data (one array per model input; "
                   "needed for static mode and QAT); a file or s3:// URI")
      ->check(kFileOrS3);
  quantize
      ->add_option("--eval", a->eval,
                   ".npz evaluation data (default: a held-back part of "
                   "the calibration data); a file or s3:// URI")
      ->check(kFileOrS3);
}

// The scheme flags ApplyQuantizeFlags turns into the spec.
void AddSchemeOptions(CLI::App* quantize, QuantizeFlags* f) {
  AddOptional(quantize, "--method", &f->method, "ptq (default) or qat")
      ->type_name("ptq|qat");
  AddOptional(quantize, "--mode", &f->mode,
              "static (default), dynamic or weight-only")
      ->type_name("MODE");
  AddOptional(quantize, "--weights", &f->weights,
              "weight type: int8 (default), int4, or int3/int2 (stored as "
              "int4)")
      ->type_name("TYPE");
  AddOptional(quantize, "--granularity", &f->granularity,
              "weights: per-channel (default), per-group or per-tensor")
      ->type_name("G");
  AddOptional(quantize, "--group-size", &f->group_size,
              "per-group: 32, 64 or 128 input channels per group")
      ->type_name("N");
  AddOptional(quantize, "--calibration", &f->calibration,
              "activation ranges: percentile (default), minmax, entropy "
              "or mse")
      ->type_name("METHOD");
  AddOptional(quantize, "--smoothquant", &f->smoothquant_alpha,
              "SmoothQuant with migration strength ALPHA in [0, 1]")
      ->type_name("ALPHA");
  quantize->add_flag("--gptq", f->gptq, "GPTQ error-compensated rounding");
  quantize->add_flag("--awq", f->awq, "AWQ activation-aware scales");
  quantize
      ->add_flag("--learned-rounding{-1}", f->learned_rounding_steps,
                 "learned rounding (AutoRound-style): "
                 "--learned-rounding[=STEPS] sign-gradient steps per layer "
                 "(default 200); with --gptq, starts from its result")
      ->type_name("");
  quantize->add_flag("--bias-correction", f->bias_correction,
                     "correct the bias shift quantization causes");
  quantize->add_flag("--cle", f->cross_layer_equalization,
                     "cross-layer equalization of consecutive convolutions "
                     "(CNNs with depthwise convs)");
  quantize->add_flag("--rotate", f->rotate,
                     "rotate transformers' residual streams (QuaRot-style "
                     "Hadamard folded into the weights) to spread outlier "
                     "channels");
  quantize->add_flag("--rotate-online", f->rotate_online,
                     "also rotate MLP down projections' inputs at run time "
                     "(two small float MatMuls per layer); implies --rotate");
  quantize->add_flag("--rotate-heads", f->rotate_heads,
                     "also rotate each attention head's values (folded into "
                     "the value and output projections); implies --rotate");
  AddOptional(quantize, "--task", &f->task,
              "what the model's first output means: classification, "
              "language-model, fidelity (SQNR only) or segmentation (mask "
              "IoU); default inferred from the model and data")
      ->type_name("TASK");
  AddOptional(quantize, "--max-accuracy-drop", &f->max_accuracy_drop,
              "accuracy target: fall layers back to higher precision "
              "until accuracy drops at most P points")
      ->type_name("P");
  AddOptional(quantize, "--max-weight-bytes", &f->max_weight_bytes,
              "size budget: the most accurate per-layer precisions whose "
              "weights fit in BYTES (instead of an accuracy target)")
      ->type_name("BYTES");
  AddOptional(quantize, "--max-perplexity-increase",
              &f->max_perplexity_increase,
              "language models: perplexity may rise at most P percent")
      ->type_name("P");
  quantize
      ->add_option("--label", f->labels,
                   "key=value label of the job (repeatable); 'model' "
                   "labels the server's accuracy metrics")
      ->allow_extra_args(false);
}

// --spec, --out and how the job is created and followed.
void AddJobOptions(CLI::App* quantize, QuantizeArgs* a) {
  quantize
      ->add_option("--spec", a->spec_file,
                   "a full JobSpec as protobuf JSON; the flags above "
                   "override its fields, MODEL/--calib/--eval its data")
      ->check(CLI::ExistingFile);
  quantize->add_option("--out", a->out,
                       "where the quantized model goes; the report goes to "
                       "FILE.report.json (required without --detach)");
  quantize->add_option("--output-uri", a->output_uri,
                       "s3://BUCKET[/PREFIX]: the server also writes "
                       "PREFIX/model.onnx and PREFIX/report.json there "
                       "(e.g. a KServe storageUri)");
  quantize->add_option("--request-id", a->request_id,
                       "idempotency key: repeating the call with it returns "
                       "the same job");
  quantize
      ->add_option("--priority", a->priority,
                   "in [-100, 100]; higher runs first")
      ->capture_default_str();
  quantize->add_flag("--detach", a->detach,
                     "print the job name and return once the job is created");
}

}  // namespace

void AddQuantizeCommand(CLI::App* app, CommandContext* context) {
  auto args = std::make_shared<QuantizeArgs>();
  CLI::App* quantize = app->add_subcommand(
      "quantize",
      "Upload MODEL and its data, run a quantization job, show its progress, "
      "print the accuracy delta table and download the model to --out and "
      "the report to FILE.report.json");
  // --help lists options in the order they are added.
  AddDataOptions(quantize, args.get());
  AddSchemeOptions(quantize, &args->flags);
  AddJobOptions(quantize, args.get());
  quantize->footer(SubcommandFooter());
  OnParsed(quantize, context,
           [context, args] { return Quantize(context->global, *args); });
}

}  // namespace quantd::client
