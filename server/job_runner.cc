#include "server/job_runner.h"

#include <cerrno>
#include <cstdio>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "engine/pipeline/pipeline.h"
#include "server/file_util.h"
#include "server/s3_job_io.h"
#include "server/tenant_data_resolver.h"
#include "util/logging.h"
#include "util/status_macros.h"

namespace quantd {
namespace {

v1::JobState ToProto(JobState s) {
  return static_cast<v1::JobState>(static_cast<int>(s));
}

v1::JobEvent StateChange(JobState s) {
  v1::JobEvent e;
  e.set_state_change(ToProto(s));
  return e;
}

v1::JobEvent ProgressOf(const ProgressEvent& p) {
  v1::JobEvent e;
  v1::Progress* pr = e.mutable_progress();
  pr->set_stage(p.stage);
  pr->set_fraction(p.fraction);
  pr->set_samples_done(p.samples_done);
  pr->set_current_layer(p.current_layer);
  for (const auto& [k, v] : p.metrics) (*pr->mutable_metrics())[k] = v;
  return e;
}

}  // namespace

v1::JobEvent JobRunner::Stamp(const std::string& job_id, JobState state,
                              v1::JobEvent event) {
  event.set_job(JobName(job_id));
  event.set_state(ToProto(state));
  const int64_t now_us = absl::ToUnixMicros(absl::Now());
  event.mutable_time()->set_seconds(now_us / 1000000);
  event.mutable_time()->set_nanos(static_cast<int32_t>(now_us % 1000000) *
                                  1000);
  event.clear_sequence();
  return event;
}

absl::StatusOr<v1::JobEvent> JobRunner::Emit(const std::string& job_id,
                                             JobState state, v1::JobEvent event,
                                             const std::string& owner) {
  event = Stamp(job_id, state, std::move(event));
  // A progress event is also the job's last progress, for GetJob.
  const std::string progress =
      event.has_progress() ? event.progress().SerializeAsString() : "";
  QUANTD_ASSIGN_OR_RETURN(
      const int64_t seq,
      jobs_->AppendEvent(job_id, event.SerializeAsString(),
                         event.has_progress() ? &progress : nullptr, owner));
  event.set_sequence(seq);
  if (options_.on_event) options_.on_event(event);
  return event;
}

std::vector<std::string> JobRunner::MoveEvents(const JobRecord& moved,
                                               const std::string& reason) {
  std::vector<std::string> events;
  if (!reason.empty()) {
    v1::JobEvent why;
    why.set_message(reason);
    events.push_back(
        Stamp(moved.id, moved.state, std::move(why)).SerializeAsString());
  }
  events.push_back(Stamp(moved.id, moved.state, StateChange(moved.state))
                       .SerializeAsString());
  return events;
}

void JobRunner::Publish(const std::vector<JobEvent>& appended) {
  if (!options_.on_event) return;
  for (const JobEvent& stored : appended) {
    v1::JobEvent event;
    if (!event.ParseFromString(stored.payload)) continue;  // we wrote it
    event.set_sequence(stored.sequence);
    options_.on_event(event);
  }
}

absl::StatusOr<JobRecord> JobRunner::Move(const std::string& job_id,
                                          std::initializer_list<JobState> from,
                                          JobState to, const std::string& error,
                                          const std::string& reason,
                                          const std::string& owner) {
  std::vector<JobEvent> appended;
  QUANTD_ASSIGN_OR_RETURN(JobRecord moved, jobs_->Transition(
                                               job_id, from, to, error,
                                               [&](const JobRecord& j) {
                                                 return MoveEvents(j, reason);
                                               },
                                               &appended, owner));
  Publish(appended);
  return moved;
}

absl::StatusOr<std::optional<JobRecord>> JobRunner::Claim(
    const std::string& owner, absl::Duration lease,
    const std::set<std::string>& skip_tenants) {
  std::vector<JobEvent> appended;
  QUANTD_ASSIGN_OR_RETURN(
      std::optional<JobRecord> claimed,
      jobs_->Claim(
          owner, lease, skip_tenants,
          [](const JobRecord& j) { return MoveEvents(j, ""); }, &appended));
  Publish(appended);
  return claimed;
}

absl::StatusOr<std::vector<JobRecord>> JobRunner::Recover(int max_attempts,
                                                          bool expired_only) {
  // The reason of each change is its own event: a FAILED job's error, or
  // why a job is queued (or cancelled) again.
  auto events = [expired_only](const JobRecord& j) {
    std::string reason = j.error;
    if (j.state == JobState::kQueued) {
      reason = absl::StrCat(
          expired_only ? "the replica running this job stopped renewing its "
                         "lease (it stopped or lost the job store) "
                       : "the server stopped while this job was running ",
          "(attempt ", j.attempts, "); it is queued to run again");
    }
    return MoveEvents(j, reason);
  };
  std::vector<JobEvent> appended;
  QUANTD_ASSIGN_OR_RETURN(
      std::vector<JobRecord> recovered,
      expired_only ? jobs_->RecoverExpired(max_attempts, events, &appended)
                   : jobs_->Recover(max_attempts, events, &appended));
  Publish(appended);
  for (const JobRecord& job : recovered) {
    if (!IsTerminal(job.state)) continue;
    // Kept for a re-queued job to resume; an ended one needs it no more.
    RemoveCheckpoint(job);
    LOG(WARNING) << "job " << job.id << " is " << JobStateName(job.state)
                 << " after a restart: " << job.error;
    if (options_.on_finished) options_.on_finished(job, nullptr);
  }
  return recovered;
}

std::string JobRunner::CheckpointPath(const JobRecord& job) const {
  // QAT checkpoints live with the job, so a re-queued job resumes them.
  if (options_.checkpoint_dir.empty()) return "";
  return absl::StrCat(options_.checkpoint_dir, "/", job.id, ".npz");
}

void JobRunner::RemoveCheckpoint(const JobRecord& job) const {
  const std::string checkpoint = CheckpointPath(job);
  if (checkpoint.empty()) return;
  if (std::remove(checkpoint.c_str()) != 0 && errno != ENOENT) {
    LOG(WARNING) << "could not remove checkpoint of job " << job.id << ": "
                 << std::strerror(errno);
  }
  if (blobs_->remote() != nullptr) {
    LogIfError(blobs_->remote()->RemoveCheckpoint(job.id),
               absl::StrCat("removing the stored checkpoint of job ", job.id));
  }
}

void JobRunner::MirrorCheckpoints(const JobRecord& job,
                                  PipelineOptions& options) const {
  RemoteBlobs* remote = blobs_->remote();
  if (remote == nullptr || options.checkpoint_path.empty()) return;
  // A job another replica started (and lost) resumes from its checkpoint
  // in object storage; a replica's own one is already here.
  if (FileSizeOrMinus1(options.checkpoint_path) < 0) {
    const absl::Status s = remote->FetchCheckpoint(
        job.id, options.checkpoint_path, options_.checkpoint_dir);
    if (!absl::IsNotFound(s)) {
      LogIfError(s, absl::StrCat("fetching the checkpoint of job ", job.id));
    }
  }
  // A failed copy costs a takeover the steps since the last good one; the
  // job itself goes on.
  options.on_checkpoint = [remote, id = job.id](const std::string& path) {
    LogIfError(remote->PutCheckpoint(id, path),
               absl::StrCat("storing the checkpoint of job ", id));
  };
}

absl::StatusOr<PipelineResult> JobRunner::RunPipelineOf(
    const JobRecord& job, const std::atomic<bool>* cancelled,
    absl::Status* event_error) {
  v1::JobSpec spec;
  if (!spec.ParseFromString(job.spec)) {
    return absl::DataLossError("the stored job spec is unreadable");
  }
  // Planned again at run time with the job's tenant: an upload may have gone
  // since CreateJob, and ownership is checked in one place only.
  const TenantDataResolver resolver(*blobs_, *index_, job.tenant);
  QUANTD_ASSIGN_OR_RETURN(JobPlan plan,
                          PlanJob(spec, SpecOrigin::kService, resolver));
  // Progress events rate-limited per stage; a stage change always goes out.
  std::string last_stage;
  absl::Time last_time = absl::InfinitePast();
  ProgressCallback progress = [&](const ProgressEvent& p) {
    const absl::Time now = absl::Now();
    if (p.stage == last_stage &&
        now - last_time <
            absl::Milliseconds(options_.min_progress_interval_ms) &&
        p.fraction < 1) {
      return;
    }
    last_stage = p.stage;
    last_time = now;
    absl::Status s =
        Emit(job.id, JobState::kRunning, ProgressOf(p), job.lease_owner)
            .status();
    if (!s.ok() && event_error->ok()) *event_error = s;
  };
  PipelineOptions options;
  options.checkpoint_path = CheckpointPath(job);
  MirrorCheckpoints(job, options);
  // One blob per model: uploaded models are self-contained and under
  // protobuf's limit, and so is their quantized model.
  options.allow_external_data = false;
  absl::StatusOr<PipelineResult> result =
      RunPipeline(plan, progress, cancelled, options);
  if (!result.ok()) {
    // The reason is stored and shown to the tenant: blob names, not paths.
    return absl::Status(result.status().code(),
                        resolver.Redact(result.status().message()));
  }
  return result;
}

absl::StatusOr<std::pair<std::string, std::string>> JobRunner::StoreArtifacts(
    const JobRecord& job, const PipelineResult& result) {
  QUANTD_ASSIGN_OR_RETURN(const std::string model,
                          blobs_->Put(result.model_bytes));
  QUANTD_ASSIGN_OR_RETURN(const std::string report_json,
                          ReportToJson(result.report));
  QUANTD_ASSIGN_OR_RETURN(const std::string report, blobs_->Put(report_json));
  QUANTD_RETURN_IF_ERROR(jobs_->SetArtifacts(
      job.id, model, static_cast<int64_t>(result.model_bytes.size()), report,
      static_cast<int64_t>(report_json.size()),
      result.report.SerializeAsString()));
  return std::make_pair(model, report);
}

absl::Status JobRunner::WriteOutputs(
    const JobRecord& job, const std::pair<std::string, std::string>& stored) {
  v1::JobSpec spec;
  if (!spec.ParseFromString(job.spec) || spec.output_uri().empty()) {
    return absl::OkStatus();
  }
  if (options_.tenant_s3 == nullptr) {
    return absl::FailedPreconditionError(
        "this server writes no s3:// outputs (no --tenant-s3-credentials)");
  }
  return WriteS3Outputs(*options_.tenant_s3, job.tenant, spec.output_uri(),
                        *blobs_, stored.first, stored.second);
}

absl::StatusOr<JobRecord> JobRunner::Finish(
    const JobRecord& job, JobState state, const std::string& error,
    const v1::QuantizationReport* report) {
  // The state, its reason and the state-change event (the last event of
  // every job) in one transaction.
  QUANTD_ASSIGN_OR_RETURN(
      JobRecord done, Move(job.id, {JobState::kRunning, JobState::kCancelling},
                           state, error, error, job.lease_owner));
  RemoveCheckpoint(job);  // a finished job needs it no more
  if (options_.on_finished) options_.on_finished(done, report);
  return done;
}

absl::StatusOr<JobRecord> JobRunner::Requeue(const JobRecord& job) {
  return Move(job.id, {JobState::kRunning}, JobState::kQueued, "",
              "the server is shutting down; the job is queued to run again",
              job.lease_owner);
}

absl::StatusOr<JobRecord> JobRunner::Run(const JobRecord& job,
                                         const std::atomic<bool>* cancelled,
                                         const std::atomic<bool>* requeue) {
  absl::Status event_error;
  absl::StatusOr<PipelineResult> result =
      RunPipelineOf(job, cancelled, &event_error);
  QUANTD_RETURN_IF_ERROR(event_error);
  // Artifacts first, then the terminal state, then its event.
  if (result.ok()) {
    QUANTD_ASSIGN_OR_RETURN(const auto stored, StoreArtifacts(job, *result));
    if (absl::Status out = WriteOutputs(job, stored); !out.ok()) {
      // The artifacts are stored; a pipeline waiting at the output URI must
      // not take this job for done.
      return Finish(job, JobState::kFailed,
                    absl::StrCat("the quantized model is stored (download "
                                 "it), but writing it to output_uri failed: ",
                                 out.message()),
                    nullptr);
    }
    return Finish(job, JobState::kSucceeded, "", &result->report);
  }
  const absl::Status& outcome = result.status();
  if (outcome.code() != absl::StatusCode::kCancelled) {
    return Finish(job, JobState::kFailed, std::string(outcome.message()),
                  nullptr);
  }
  if (requeue != nullptr && requeue->load()) {
    // Interrupted by a shutdown, not by the client: run it again later. A
    // job the client was cancelling (CANCELLING) ends CANCELLED below.
    absl::StatusOr<JobRecord> queued = Requeue(job);
    if (queued.ok() ||
        queued.status().code() != absl::StatusCode::kFailedPrecondition) {
      return queued;
    }
  }
  return Finish(job, JobState::kCancelled, "cancelled by CancelJob", nullptr);
}

absl::StatusOr<JobRecord> JobRunner::Fail(const JobRecord& job,
                                          const absl::Status& why) {
  LOG(ERROR) << "job " << job.id << ": " << why;
  return Finish(job, JobState::kFailed,
                absl::StrCat("quantd could not record the job's outcome (",
                             why.ToString(),
                             "); check the server's disk and logs, then run "
                             "the job again"),
                nullptr);
}

}  // namespace quantd
