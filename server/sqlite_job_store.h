// The JobStore on one SQLite file (WAL journal, synchronous=FULL): the
// embedded default, for one `quantd serve` that owns its data folder. Calls
// are serialized on one connection (SQLite serializes writers anyway, and
// one connection keeps every read consistent with the last write). Only one
// process should open a given database file at a time; several replicas
// share a PostgreSQL store instead (postgres_job_store.h).
//
//   absl::StatusOr<std::unique_ptr<JobStore>> store =
//       SqliteJobStore::Open("/var/lib/quantd/jobs.db", page_token_key);
#ifndef QUANTD_SERVER_SQLITE_JOB_STORE_H_
#define QUANTD_SERVER_SQLITE_JOB_STORE_H_

#include <memory>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "server/job_store.h"
#include "server/job_store_rules.h"
#include "server/sqlite_db.h"

namespace quantd {

class SqliteJobStore : public JobStore {
 public:
  // Opens or creates the database at `path` and its schema
  // (job_store_schema.h).
  static absl::StatusOr<std::unique_ptr<JobStore>> Open(
      const std::string& path, const std::string& page_token_key);

  absl::StatusOr<std::pair<JobRecord, bool>> Create(
      JobRecord job, const QueueLimits& limits) override;
  absl::StatusOr<JobRecord> Get(const std::string& tenant,
                                const std::string& id) override;
  absl::StatusOr<JobPage> List(const std::string& tenant,
                               std::optional<JobState> state, int32_t page_size,
                               const std::string& page_token) override;
  absl::StatusOr<JobRecord> Transition(const std::string& id,
                                       std::initializer_list<JobState> from,
                                       JobState to, const std::string& error,
                                       const EventsOnMove& events,
                                       std::vector<JobEvent>* appended,
                                       const std::string& owner) override;
  absl::Status SetArtifacts(const std::string& id,
                            const std::string& model_sha256, int64_t model_size,
                            const std::string& report_sha256,
                            int64_t report_size,
                            const std::string& report) override;
  absl::StatusOr<int64_t> AppendEvent(const std::string& job_id,
                                      const std::string& payload,
                                      const std::string* progress,
                                      const std::string& owner) override;
  absl::StatusOr<std::vector<JobEvent>> EventsAfter(const std::string& job_id,
                                                    int64_t after,
                                                    int32_t limit) override;
  absl::StatusOr<JobRecord> Delete(const std::string& tenant,
                                   const std::string& id) override;
  absl::StatusOr<std::optional<JobRecord>> NextQueued(
      const std::set<std::string>& skip_tenants) override;
  absl::StatusOr<std::optional<JobRecord>> Claim(
      const std::string& owner, absl::Duration lease,
      const std::set<std::string>& skip_tenants, const EventsOnMove& events,
      std::vector<JobEvent>* appended) override;
  absl::StatusOr<std::map<std::string, JobState>> RenewLeases(
      const std::string& owner, absl::Duration lease) override;
  absl::StatusOr<std::vector<JobRecord>> RecoverExpired(
      int32_t max_attempts, const EventsOnMove& events,
      std::vector<JobEvent>* appended) override;
  absl::StatusOr<int64_t> CountInState(JobState state,
                                       const std::string& tenant) override;
  absl::StatusOr<std::vector<JobRecord>> Recover(
      int32_t max_attempts, const EventsOnMove& events,
      std::vector<JobEvent>* appended) override;
  absl::StatusOr<bool> ReferencesBlob(const std::string& sha256) override;
  absl::StatusOr<int64_t> ArtifactBytes(const std::string& tenant) override;
  absl::StatusOr<JobState> StateOf(const std::string& id) override;

 private:
  SqliteJobStore(std::unique_ptr<SqliteDb> db, std::string page_token_key);

  absl::Status InitSchema() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Rows selected with the job columns (see job_store_schema.h); `seqs`, if
  // given, receives each row's creation sequence (the List position).
  static absl::Status ReadJobs(SqliteStatement& st,
                               std::vector<JobRecord>& jobs,
                               std::vector<int64_t>* seqs = nullptr);
  // ResourceExhausted when a new QUEUED job of `tenant` would exceed
  // `limits`.
  absl::Status CheckQueueRoomLocked(const std::string& tenant,
                                    const QueueLimits& limits)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // The job by id (any tenant, or only `tenant` if non-empty); NotFound.
  absl::StatusOr<JobRecord> FindLocked(absl::string_view id,
                                       absl::string_view tenant)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Moves `job` to `to` in memory and in the database (the bookkeeping
  // shared by Transition and Recover).
  absl::Status MoveLocked(JobRecord& job, JobState to, absl::string_view error)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // The QUEUED job to run next, skipping `skip_tenants` (NextQueued, Claim).
  absl::StatusOr<std::optional<JobRecord>> QueueHeadLocked(
      const std::set<std::string>& skip_tenants)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Writes a moved job's state, times, error and lease.
  absl::Status WriteMoveLocked(const JobRecord& job)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Recover (every RUNNING/CANCELLING job) or RecoverExpired.
  absl::StatusOr<std::vector<JobRecord>> RecoverWhere(
      bool expired_only, int32_t max_attempts, const EventsOnMove& events,
      std::vector<JobEvent>* appended);
  // Appends one event inside the caller's transaction (job checked to
  // exist by the caller).
  absl::StatusOr<JobEvent> AppendEventLocked(const std::string& job_id,
                                             const std::string& payload)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Appends `events(job)` inside the caller's transaction.
  absl::Status AppendMoveEventsLocked(const JobRecord& job,
                                      const EventsOnMove& events,
                                      std::vector<JobEvent>* appended)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  absl::Mutex mu_;
  std::unique_ptr<SqliteDb> db_ ABSL_GUARDED_BY(mu_);
  const PageTokens page_tokens_;
};

}  // namespace quantd

#endif  // QUANTD_SERVER_SQLITE_JOB_STORE_H_
