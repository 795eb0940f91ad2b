#include "server/scheduler.h"

#include <omp.h>
#include <unistd.h>

#include <set>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "kernels/buffer_pool.h"
#include "server/job_store_rules.h"
#include "util/logging.h"
#include "util/status_macros.h"

namespace quantd {

namespace {

std::string DefaultReplicaId() {
  char host[256] = {0};
  if (gethostname(host, sizeof(host) - 1) != 0) host[0] = '\0';
  absl::StatusOr<std::string> bytes = RandomBytes(4);
  return absl::StrCat(
      host[0] != '\0' ? host : "quantd", "-",
      bytes.ok() ? absl::BytesToHexString(*bytes) : absl::StrCat(getpid()));
}

}  // namespace

Scheduler::Scheduler(JobStore* jobs, BlobStore* blobs, BlobIndex* index,
                     SchedulerOptions options)
    : jobs_(jobs),
      blobs_(blobs),
      options_(std::move(options)),
      runner_(jobs, blobs, index, options_.runner) {
  if (options_.replica_id.empty()) options_.replica_id = DefaultReplicaId();
}

Scheduler::~Scheduler() { Shutdown(absl::ZeroDuration()); }

absl::Status Scheduler::Start() {
  if (options_.workers < 1 || options_.threads_per_job < 1) {
    return absl::InvalidArgumentError(
        "workers and threads per job must be at least 1");
  }
  if (options_.lease < absl::Seconds(1)) {
    return absl::InvalidArgumentError("the lease must be at least 1 second");
  }
  QUANTD_RETURN_IF_ERROR(
      runner_.Recover(options_.max_attempts, options_.shared_store).status());
  for (int i = 0; i < options_.workers; ++i) {
    threads_.emplace_back([this] { WorkerLoop(); });
  }
  heartbeat_ = std::thread([this] { HeartbeatLoop(); });
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
        // The claim, its lease and its RUNNING event in one transaction.
        absl::StatusOr<std::optional<JobRecord>> claimed =
            runner_.Claim(options_.replica_id, options_.lease, busy);
        if (!claimed.ok()) {
          LOG(WARNING) << "claiming a job: " << claimed.status();
          break;
        }
        if (!claimed->has_value()) break;
        job = std::move(**claimed);
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

void Scheduler::HeartbeatLoop() {
  const absl::Duration every = options_.lease / 3;
  absl::MutexLock lock(&mu_);
  while (!stopping_ || !running_.empty()) {
    auto stop = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
      return stopping_ && running_.empty();
    };
    if (mu_.AwaitWithTimeout(absl::Condition(&stop), every)) break;
    mu_.Unlock();
    Heartbeat();
    mu_.Lock();
  }
}

void Scheduler::Heartbeat() {
  absl::StatusOr<std::map<std::string, JobState>> held =
      jobs_->RenewLeases(options_.replica_id, options_.lease);
  if (!held.ok()) {
    // The store is unreachable: the leases may run out, and other replicas
    // may then take the jobs over; the workers learn it when they next
    // write (their writes check the lease).
    LOG(WARNING) << "renewing the leases of replica " << options_.replica_id
                 << ": " << held.status();
    return;
  }
  {
    absl::MutexLock lock(&mu_);
    for (auto& [id, flag] : running_) {
      auto it = held->find(id);
      if (it == held->end()) {
        LOG(WARNING) << "job " << id << " is no longer leased to replica "
                     << options_.replica_id << "; stopping it here";
        flag->store(true);
      } else if (it->second == JobState::kCancelling) {
        flag->store(true);  // cancelled through another replica
      }
    }
  }
  if (!options_.shared_store) return;
  absl::StatusOr<std::vector<JobRecord>> recovered =
      runner_.Recover(options_.max_attempts, /*expired_only=*/true);
  if (!recovered.ok()) {
    LOG(WARNING) << "re-queueing expired leases: " << recovered.status();
  } else if (!recovered->empty()) {
    Notify();
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
  if (heartbeat_.joinable()) heartbeat_.join();
}

}  // namespace quantd
