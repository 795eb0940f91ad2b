#include "client/jobs_commands.h"

#include <cstdint>
#include <cstdio>
#include <memory>
#include <string>
#include <utility>

#include "absl/status/statusor.h"
#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "client/client.h"
#include "client/exit_codes.h"
#include "client/report_table.h"
#include "google/protobuf/util/time_util.h"
#include "quantd/v1/service.pb.h"

namespace quantd::client {
namespace {

struct JobsArgs {
  std::string name;  // get, watch, cancel, delete
  std::string state, page_token;
  int page_size = 0;
  bool all = false;
  int64_t after = 0;
};

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

void PrintJobTable(const v1::ListJobsResponse& jobs) {
  std::printf("%-40s %-11s %-22s %s\n", "NAME", "STATE", "CREATED", "PROGRESS");
  for (const v1::Job& j : jobs.jobs()) {
    std::printf("%-40s %-11s %-22s %s\n", j.name().c_str(),
                StateName(j.state()).c_str(), Time(j.create_time()).c_str(),
                ProgressText(j.progress()).c_str());
  }
  if (!jobs.next_page_token().empty()) {
    std::printf("more: --page-token %s (or --all)\n",
                jobs.next_page_token().c_str());
  }
}

int JobsList(const GlobalOptions& g, const JobsArgs& a) {
  v1::ListJobsRequest request;
  request.set_page_size(a.page_size);
  request.set_page_token(a.page_token);
  if (!a.state.empty()) {
    absl::StatusOr<v1::JobState> s = ParseState(a.state);
    if (!s.ok()) return Fail(s.status());
    request.set_state(*s);
  }
  absl::StatusOr<std::unique_ptr<Client>> client = Connect(g);
  if (!client.ok()) return Fail(client.status());
  v1::ListJobsResponse merged;
  while (true) {
    absl::StatusOr<v1::ListJobsResponse> r = (*client)->ListJobs(request);
    if (!r.ok()) return Fail(r.status(), "list jobs");
    for (v1::Job& j : *r->mutable_jobs()) *merged.add_jobs() = std::move(j);
    merged.set_next_page_token(r->next_page_token());
    if (!a.all || r->next_page_token().empty()) break;
    request.set_page_token(r->next_page_token());
  }
  if (g.json) {
    PrintJson(merged);
  } else {
    PrintJobTable(merged);
  }
  return kExitOk;
}

int JobsGet(const GlobalOptions& g, const JobsArgs& a) {
  absl::StatusOr<std::unique_ptr<Client>> client = Connect(g);
  if (!client.ok()) return Fail(client.status());
  absl::StatusOr<v1::Job> job = (*client)->GetJob(JobName(a.name));
  if (!job.ok()) return Fail(job.status(), "get " + JobName(a.name));
  if (g.json) {
    PrintJson(*job);
  } else {
    PrintJob(*job);
  }
  return kExitOk;
}

int JobsWatch(const GlobalOptions& g, const JobsArgs& a) {
  absl::StatusOr<std::unique_ptr<Client>> client = Connect(g);
  if (!client.ok()) return Fail(client.status());
  absl::Status s =
      (*client)->Watch(JobName(a.name), a.after, [&](const v1::JobEvent& e) {
        if (g.json) {
          PrintJson(e, /*one_line=*/true);
        } else {
          std::printf("%s\n", EventText(e).c_str());
          std::fflush(stdout);
        }
        return true;
      });
  if (!s.ok()) return Fail(s, "watch " + JobName(a.name));
  absl::StatusOr<v1::Job> job = (*client)->GetJob(JobName(a.name));
  if (!job.ok()) return Fail(job.status(), "get " + JobName(a.name));
  return ExitCodeForJob(job->state());
}

int JobsCancel(const GlobalOptions& g, const JobsArgs& a) {
  absl::StatusOr<std::unique_ptr<Client>> client = Connect(g);
  if (!client.ok()) return Fail(client.status());
  absl::StatusOr<v1::Job> job = (*client)->CancelJob(JobName(a.name));
  if (!job.ok()) return Fail(job.status(), "cancel " + JobName(a.name));
  if (g.json) {
    PrintJson(*job);
  } else {
    std::printf("%s %s\n", job->name().c_str(),
                StateName(job->state()).c_str());
  }
  return kExitOk;
}

int JobsDelete(const GlobalOptions& g, const JobsArgs& a) {
  absl::StatusOr<std::unique_ptr<Client>> client = Connect(g);
  if (!client.ok()) return Fail(client.status());
  if (absl::Status s = (*client)->DeleteJob(JobName(a.name)); !s.ok()) {
    return Fail(s, "delete " + JobName(a.name));
  }
  if (g.json) {
    std::printf("{}\n");
  } else {
    std::printf("%s deleted\n", JobName(a.name).c_str());
  }
  return kExitOk;
}

using JobsAction = int (*)(const GlobalOptions&, const JobsArgs&);

// A `jobs` subcommand that runs `action` with the parsed arguments.
CLI::App* AddJobsSubcommand(CLI::App* jobs, CommandContext* context,
                            const std::shared_ptr<JobsArgs>& args,
                            const std::string& name,
                            const std::string& description, JobsAction action) {
  CLI::App* command = jobs->add_subcommand(name, description);
  command->footer(SubcommandFooter());
  OnParsed(command, context,
           [context, args, action] { return action(context->global, *args); });
  return command;
}

void AddListCommand(CLI::App* jobs, CommandContext* context,
                    const std::shared_ptr<JobsArgs>& args) {
  CLI::App* list =
      AddJobsSubcommand(jobs, context, args, "list",
                        "List the tenant's jobs, newest first", JobsList);
  list->add_option("--state", args->state,
                   "only jobs in this state: queued, running, succeeded, "
                   "failed, cancelling, cancelled");
  list->add_option("--page-size", args->page_size,
                   "jobs per page, 1 to 1000 (0: 50)")
      ->capture_default_str();
  list->add_option("--page-token", args->page_token,
                   "continue a previous listing");
  list->add_flag("--all", args->all,
                 "follow next_page_token through every page");
}

// A `jobs` subcommand taking the job's NAME.
CLI::App* AddNamedJobCommand(CLI::App* jobs, CommandContext* context,
                             const std::shared_ptr<JobsArgs>& args,
                             const std::string& name,
                             const std::string& description,
                             JobsAction action) {
  CLI::App* command =
      AddJobsSubcommand(jobs, context, args, name, description, action);
  command->add_option("NAME", args->name, "jobs/ID or ID")->required();
  return command;
}

}  // namespace

void AddJobsCommands(CLI::App* app, CommandContext* context) {
  CLI::App* jobs = app->add_subcommand("jobs",
                                       "List, inspect, follow, cancel "
                                       "and delete jobs");
  jobs->require_subcommand(1);
  jobs->footer(SubcommandFooter());
  auto args = std::make_shared<JobsArgs>();
  AddListCommand(jobs, context, args);
  AddNamedJobCommand(jobs, context, args, "get",
                     "Show a job: state, progress, artifacts, report", JobsGet);
  CLI::App* watch = AddNamedJobCommand(
      jobs, context, args, "watch",
      "Follow a job's events until it ends (reconnecting after a dropped "
      "stream); exits with the job's outcome (0 SUCCEEDED, 1 FAILED or "
      "CANCELLED)",
      JobsWatch);
  watch
      ->add_option("--after", args->after,
                   "only events with a larger sequence number")
      ->capture_default_str();
  AddNamedJobCommand(jobs, context, args, "cancel",
                     "Cancel a queued or running job", JobsCancel);
  AddNamedJobCommand(jobs, context, args, "delete",
                     "Delete a finished job and its artifacts", JobsDelete);
}

}  // namespace quantd::client
