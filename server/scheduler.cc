#include "server/scheduler.h"

#include <omp.h>

#include <set>

#include "absl/strings/str_cat.h"
#include "kernels/buffer_pool.h"
#include "util/logging.h"
#include "util/status_macros.h"

namespace quantd {

Scheduler::Scheduler(JobStore* jobs, BlobStore* blobs, BlobIndex* index,
                     SchedulerOptions options)
    : jobs_(jobs),
      blobs_(blobs),
      options_(std::move(options)),
      runner_(jobs, blobs, index, options_.runner) {}

Scheduler::~Scheduler() { Shutdown(absl::ZeroDuration()); }

absl::Status Scheduler::Start() {
  if (options_.workers < 1 || options_.threads_per_job < 1) {
    return absl::InvalidArgumentError(
        "workers and threads per job must be at least 1");
  }
  QUANTD_RETURN_IF_ERROR(runner_.Recover(options_.max_attempts).status());
  for (int i = 0; i < options_.workers; ++i) {
    threads_.emplace_back([this] { WorkerLoop(); });
  }
  return absl::OkStatus();
}

void Scheduler::Notify() {
  absl::MutexLock lock(&mu_);
  ++wakeups_;
}

absl::StatusOr<JobRecord> Scheduler::Cancel(const std::string& tenant,
                                            const std::string& id) {
  QUANTD_RETURN_IF_ERROR((jobs_->Get(tenant, id)).status());
  absl::StatusOr<JobRecord> queued =
      runner_.Move(id, {JobState::kQueued}, JobState::kCancelled,
                   "cancelled by CancelJob", "");
  if (queued.ok() ||
      queued.status().code() != absl::StatusCode::kFailedPrecondition) {
    return queued;
  }
  // Running: flag it; the worker records CANCELLED when the pipeline stops.
  QUANTD_ASSIGN_OR_RETURN(
      JobRecord cancelling,
      runner_.Move(id, {JobState::kRunning}, JobState::kCancelling, "", ""));
  absl::MutexLock lock(&mu_);
  auto it = running_.find(id);
  if (it != running_.end()) it->second->store(true);
  return cancelling;
}

void Scheduler::WorkerLoop() {
  // OpenMP's thread count is per calling thread: this worker's pipeline
  // uses threads_per_job threads.
  omp_set_num_threads(options_.threads_per_job);
  while (true) {
    int64_t seen;
    {
      absl::MutexLock lock(&mu_);
      if (stopping_) return;
      seen = wakeups_;
    }
    // Run queued jobs until there are none, then sleep until Notify() or
    // the poll interval (jobs queued by another process, re-queued ones).
    while (true) {
      // Pick, claim (compare-and-set QUEUED -> RUNNING: another process's
      // worker may race) and register under the lock, so that per-tenant
      // counts stay exact across this process's workers.
      JobRecord job;
      auto flag = std::make_shared<std::atomic<bool>>(false);
      {
        absl::MutexLock lock(&mu_);
        if (stopping_) return;
        std::set<std::string> busy;
        if (options_.max_running_per_tenant > 0) {
          for (const auto& [tenant, n] : running_per_tenant_) {
            if (n >= options_.max_running_per_tenant) busy.insert(tenant);
          }
        }
        absl::StatusOr<std::optional<JobRecord>> next = jobs_->NextQueued(busy);
        if (!next.ok() || !next->has_value()) break;
        // The claim and its RUNNING event in one transaction.
        absl::StatusOr<JobRecord> claimed = runner_.Move(
            (*next)->id, {JobState::kQueued}, JobState::kRunning, "", "");
        if (!claimed.ok()) continue;
        job = std::move(*claimed);
        if (interrupting_) flag->store(true);
        running_[job.id] = flag;
        ++running_per_tenant_[job.tenant];
      }
      ++busy_;
      if (absl::StatusOr<JobRecord> r =
              runner_.Run(job, flag.get(), &interrupting_);
          !r.ok()) {
        // A store failed; the job must not stay RUNNING for ever.
        LogIfError(runner_.Fail(job, r.status()).status(),
                   absl::StrCat("ending job ", job.id, " FAILED"));
      }
      // When the last running job ends, the buffer cache goes back to the
      // system: an idle server should not hold a model's activations
      // (a pod's memory limit counts them).
      if (--busy_ == 0) BufferPool::Default().Release();
      absl::MutexLock lock(&mu_);
      running_.erase(job.id);
      if (--running_per_tenant_[job.tenant] == 0) {
        running_per_tenant_.erase(job.tenant);
      }
      ++wakeups_;  // idle workers may now take a job of this tenant
      if (stopping_) return;
    }
    absl::MutexLock lock(&mu_);
    auto woken = [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
      return stopping_ || wakeups_ != seen;
    };
    mu_.AwaitWithTimeout(absl::Condition(&woken), options_.poll_interval);
  }
}

void Scheduler::Shutdown(absl::Duration grace) {
  {
    absl::MutexLock lock(&mu_);
    if (stopping_ && threads_.empty()) return;
    stopping_ = true;
    // Running jobs get `grace` to finish.
    auto idle = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
      return running_.empty();
    };
    mu_.AwaitWithTimeout(absl::Condition(&idle), grace);
    interrupting_ = true;
    for (auto& [id, flag] : running_) flag->store(true);
  }
  for (std::thread& t : threads_) t.join();
  threads_.clear();
}

}  // namespace quantd
