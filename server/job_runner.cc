#include "server/job_runner.h"

#include <cstdio>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "engine/pipeline/job_spec.h"
#include "engine/pipeline/pipeline.h"
#include "server/tenant_data_resolver.h"

namespace quantd {
namespace {

v1::JobState ToProto(JobState s) {
  return static_cast<v1::JobState>(static_cast<int>(s));
}

}  // namespace

std::string JobName(const std::string& id) { return absl::StrCat("jobs/", id); }

absl::StatusOr<v1::JobEvent> JobRunner::Emit(const std::string& job_id,
                                             JobState state,
                                             v1::JobEvent event) {
  event.set_job(JobName(job_id));
  event.set_state(ToProto(state));
  const int64_t now_us = absl::ToUnixMicros(absl::Now());
  event.mutable_time()->set_seconds(now_us / 1000000);
  event.mutable_time()->set_nanos(static_cast<int32_t>(now_us % 1000000) *
                                  1000);
  event.clear_sequence();
  absl::StatusOr<int64_t> seq =
      jobs_->AppendEvent(job_id, event.SerializeAsString());
  if (!seq.ok()) return seq.status();
  event.set_sequence(*seq);
  if (options_.on_event) options_.on_event(event);
  return event;
}

absl::StatusOr<JobRecord> JobRunner::Run(const JobRecord& job,
                                         const std::atomic<bool>* cancelled,
                                         const std::atomic<bool>* requeue) {
  v1::JobEvent started;
  started.set_state_change(v1::JOB_STATE_RUNNING);
  if (absl::StatusOr<v1::JobEvent> e =
          Emit(job.id, JobState::kRunning, started);
      !e.ok()) {
    return e.status();
  }

  // The pipeline, with progress events rate-limited per stage.
  absl::Status outcome;
  PipelineResult result;
  v1::JobSpec spec;
  absl::StatusOr<JobPlan> plan =
      absl::InvalidArgumentError("the stored job spec is unreadable");
  if (spec.ParseFromString(job.spec)) {
    // Resolved again at run time with the job's tenant: an upload may have
    // gone since CreateJob, and ownership is checked in one place only.
    const TenantDataResolver resolver(*blobs_, *index_, job.tenant);
    plan = PlanJob(spec, SpecOrigin::kService, resolver);
  }
  if (!plan.ok()) outcome = plan.status();
  // QAT checkpoints live with the job, so a re-queued job resumes them.
  PipelineOptions pipeline_options;
  if (!options_.checkpoint_dir.empty()) {
    pipeline_options.checkpoint_path =
        absl::StrCat(options_.checkpoint_dir, "/", job.id, ".npz");
  }
  absl::Status event_error;
  if (outcome.ok()) {
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
      v1::JobEvent e;
      v1::Progress* pr = e.mutable_progress();
      pr->set_stage(p.stage);
      pr->set_fraction(p.fraction);
      pr->set_samples_done(p.samples_done);
      pr->set_current_layer(p.current_layer);
      for (const auto& [k, v] : p.metrics) (*pr->mutable_metrics())[k] = v;
      if (absl::StatusOr<v1::JobEvent> r =
              Emit(job.id, JobState::kRunning, std::move(e));
          !r.ok() && event_error.ok()) {
        event_error = r.status();
      }
    };
    absl::StatusOr<PipelineResult> r =
        RunPipeline(*plan, progress, cancelled, pipeline_options);
    if (r.ok()) {
      result = std::move(*r);
    } else {
      outcome = r.status();
    }
  }
  if (!event_error.ok()) return event_error;

  // Artifacts first, then the terminal state, then its event.
  JobState final_state = JobState::kSucceeded;
  std::string error;
  if (outcome.ok()) {
    absl::StatusOr<std::string> model = blobs_->Put(result.model_bytes);
    if (!model.ok()) return model.status();
    const std::string report_json = ReportToJson(result.report);
    absl::StatusOr<std::string> report = blobs_->Put(report_json);
    if (!report.ok()) return report.status();
    if (absl::Status s = jobs_->SetArtifacts(
            job.id, *model, static_cast<int64_t>(result.model_bytes.size()),
            *report, static_cast<int64_t>(report_json.size()));
        !s.ok()) {
      return s;
    }
  } else if (outcome.code() == absl::StatusCode::kCancelled &&
             requeue != nullptr && requeue->load()) {
    // Interrupted by a shutdown, not by the client: run it again later. A
    // job the client was cancelling (CANCELLING) ends CANCELLED below.
    absl::StatusOr<JobRecord> queued =
        jobs_->Transition(job.id, {JobState::kRunning}, JobState::kQueued);
    if (queued.ok()) {
      v1::JobEvent back;
      back.set_state_change(v1::JOB_STATE_QUEUED);
      if (absl::StatusOr<v1::JobEvent> e =
              Emit(job.id, JobState::kQueued, back);
          !e.ok()) {
        return e.status();
      }
      return queued;
    }
    if (queued.status().code() != absl::StatusCode::kFailedPrecondition) {
      return queued.status();
    }
    final_state = JobState::kCancelled;
    error = "cancelled by CancelJob";
  } else if (outcome.code() == absl::StatusCode::kCancelled) {
    final_state = JobState::kCancelled;
    error = "cancelled by CancelJob";
  } else {
    final_state = JobState::kFailed;
    error = std::string(outcome.message());
  }
  absl::StatusOr<JobRecord> done = jobs_->Transition(
      job.id, {JobState::kRunning, JobState::kCancelling}, final_state, error);
  if (!done.ok()) return done.status();
  // A finished job needs its checkpoint no more.
  if (!pipeline_options.checkpoint_path.empty()) {
    std::remove(pipeline_options.checkpoint_path.c_str());
  }
  if (!error.empty()) {
    v1::JobEvent why;
    why.set_message(error);
    if (absl::StatusOr<v1::JobEvent> e = Emit(job.id, final_state, why);
        !e.ok()) {
      return e.status();
    }
  }
  v1::JobEvent end;  // the last event of every job
  end.set_state_change(ToProto(final_state));
  if (absl::StatusOr<v1::JobEvent> e = Emit(job.id, final_state, end);
      !e.ok()) {
    return e.status();
  }
  if (options_.on_finished) {
    options_.on_finished(*done, outcome.ok() ? &result.report : nullptr);
  }
  return done;
}

}  // namespace quantd
