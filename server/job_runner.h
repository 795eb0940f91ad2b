// Runs one job of the service end to end: resolves the spec's blob digests
// to files of the blob store (local paths are refused), runs the PTQ
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
#include <string>

#include "absl/status/statusor.h"
#include "quantd/v1/service.pb.h"
#include "server/blob_index.h"
#include "server/blob_store.h"
#include "server/job_store.h"

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
};

// The job's resource name, "jobs/{id}".
std::string JobName(const std::string& id);

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

  // Appends an event to `job_id`'s history and hands it to on_event.
  absl::StatusOr<v1::JobEvent> Emit(const std::string& job_id, JobState state,
                                    v1::JobEvent event);

  // Runs `job`, which must be RUNNING; returns its record afterwards:
  // SUCCEEDED, FAILED or CANCELLED, or QUEUED again when the run was
  // stopped with `requeue` set (a server shutting down). An error return
  // means the stores failed, not the job.
  absl::StatusOr<JobRecord> Run(const JobRecord& job,
                                const std::atomic<bool>* cancelled,
                                const std::atomic<bool>* requeue = nullptr);

 private:
  JobStore* jobs_;
  BlobStore* blobs_;
  BlobIndex* index_;
  JobRunnerOptions options_;
};

}  // namespace quantd

#endif  // QUANTD_SERVER_JOB_RUNNER_H_
