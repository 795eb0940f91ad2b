// The JobStore on PostgreSQL, for several `quantd serve` replicas behind one
// Service: every replica opens the same database. Calls of one replica are
// serialized on its connection; between replicas, read-then-write sequences
// lock the job's row (SELECT ... FOR UPDATE) and Create takes an advisory
// lock, so compare-and-set moves, event sequence numbers, idempotent creates
// and queue limits hold across replicas as they do within one. The schema is
// created and migrated at open under an advisory lock, so replicas starting
// together apply each migration once. Strings are stored as bytea: clients'
// bytes come back exactly, whatever their encoding, as with SQLite.
//
//   absl::StatusOr<std::unique_ptr<JobStore>> store = PostgresJobStore::Open(
//       "postgresql://quantd:secret@db.internal:5432/quantd", key);
#ifndef QUANTD_SERVER_POSTGRES_JOB_STORE_H_
#define QUANTD_SERVER_POSTGRES_JOB_STORE_H_

#include <atomic>
#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "server/job_store.h"
#include "server/job_store_rules.h"
#include "server/postgres_db.h"

namespace quantd {

class PostgresJobStore : public JobStore {
 public:
  // Connects to `url` (libpq's connection URI) and creates or migrates the
  // schema (postgres_job_store_schema.h). An empty `page_token_key` uses
  // the database's own key (made by the first replica to open it), so a
  // page token from one replica works on all of them.
  static absl::StatusOr<std::unique_ptr<JobStore>> Open(
      const std::string& url, const std::string& page_token_key);

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
  // LISTEN quantd_events on a second connection; every appended event is
  // NOTIFYed with its job id in the appending transaction.
  absl::Status WatchEvents(
      std::function<void(const std::string& job_id)> on_event) override;
  void StopWatchingEvents() override;
  ~PostgresJobStore() override;
  absl::StatusOr<int64_t> CountInState(JobState state,
                                       const std::string& tenant) override;
  absl::StatusOr<std::vector<JobRecord>> Recover(
      int32_t max_attempts, const EventsOnMove& events,
      std::vector<JobEvent>* appended) override;
  absl::StatusOr<bool> ReferencesBlob(const std::string& sha256) override;
  absl::StatusOr<int64_t> ArtifactBytes(const std::string& tenant) override;
  absl::StatusOr<JobState> StateOf(const std::string& id) override;

 private:
  PostgresJobStore(std::unique_ptr<PostgresDb> db, std::string url,
                   std::string page_token_key);
  void ListenLoop(std::unique_ptr<PostgresDb> listener,
                  std::function<void(const std::string&)> on_event);

  // Rows selected with the job columns (see job_store_schema.h); `seqs`, if
  // given, receives each row's creation sequence (the List position).
  static absl::Status ReadJobs(const PgResult& rows,
                               std::vector<JobRecord>& jobs,
                               std::vector<int64_t>* seqs = nullptr);
  // ResourceExhausted when a new QUEUED job of `tenant` would exceed
  // `limits`.
  absl::Status CheckQueueRoomLocked(const std::string& tenant,
                                    const QueueLimits& limits)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // The job by id (any tenant, or only `tenant` if non-empty); NotFound.
  // `for_update` locks its row until the transaction ends.
  absl::StatusOr<JobRecord> FindLocked(absl::string_view id,
                                       absl::string_view tenant,
                                       bool for_update)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Moves `job` to `to` in memory and in the database (the bookkeeping
  // shared by Transition and Recover).
  absl::Status MoveLocked(JobRecord& job, JobState to, absl::string_view error)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // The QUEUED job to run next, skipping `skip_tenants`; `lock_rows` locks
  // the rows looked at (FOR UPDATE SKIP LOCKED) for a claim.
  absl::StatusOr<std::optional<JobRecord>> QueueHeadLocked(
      const std::set<std::string>& skip_tenants, bool lock_rows)
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
  std::unique_ptr<PostgresDb> db_ ABSL_GUARDED_BY(mu_);
  const PageTokens page_tokens_;
  const std::string url_;
  std::atomic<bool> stop_listening_{false};
  std::thread listener_;
};

}  // namespace quantd

#endif  // QUANTD_SERVER_POSTGRES_JOB_STORE_H_
