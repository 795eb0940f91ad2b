// quantctl: the command-line client of quantd serve, built on client.h.
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/time/clock.h"
#include "client/client.h"
#include "client/exit_codes.h"
#include "client/progress.h"
#include "client/report_table.h"
#include "client/spec_flags.h"
#include "google/protobuf/util/json_util.h"
#include "google/protobuf/util/time_util.h"

#ifndef QUANTD_VERSION
#define QUANTD_VERSION "dev"
#endif

namespace quantd::client {
namespace {

struct Global {
  std::string server = "127.0.0.1:50051";
  std::string token;
  std::string tls_ca;
  bool json = false;
};

// A failed call: the message on stderr, the exit code from its status.
int Fail(const absl::Status& s, const std::string& what = "") {
  std::fprintf(stderr, "quantctl: %s%s%s (%s)\n", what.c_str(),
               what.empty() ? "" : ": ", std::string(s.message()).c_str(),
               absl::StatusCodeToString(s.code()).c_str());
  return ExitCodeFor(s.code());
}

std::string Json(const google::protobuf::Message& m, bool one_line) {
  std::string out;
  google::protobuf::util::JsonPrintOptions options;
  options.add_whitespace = !one_line;
  (void)google::protobuf::util::MessageToJsonString(m, &out, options);
  if (!one_line && !out.empty() && out.back() == '\n') out.pop_back();
  return out;
}

void PrintJson(const google::protobuf::Message& m, bool one_line = false) {
  std::cout << Json(m, one_line) << std::endl;
}

std::string StateName(v1::JobState s) {
  std::string n = v1::JobState_Name(s);
  if (absl::StartsWith(n, "JOB_STATE_")) n = n.substr(10);
  return n;
}

absl::StatusOr<v1::JobState> ParseState(const std::string& text) {
  v1::JobState s;
  if (!v1::JobState_Parse("JOB_STATE_" + absl::AsciiStrToUpper(text), &s) ||
      s == v1::JOB_STATE_UNSPECIFIED) {
    return absl::InvalidArgumentError(absl::StrCat(
        "--state takes queued, running, succeeded, failed, cancelling or "
        "cancelled; got '",
        text, "'"));
  }
  return s;
}

// "abc" and "jobs/abc" both name the job "jobs/abc".
std::string JobName(const std::string& name) {
  return absl::StartsWith(name, "jobs/") ? name : "jobs/" + name;
}

std::string Time(const google::protobuf::Timestamp& t) {
  if (t.seconds() == 0 && t.nanos() == 0) return "-";
  return google::protobuf::util::TimeUtil::ToString(t);
}

std::string ProgressText(const v1::Progress& p) {
  if (p.stage().empty()) return "";
  std::string s = absl::StrFormat("%s %.0f%%", p.stage(), 100 * p.fraction());
  if (!p.current_layer().empty()) absl::StrAppend(&s, " ", p.current_layer());
  return s;
}

void PrintJob(const v1::Job& job) {
  std::printf("name        %s\n", job.name().c_str());
  std::printf("state       %s\n", StateName(job.state()).c_str());
  if (!job.spec().display_name().empty()) {
    std::printf("display     %s\n", job.spec().display_name().c_str());
  }
  std::printf("attempts    %d\n", job.attempts());
  std::printf("created     %s\n", Time(job.create_time()).c_str());
  std::printf("started     %s\n", Time(job.start_time()).c_str());
  std::printf("ended       %s\n", Time(job.end_time()).c_str());
  if (job.has_progress() && !job.progress().stage().empty()) {
    std::printf("progress    %s\n", ProgressText(job.progress()).c_str());
  }
  if (!job.error().empty())
    std::printf("error       %s\n", job.error().c_str());
  for (const v1::Artifact& a : job.artifacts()) {
    std::printf("artifact    %-6s %lld bytes sha256 %s\n",
                a.kind() == v1::ARTIFACT_KIND_MODEL ? "model" : "report",
                static_cast<long long>(a.size()), a.sha256().c_str());
  }
  if (job.has_report())
    std::printf("\n%s", FormatReportTable(job.report()).c_str());
}

std::string EventText(const v1::JobEvent& e) {
  std::string s =
      absl::StrFormat("%4d  %-10s ", e.sequence(), StateName(e.state()));
  if (e.has_state_change()) {
    absl::StrAppend(&s, "-> ", StateName(e.state_change()));
  } else if (e.has_progress()) {
    absl::StrAppend(&s, ProgressText(e.progress()));
  } else {
    absl::StrAppend(&s, e.message());
  }
  return s;
}

class Cli {
 public:
  explicit Cli(Global* g) : g_(g) {}

  absl::Status Connect() {
    ClientOptions o;
    o.address = g_->server;
    o.token = g_->token;
    o.tls_ca_file = g_->tls_ca;
    absl::StatusOr<std::unique_ptr<Client>> c = Client::Connect(o);
    if (!c.ok()) return c.status();
    client_ = std::move(*c);
    return absl::OkStatus();
  }
  Client* client() { return client_.get(); }

 private:
  Global* g_;
  std::unique_ptr<Client> client_;
};

// Uploads one file and says on stderr what happened.
absl::StatusOr<std::string> UploadAndSay(Client* client,
                                         const std::string& path,
                                         v1::BlobKind kind,
                                         v1::Blob* blob = nullptr) {
  absl::StatusOr<UploadResult> r = client->Upload(path, kind);
  if (!r.ok()) return r.status();
  if (r->skipped) {
    std::fprintf(stderr,
                 "%s: already on the server, upload skipped (sha256 %s)\n",
                 path.c_str(), r->blob.sha256().c_str());
  } else if (r->resumed_from > 0) {
    std::fprintf(
        stderr, "%s: upload resumed at byte %lld, %lld bytes (sha256 %s)\n",
        path.c_str(), static_cast<long long>(r->resumed_from),
        static_cast<long long>(r->blob.size()), r->blob.sha256().c_str());
  } else {
    std::fprintf(stderr, "%s: uploaded %lld bytes (sha256 %s)\n", path.c_str(),
                 static_cast<long long>(r->blob.size()),
                 r->blob.sha256().c_str());
  }
  if (blob != nullptr) *blob = r->blob;
  return r->blob.sha256();
}

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

struct QuantizeArgs {
  std::string model, calib, eval, spec_file, out, request_id;
  bool detach = false;
  int priority = 0;
  QuantizeFlags flags;
};

int Quantize(Global& g, QuantizeArgs& a) {
  if (!a.detach && a.out.empty()) {
    return Fail(absl::InvalidArgumentError(
        "--out FILE is required (or --detach to return the job at once)"));
  }
  absl::StatusOr<v1::JobSpec> spec = ReadSpec(a.spec_file);
  if (!spec.ok()) return Fail(spec.status());
  if (absl::Status s = ApplyQuantizeFlags(a.flags, &*spec); !s.ok()) {
    return Fail(s);
  }
  Cli cli(&g);
  if (absl::Status s = cli.Connect(); !s.ok()) return Fail(s);
  Client* client = cli.client();
  absl::StatusOr<std::string> model =
      UploadAndSay(client, a.model, v1::BLOB_KIND_MODEL);
  if (!model.ok()) return Fail(model.status(), "upload " + a.model);
  spec->mutable_model()->set_blob_sha256(*model);
  if (!a.calib.empty()) {
    absl::StatusOr<std::string> d =
        UploadAndSay(client, a.calib, v1::BLOB_KIND_DATASET);
    if (!d.ok()) return Fail(d.status(), "upload " + a.calib);
    spec->mutable_calibration_data()->set_blob_sha256(*d);
  }
  if (!a.eval.empty()) {
    absl::StatusOr<std::string> d =
        UploadAndSay(client, a.eval, v1::BLOB_KIND_DATASET);
    if (!d.ok()) return Fail(d.status(), "upload " + a.eval);
    spec->mutable_evaluation_data()->set_blob_sha256(*d);
  }
  absl::StatusOr<v1::Job> job =
      client->CreateJob(*spec, a.request_id, a.priority);
  if (!job.ok()) return Fail(job.status(), "create job");
  if (a.detach) {
    if (g.json) {
      PrintJson(*job);
    } else {
      std::printf("%s\n", job->name().c_str());
    }
    return kExitOk;
  }
  if (absl::Status s = FollowWithProgress(client, job->name()); !s.ok()) {
    std::fprintf(stderr,
                 "quantctl: lost the job's progress; it continues on the "
                 "server: quantctl jobs watch %s\n",
                 job->name().c_str());
    return Fail(s, "watch " + job->name());
  }
  job = client->GetJob(job->name());
  if (!job.ok()) return Fail(job.status(), "get job");
  if (job->state() != v1::JOB_STATE_SUCCEEDED) {
    if (g.json) PrintJson(*job);
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
    PrintJson(*job);
  } else {
    std::printf("%s SUCCEEDED\n\n%s\n", job->name().c_str(),
                FormatReportTable(job->report()).c_str());
    std::printf("model       %s (%lld bytes, sha256 %s)\n", a.out.c_str(),
                static_cast<long long>(m->size()), m->sha256().c_str());
    std::printf("report      %s\n", report_path.c_str());
  }
  return kExitOk;
}

int JobsList(Global& g, const std::string& state, int page_size, bool all,
             const std::string& page_token) {
  v1::ListJobsRequest request;
  request.set_page_size(page_size);
  request.set_page_token(page_token);
  if (!state.empty()) {
    absl::StatusOr<v1::JobState> s = ParseState(state);
    if (!s.ok()) return Fail(s.status());
    request.set_state(*s);
  }
  Cli cli(&g);
  if (absl::Status s = cli.Connect(); !s.ok()) return Fail(s);
  v1::ListJobsResponse merged;
  while (true) {
    absl::StatusOr<v1::ListJobsResponse> r = cli.client()->ListJobs(request);
    if (!r.ok()) return Fail(r.status(), "list jobs");
    for (v1::Job& j : *r->mutable_jobs()) *merged.add_jobs() = std::move(j);
    merged.set_next_page_token(r->next_page_token());
    if (!all || r->next_page_token().empty()) break;
    request.set_page_token(r->next_page_token());
  }
  if (g.json) {
    PrintJson(merged);
    return kExitOk;
  }
  std::printf("%-40s %-11s %-22s %s\n", "NAME", "STATE", "CREATED", "PROGRESS");
  for (const v1::Job& j : merged.jobs()) {
    std::printf("%-40s %-11s %-22s %s\n", j.name().c_str(),
                StateName(j.state()).c_str(), Time(j.create_time()).c_str(),
                ProgressText(j.progress()).c_str());
  }
  if (!merged.next_page_token().empty()) {
    std::printf("more: --page-token %s (or --all)\n",
                merged.next_page_token().c_str());
  }
  return kExitOk;
}

int JobsGet(Global& g, const std::string& name) {
  Cli cli(&g);
  if (absl::Status s = cli.Connect(); !s.ok()) return Fail(s);
  absl::StatusOr<v1::Job> job = cli.client()->GetJob(JobName(name));
  if (!job.ok()) return Fail(job.status(), "get " + JobName(name));
  if (g.json) {
    PrintJson(*job);
  } else {
    PrintJob(*job);
  }
  return kExitOk;
}

int JobsWatch(Global& g, const std::string& name, int64_t after) {
  Cli cli(&g);
  if (absl::Status s = cli.Connect(); !s.ok()) return Fail(s);
  absl::Status s =
      cli.client()->Watch(JobName(name), after, [&](const v1::JobEvent& e) {
        if (g.json) {
          PrintJson(e, /*one_line=*/true);
        } else {
          std::printf("%s\n", EventText(e).c_str());
          std::fflush(stdout);
        }
        return true;
      });
  if (!s.ok()) return Fail(s, "watch " + JobName(name));
  absl::StatusOr<v1::Job> job = cli.client()->GetJob(JobName(name));
  if (!job.ok()) return Fail(job.status(), "get " + JobName(name));
  return ExitCodeForJob(job->state());
}

int JobsCancel(Global& g, const std::string& name) {
  Cli cli(&g);
  if (absl::Status s = cli.Connect(); !s.ok()) return Fail(s);
  absl::StatusOr<v1::Job> job = cli.client()->CancelJob(JobName(name));
  if (!job.ok()) return Fail(job.status(), "cancel " + JobName(name));
  if (g.json) {
    PrintJson(*job);
  } else {
    std::printf("%s %s\n", job->name().c_str(),
                StateName(job->state()).c_str());
  }
  return kExitOk;
}

int JobsDelete(Global& g, const std::string& name) {
  Cli cli(&g);
  if (absl::Status s = cli.Connect(); !s.ok()) return Fail(s);
  if (absl::Status s = cli.client()->DeleteJob(JobName(name)); !s.ok()) {
    return Fail(s, "delete " + JobName(name));
  }
  if (g.json) {
    std::printf("{}\n");
  } else {
    std::printf("%s deleted\n", JobName(name).c_str());
  }
  return kExitOk;
}

int Download(Global& g, const std::string& name, const std::string& kind,
             const std::string& out) {
  Cli cli(&g);
  if (absl::Status s = cli.Connect(); !s.ok()) return Fail(s);
  absl::StatusOr<v1::ArtifactHeader> h = cli.client()->Download(
      JobName(name),
      kind == "report" ? v1::ARTIFACT_KIND_REPORT : v1::ARTIFACT_KIND_MODEL,
      out);
  if (!h.ok()) return Fail(h.status(), "download " + kind);
  if (g.json) {
    PrintJson(*h);
  } else {
    std::printf("%s: %lld bytes, sha256 %s (verified)\n", out.c_str(),
                static_cast<long long>(h->size()), h->sha256().c_str());
  }
  return kExitOk;
}

int Upload(Global& g, const std::string& path, const std::string& kind) {
  Cli cli(&g);
  if (absl::Status s = cli.Connect(); !s.ok()) return Fail(s);
  v1::Blob blob;
  absl::StatusOr<std::string> d = UploadAndSay(
      cli.client(), path,
      kind == "dataset" ? v1::BLOB_KIND_DATASET : v1::BLOB_KIND_MODEL, &blob);
  if (!d.ok()) return Fail(d.status(), "upload " + path);
  if (g.json) {
    PrintJson(blob);
  } else {
    std::printf("%s\n", d->c_str());
  }
  return kExitOk;
}

constexpr char kGlobalFlags[] =
    R"(Global flags (before or after the subcommand):
  --server HOST:PORT  quantd address (default 127.0.0.1:50051, env QUANTD_SERVER)
  --token TOKEN       bearer token (env QUANTD_TOKEN)
  --tls-ca FILE       PEM root certificates: TLS, server verified with them
  --json              machine-readable output (protobuf JSON; events as JSON lines)

)";

int Main(int argc, char** argv) {
  Global g;
  CLI::App app{
      "quantctl: the client of quantd serve. Uploads models and datasets "
      "(skipping what the server has), runs quantization jobs, follows "
      "them, and downloads the quantized model and its report."};
  app.name("quantctl");
  app.set_version_flag("--version", std::string("quantctl ") + QUANTD_VERSION);
  app.require_subcommand(1);
  app.fallthrough();
  app.footer(absl::StrCat(
      "Environment: QUANTD_SERVER and QUANTD_TOKEN stand in for --server "
      "and --token.\n\n",
      ExitCodesHelp()));
  app.add_option("--server", g.server, "quantd address, HOST:PORT")
      ->envname("QUANTD_SERVER")
      ->capture_default_str();
  app.add_option("--token", g.token,
                 "bearer token (the server's --tokens-file maps it to a "
                 "tenant)")
      ->envname("QUANTD_TOKEN");
  app.add_option("--tls-ca", g.tls_ca,
                 "PEM root certificates: connect with TLS and verify the "
                 "server with them (default: plaintext)")
      ->check(CLI::ExistingFile);
  app.add_flag("--json", g.json,
               "machine-readable output: responses as protobuf JSON, events "
               "as JSON lines");

  const std::string footer = absl::StrCat(kGlobalFlags, ExitCodesHelp());
  int rc = kExitOk;
  std::function<void()> run;

  // quantize
  QuantizeArgs q;
  std::optional<std::string> method, mode, weights, granularity, calibration;
  std::optional<int> group_size;
  std::optional<double> smoothquant, max_drop, max_ppl;
  CLI::App* quantize = app.add_subcommand(
      "quantize",
      "Upload MODEL and its data, run a quantization job, show its progress, "
      "print the accuracy delta table and download the model to --out and "
      "the report to FILE.report.json");
  quantize->add_option("MODEL", q.model, "float ONNX model")
      ->required()
      ->check(CLI::ExistingFile);
  quantize
      ->add_option("--calib", q.calib,
                   ".npz calibration data (one array per model input; "
                   "needed for static mode and QAT)")
      ->check(CLI::ExistingFile);
  quantize
      ->add_option("--eval", q.eval,
                   ".npz evaluation data (default: a held-back part of "
                   "the calibration data)")
      ->check(CLI::ExistingFile);
  auto* o_method = quantize->add_option(
      "--method",
      [&](const CLI::results_t& r) {
        method = r[0];
        return true;
      },
      "ptq (default) or qat");
  o_method->type_name("ptq|qat");
  quantize
      ->add_option(
          "--mode",
          [&](const CLI::results_t& r) {
            mode = r[0];
            return true;
          },
          "static (default), dynamic or weight-only")
      ->type_name("MODE");
  quantize
      ->add_option(
          "--weights",
          [&](const CLI::results_t& r) {
            weights = r[0];
            return true;
          },
          "weight type: int8 (default) or int4")
      ->type_name("TYPE");
  quantize
      ->add_option(
          "--granularity",
          [&](const CLI::results_t& r) {
            granularity = r[0];
            return true;
          },
          "weights: per-channel (default), per-group or per-tensor")
      ->type_name("G");
  quantize
      ->add_option(
          "--group-size",
          [&](const CLI::results_t& r) {
            int v;
            if (!CLI::detail::lexical_cast(r[0], v)) return false;
            group_size = v;
            return true;
          },
          "per-group: 32, 64 or 128 input channels per group")
      ->type_name("N");
  quantize
      ->add_option(
          "--calibration",
          [&](const CLI::results_t& r) {
            calibration = r[0];
            return true;
          },
          "activation ranges: minmax (default), percentile, entropy "
          "or mse")
      ->type_name("METHOD");
  quantize
      ->add_option(
          "--smoothquant",
          [&](const CLI::results_t& r) {
            double v;
            if (!CLI::detail::lexical_cast(r[0], v)) return false;
            smoothquant = v;
            return true;
          },
          "SmoothQuant with migration strength ALPHA in [0, 1]")
      ->type_name("ALPHA");
  quantize->add_flag("--gptq", q.flags.gptq, "GPTQ error-compensated rounding");
  quantize->add_flag("--awq", q.flags.awq, "AWQ activation-aware scales");
  quantize->add_flag("--bias-correction", q.flags.bias_correction,
                     "correct the bias shift quantization causes");
  quantize
      ->add_option(
          "--max-accuracy-drop",
          [&](const CLI::results_t& r) {
            double v;
            if (!CLI::detail::lexical_cast(r[0], v)) return false;
            max_drop = v;
            return true;
          },
          "accuracy target: fall layers back to higher precision "
          "until accuracy drops at most P points")
      ->type_name("P");
  quantize
      ->add_option(
          "--max-perplexity-increase",
          [&](const CLI::results_t& r) {
            double v;
            if (!CLI::detail::lexical_cast(r[0], v)) return false;
            max_ppl = v;
            return true;
          },
          "language models: perplexity may rise at most P percent")
      ->type_name("P");
  quantize
      ->add_option("--label", q.flags.labels,
                   "key=value label of the job (repeatable); 'model' "
                   "labels the server's accuracy metrics")
      ->allow_extra_args(false);
  quantize
      ->add_option("--spec", q.spec_file,
                   "a full JobSpec as protobuf JSON; the flags above "
                   "override its fields, MODEL/--calib/--eval its data")
      ->check(CLI::ExistingFile);
  quantize->add_option("--out", q.out,
                       "where the quantized model goes; the report goes to "
                       "FILE.report.json (required without --detach)");
  quantize->add_option("--request-id", q.request_id,
                       "idempotency key: repeating the call with it returns "
                       "the same job");
  quantize
      ->add_option("--priority", q.priority,
                   "in [-100, 100]; higher runs first")
      ->capture_default_str();
  quantize->add_flag("--detach", q.detach,
                     "print the job name and return once the job is created");
  quantize->footer(footer);
  quantize->callback([&] {
    q.flags.method = method;
    q.flags.mode = mode;
    q.flags.weights = weights;
    q.flags.granularity = granularity;
    q.flags.group_size = group_size;
    q.flags.calibration = calibration;
    q.flags.smoothquant_alpha = smoothquant;
    q.flags.max_accuracy_drop = max_drop;
    q.flags.max_perplexity_increase = max_ppl;
    run = [&] { rc = Quantize(g, q); };
  });

  // jobs
  CLI::App* jobs = app.add_subcommand("jobs",
                                      "List, inspect, follow, cancel "
                                      "and delete jobs");
  jobs->require_subcommand(1);
  jobs->footer(footer);
  std::string name, list_state, page_token;
  int page_size = 0;
  bool all = false;
  int64_t after = 0;
  CLI::App* list =
      jobs->add_subcommand("list", "List the tenant's jobs, newest first");
  list->add_option("--state", list_state,
                   "only jobs in this state: queued, running, succeeded, "
                   "failed, cancelling, cancelled");
  list->add_option("--page-size", page_size, "jobs per page, 1 to 1000 (0: 50)")
      ->capture_default_str();
  list->add_option("--page-token", page_token, "continue a previous listing");
  list->add_flag("--all", all, "follow next_page_token through every page");
  list->footer(footer);
  list->callback([&] {
    run = [&] { rc = JobsList(g, list_state, page_size, all, page_token); };
  });
  CLI::App* get = jobs->add_subcommand("get",
                                       "Show a job: state, progress, "
                                       "artifacts, report");
  get->add_option("NAME", name, "jobs/ID or ID")->required();
  get->footer(footer);
  get->callback([&] { run = [&] { rc = JobsGet(g, name); }; });
  CLI::App* watch = jobs->add_subcommand(
      "watch",
      "Follow a job's events until it ends (reconnecting after a dropped "
      "stream); exits with the job's outcome (0 SUCCEEDED, 1 FAILED or "
      "CANCELLED)");
  watch->add_option("NAME", name, "jobs/ID or ID")->required();
  watch
      ->add_option("--after", after,
                   "only events with a larger sequence number")
      ->capture_default_str();
  watch->footer(footer);
  watch->callback([&] { run = [&] { rc = JobsWatch(g, name, after); }; });
  CLI::App* cancel =
      jobs->add_subcommand("cancel", "Cancel a queued or running job");
  cancel->add_option("NAME", name, "jobs/ID or ID")->required();
  cancel->footer(footer);
  cancel->callback([&] { run = [&] { rc = JobsCancel(g, name); }; });
  CLI::App* del =
      jobs->add_subcommand("delete", "Delete a finished job and its artifacts");
  del->add_option("NAME", name, "jobs/ID or ID")->required();
  del->footer(footer);
  del->callback([&] { run = [&] { rc = JobsDelete(g, name); }; });

  // download
  std::string kind, out, file;
  CLI::App* download = app.add_subcommand(
      "download",
      "Download a job's artifact (resuming a partial FILE.partial, sha256 "
      "verified)");
  download->add_option("NAME", name, "jobs/ID or ID")->required();
  download->add_option("--kind", kind, "model or report")
      ->required()
      ->check(CLI::IsMember({"model", "report"}));
  download->add_option("--out", out, "destination file")->required();
  download->footer(footer);
  download->callback([&] { run = [&] { rc = Download(g, name, kind, out); }; });

  // upload
  CLI::App* upload = app.add_subcommand(
      "upload",
      "Upload a model or dataset (skipped when the server has it, resumed "
      "after an interruption); prints its sha256");
  upload->add_option("FILE", file, "the file")
      ->required()
      ->check(CLI::ExistingFile);
  upload->add_option("--kind", kind, "model or dataset")
      ->required()
      ->check(CLI::IsMember({"model", "dataset"}));
  upload->footer(footer);
  upload->callback([&] { run = [&] { rc = Upload(g, file, kind); }; });

  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForAllHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForVersion& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    (void)app.exit(e);
    return kExitBadRequest;
  }
  if (run) run();
  return rc;
}

}  // namespace
}  // namespace quantd::client

int main(int argc, char** argv) { return quantd::client::Main(argc, argv); }
