// The scheduler: a bounded worker pool that runs QUEUED jobs from the job
// store (highest priority, then oldest) through JobRunner. Queued jobs live
// only in the store, so a restart loses nothing: Start() first recovers jobs
// that were RUNNING when the process died. Each job is claimed with a lease
// to this replica (`replica_id`), renewed by a heartbeat thread every
// lease / 3; the heartbeat also stops jobs cancelled through another
// replica or no longer leased here. With a store shared by replicas
// (`shared_store`), only expired leases are recovered, at start and on
// every heartbeat, so a dead replica's jobs run again elsewhere.
//
//   Scheduler scheduler(&jobs, &blobs, &index,
//                       {.workers = 1, .threads_per_job = 2});
//   scheduler.Start();
//   scheduler.Notify();             // after CreateJob
//   scheduler.Cancel("job-...");    // running: the pipeline stops within a
//                                   // batch; queued: cancelled at once
//   scheduler.Shutdown(absl::Seconds(30));
//
// oneDNN parallelizes with OpenMP: each worker sets its own thread count
// (threads_per_job), and workers x threads_per_job should not exceed the
// cores, or OpenMP barriers starve each other.
#ifndef QUANTD_SERVER_SCHEDULER_H_
#define QUANTD_SERVER_SCHEDULER_H_

#include <atomic>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "server/blob_store.h"
#include "server/job_runner.h"
#include "server/job_store.h"

namespace quantd {

struct SchedulerOptions {
  int workers = 1;
  int threads_per_job = 1;
  // Jobs of one tenant running at once; 0 means no limit beyond `workers`.
  int max_running_per_tenant = 0;
  // A job whose server stopped this many times while it ran fails.
  int max_attempts = 3;
  // How often idle workers look for work without a Notify().
  absl::Duration poll_interval = absl::Seconds(1);
  // This process in the store's leases; empty: "<hostname>-<random hex>".
  std::string replica_id;
  // How long a claimed job stays this replica's without a renewal.
  absl::Duration lease = absl::Seconds(30);
  // Other replicas use the same store: recover expired leases only.
  bool shared_store = false;
  JobRunnerOptions runner;
};

class Scheduler {
 public:
  Scheduler(JobStore* jobs, BlobStore* blobs, BlobIndex* index,
            SchedulerOptions options);
  ~Scheduler();

  // Recovers interrupted jobs and starts the workers.
  absl::Status Start();
  // Wakes a worker: a job was queued.
  void Notify();
  // QUEUED -> CANCELLED at once; RUNNING -> CANCELLING, and the worker
  // ends it CANCELLED. FailedPrecondition for terminal jobs.
  absl::StatusOr<JobRecord> Cancel(const std::string& tenant,
                                   const std::string& id);
  // Stops taking jobs; running jobs get `grace` to finish, then are
  // cancelled in the pipeline and put back in the queue (QUEUED) for the
  // next start. Blocks until the workers have stopped.
  void Shutdown(absl::Duration grace);

  int busy_workers() const { return busy_.load(); }
  const std::string& replica_id() const { return options_.replica_id; }

 private:
  void WorkerLoop();
  // Renews this replica's leases every lease / 3, flags jobs to stop
  // (cancelled elsewhere, or lost), and with a shared store re-queues
  // expired leases of other replicas.
  void HeartbeatLoop();
  void Heartbeat();

  JobStore* jobs_;
  BlobStore* blobs_;
  SchedulerOptions options_;
  JobRunner runner_;
  absl::Mutex mu_;
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  int64_t wakeups_ ABSL_GUARDED_BY(mu_) = 0;
  // Cancellation flags of running jobs, by id.
  std::map<std::string, std::shared_ptr<std::atomic<bool>>> running_
      ABSL_GUARDED_BY(mu_);
  std::map<std::string, int> running_per_tenant_ ABSL_GUARDED_BY(mu_);
  // Set when the grace period is over: running jobs are interrupted and
  // re-queued instead of cancelled.
  std::atomic<bool> interrupting_{false};
  std::atomic<int> busy_{0};
  std::vector<std::thread> threads_;
  std::thread heartbeat_;
};

}  // namespace quantd

#endif  // QUANTD_SERVER_SCHEDULER_H_
