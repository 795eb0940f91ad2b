// Runs one job of the service end to end: plans it for its tenant (blob
// digests the tenant uploaded; local paths are refused), runs the
// pipeline with its progress recorded as job events, stores the artifacts
// as blobs and records the outcome. Knows no gRPC; the scheduler's workers
// call it, and the order of writes makes a crash at any point recoverable:
// artifacts, then the terminal state, then the terminal event.
//
//   JobRunner runner(&job_store, &blob_store, &blob_index);
//   absl::StatusOr<JobRecord> done = runner.Run(running_job, &cancelled);
#ifndef QUANTD_SERVER_JOB_RUNNER_H_
#define QUANTD_SERVER_JOB_RUNNER_H_

#include <atomic>
#include <cstdint>
#include <functional>
#include <initializer_list>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "engine/pipeline/artifacts.h"
#include "engine/pipeline/job_context.h"
#include "quantd/v1/service.pb.h"
#include "server/blob_index.h"
#include "server/blob_store.h"
#include "server/job_store.h"
#include "server/resource_names.h"
#include "server/tenant_s3.h"

namespace quantd {

struct JobRunnerOptions {
  // Progress events of one stage closer together than this are dropped
  // (stage changes always get through): a watcher needs a few per second,
  // not one per batch.
  int64_t min_progress_interval_ms = 200;
  // Where QAT jobs keep their checkpoints ("<dir>/<job id>.npz"); empty:
  // no checkpoints. Kept across restarts, removed when the job ends.
  std::string checkpoint_dir;
  // Called with every event after it is durable (live watchers).
  std::function<void(const v1::JobEvent&)> on_event;
  // Called when a run ends in a terminal state, with the job's record and
  // (for SUCCEEDED) its report (metrics).
  std::function<void(const JobRecord&, const v1::QuantizationReport*)>
      on_finished;
  // Whose credentials write a job's output_uri (null: nobody's; such a job
  // was refused at CreateJob).
  const TenantS3* tenant_s3 = nullptr;
};

class JobRunner {
 public:
  // `index` says which tenant owns which blob: a job's DataRefs resolve only
  // to its own tenant's uploads.
  JobRunner(JobStore* jobs, BlobStore* blobs, BlobIndex* index,
            JobRunnerOptions options = {})
      : jobs_(jobs),
        blobs_(blobs),
        index_(index),
        options_(std::move(options)) {}

  // Appends an event to `job_id`'s history and hands it to on_event; with
  // an `owner`, only while the job is leased to it.
  absl::StatusOr<v1::JobEvent> Emit(const std::string& job_id, JobState state,
                                    v1::JobEvent event,
                                    const std::string& owner = "");

  // Moves the job from one of `from` to `to` (with `error` as its error)
  // and appends, in the same transaction, a `reason` message event (if
  // non-empty) and the state-change event; then hands them to on_event.
  // With an `owner`, only while the job is leased to it.
  absl::StatusOr<JobRecord> Move(const std::string& job_id,
                                 std::initializer_list<JobState> from,
                                 JobState to, const std::string& error,
                                 const std::string& reason,
                                 const std::string& owner = "");

  // JobStore::Claim with the RUNNING event, handed to on_event.
  absl::StatusOr<std::optional<JobRecord>> Claim(
      const std::string& owner, absl::Duration lease,
      const std::set<std::string>& skip_tenants);

  // Start-up recovery (JobStore::Recover, or RecoverExpired when
  // `expired_only`: a store shared with other live replicas) with every
  // change's events: a re-queued job gets a message and a QUEUED event, a
  // failed one its reason and a FAILED event; terminal jobs go to
  // on_finished (metrics).
  absl::StatusOr<std::vector<JobRecord>> Recover(int max_attempts,
                                                 bool expired_only = false);

  // Runs `job`, which must be RUNNING (claimed with Claim or Move, which
  // wrote its RUNNING event); its events and its end are written only while
  // its lease (job.lease_owner, if any) holds. Returns its record afterwards:
  // SUCCEEDED, FAILED or CANCELLED, or QUEUED again when the run was
  // stopped with `requeue` set (a server shutting down). An error return
  // means the stores failed, not the job.
  absl::StatusOr<JobRecord> Run(const JobRecord& job,
                                const std::atomic<bool>* cancelled,
                                const std::atomic<bool>* requeue = nullptr);

  // After Run returned an error (a store failed: disk full, permissions),
  // tries to end the RUNNING job FAILED with that reason and its events, so
  // it does not stay RUNNING; logs the error either way.
  absl::StatusOr<JobRecord> Fail(const JobRecord& job, const absl::Status& why);

 private:
  // `event` with the job's name, `state` and the time set (no sequence).
  static v1::JobEvent Stamp(const std::string& job_id, JobState state,
                            v1::JobEvent event);
  // The serialized events of a move: `reason` (if any), then the state.
  static std::vector<std::string> MoveEvents(const JobRecord& moved,
                                             const std::string& reason);
  // Hands stored events to on_event.
  void Publish(const std::vector<JobEvent>& appended);
  std::string CheckpointPath(const JobRecord& job) const;
  void RemoveCheckpoint(const JobRecord& job) const;
  // With object storage: fetches a checkpoint another replica left and
  // copies each new one to the bucket.
  void MirrorCheckpoints(const JobRecord& job, PipelineOptions& options) const;
  // Plans the job for its tenant and runs the pipeline, recording progress
  // events; the first event that could not be stored goes to `event_error`.
  absl::StatusOr<PipelineResult> RunPipelineOf(
      const JobRecord& job, const std::atomic<bool>* cancelled,
      absl::Status* event_error);
  // Stores model and report as blobs and records them with the job;
  // returns their digests.
  absl::StatusOr<std::pair<std::string, std::string>> StoreArtifacts(
      const JobRecord& job, const PipelineResult& result);
  // The spec's output_uri, if any: the stored artifacts written there.
  absl::Status WriteOutputs(const JobRecord& job,
                            const std::pair<std::string, std::string>& stored);
  // RUNNING/CANCELLING -> `state`, then the reason event (if any), then the
  // state event, then on_finished.
  absl::StatusOr<JobRecord> Finish(const JobRecord& job, JobState state,
                                   const std::string& error,
                                   const v1::QuantizationReport* report);
  absl::StatusOr<JobRecord> Requeue(const JobRecord& job);

  JobStore* jobs_;
  BlobStore* blobs_;
  BlobIndex* index_;
  JobRunnerOptions options_;
};

}  // namespace quantd

#endif  // QUANTD_SERVER_JOB_RUNNER_H_
