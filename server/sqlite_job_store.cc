#include "server/sqlite_job_store.h"

#include <utility>

#include "absl/strings/str_cat.h"
#include "server/job_labels.h"
#include "server/job_store_schema.h"
#include "util/status_macros.h"

namespace quantd {

absl::Status SqliteJobStore::ReadJobs(SqliteStatement& st,
                                      std::vector<JobRecord>& jobs,
                                      std::vector<int64_t>* seqs) {
  for (;;) {
    QUANTD_ASSIGN_OR_RETURN(bool row, st.Step());
    if (!row) return absl::OkStatus();
    JobRecord& job = jobs.emplace_back();
    if (seqs != nullptr) seqs->push_back(st.ColInt(0));
    QUANTD_RETURN_IF_ERROR(DecodeJobRow([&](int c) { return st.ColInt(c); },
                                        [&](int c) { return st.ColStr(c); },
                                        job));
  }
}

SqliteJobStore::SqliteJobStore(std::unique_ptr<SqliteDb> db,
                               std::string page_token_key)
    : db_(std::move(db)), page_tokens_(std::move(page_token_key)) {}

absl::StatusOr<std::unique_ptr<JobStore>> SqliteJobStore::Open(
    const std::string& path, const std::string& page_token_key) {
  QUANTD_RETURN_IF_ERROR(CheckPageTokenKey(page_token_key));
  QUANTD_ASSIGN_OR_RETURN(std::unique_ptr<SqliteDb> db,
                          SqliteDb::Open(path, "job database"));
  std::unique_ptr<SqliteJobStore> store(
      new SqliteJobStore(std::move(db), page_token_key));
  absl::MutexLock lock(&store->mu_);
  QUANTD_RETURN_IF_ERROR(store->InitSchema());
  return std::unique_ptr<JobStore>(std::move(store));
}

absl::Status SqliteJobStore::InitSchema() {
  SqliteDb::Transaction txn(*db_);
  QUANTD_RETURN_IF_ERROR(txn.Begin());
  QUANTD_ASSIGN_OR_RETURN(const int64_t version,
                          db_->Prepare("PRAGMA user_version").Scalar());
  if (version > kSchemaVersion) {
    return absl::FailedPreconditionError(absl::StrCat(
        "the job database ", db_->path(), " has schema version ", version,
        ", written by a newer quantd; this one understands up to version ",
        kSchemaVersion, ". Run the newer quantd or use another data folder"));
  }
  if (version < 1) QUANTD_RETURN_IF_ERROR(db_->Exec(kSchema));
  if (version < 2) QUANTD_RETURN_IF_ERROR(db_->Exec(kMigrationTo2));
  if (version < 3) QUANTD_RETURN_IF_ERROR(db_->Exec(kMigrationTo3));
  return txn.Commit();
}

absl::StatusOr<JobRecord> SqliteJobStore::FindLocked(absl::string_view id,
                                                     absl::string_view tenant) {
  SqliteStatement st =
      db_->Prepare("SELECT " JOB_COLUMNS
                   " FROM jobs WHERE id = ?1 AND (?2 = '' OR tenant = ?2)");
  st.Bind(id, tenant);
  std::vector<JobRecord> jobs;
  QUANTD_RETURN_IF_ERROR(ReadJobs(st, jobs));
  if (jobs.empty()) return JobNotFound(id);
  return std::move(jobs[0]);
}

absl::StatusOr<std::pair<JobRecord, bool>> SqliteJobStore::Create(
    JobRecord job, const QueueLimits& limits) {
  QUANTD_RETURN_IF_ERROR(CheckNewJob(job));
  absl::MutexLock lock(&mu_);
  SqliteDb::Transaction txn(*db_);
  QUANTD_RETURN_IF_ERROR(txn.Begin());
  if (!job.request_id.empty()) {
    SqliteStatement st =
        db_->Prepare("SELECT " JOB_COLUMNS
                     " FROM jobs WHERE tenant = ?1 AND request_id = ?2");
    st.Bind(job.tenant, job.request_id);
    std::vector<JobRecord> existing;
    QUANTD_RETURN_IF_ERROR(ReadJobs(st, existing));
    if (!existing.empty()) return RetriedCreate(std::move(existing[0]), job);
  }
  QUANTD_RETURN_IF_ERROR(CheckQueueRoomLocked(job.tenant, limits));

  QUANTD_RETURN_IF_ERROR(ResetNewJob(job));
  SqliteStatement st = db_->Prepare(
      "INSERT INTO jobs (id, tenant, request_id, state, priority, spec, "
      "display_name, labels, attempts, error, create_time_us, update_time_us, "
      "start_time_us, end_time_us, model_sha256, model_size, report_sha256, "
      "report_size) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, 0, '', ?9, ?9, 0, "
      "0, '', 0, '', 0)");
  st.Bind(job.id, job.tenant, job.request_id, job.state, job.priority,
          SqlBlob{job.spec}, job.display_name,
          SqlBlob{EncodeLabels(job.labels)}, job.create_time_us);
  QUANTD_RETURN_IF_ERROR(st.Run());
  QUANTD_RETURN_IF_ERROR(txn.Commit());
  return std::make_pair(std::move(job), true);
}

absl::StatusOr<JobRecord> SqliteJobStore::Get(const std::string& tenant,
                                              const std::string& id) {
  QUANTD_RETURN_IF_ERROR(CheckKey("tenant", tenant));
  QUANTD_RETURN_IF_ERROR(CheckKey("job id", id));
  absl::MutexLock lock(&mu_);
  return FindLocked(id, tenant);
}

absl::StatusOr<JobPage> SqliteJobStore::List(const std::string& tenant,
                                             std::optional<JobState> state,
                                             int32_t page_size,
                                             const std::string& page_token) {
  QUANTD_RETURN_IF_ERROR(CheckKey("tenant", tenant));
  QUANTD_ASSIGN_OR_RETURN(page_size, PageSize(page_size));
  QUANTD_ASSIGN_OR_RETURN(const int64_t position,
                          page_tokens_.Position(tenant, state, page_token));
  absl::MutexLock lock(&mu_);
  SqliteStatement st =
      db_->Prepare("SELECT " JOB_COLUMNS
                   " FROM jobs WHERE tenant = ?1 AND (?2 = 0 OR state = ?2) "
                   "AND seq < ?3 ORDER BY seq DESC LIMIT ?4");
  // One more row than asked tells whether there is a next page.
  st.Bind(tenant, state ? static_cast<int>(*state) : 0, position,
          page_size + 1);
  JobPage page;
  std::vector<int64_t> seqs;
  QUANTD_RETURN_IF_ERROR(ReadJobs(st, page.jobs, &seqs));
  if (static_cast<int32_t>(page.jobs.size()) > page_size) {
    page.jobs.resize(page_size);
    page.next_page_token =
        page_tokens_.Token(tenant, state, seqs[page_size - 1]);
  }
  return page;
}

absl::Status SqliteJobStore::MoveLocked(JobRecord& job, JobState to,
                                        absl::string_view error) {
  ApplyMove(job, to, error);
  return WriteMoveLocked(job);
}

absl::Status SqliteJobStore::WriteMoveLocked(const JobRecord& job) {
  SqliteStatement st = db_->Prepare(
      "UPDATE jobs SET state = ?2, attempts = ?3, error = ?4, "
      "update_time_us = ?5, start_time_us = ?6, end_time_us = ?7, "
      "lease_owner = ?8, lease_expiry_us = ?9 WHERE id = ?1");
  st.Bind(job.id, job.state, job.attempts, job.error, job.update_time_us,
          job.start_time_us, job.end_time_us, job.lease_owner,
          job.lease_expiry_us);
  return st.Run();
}

absl::StatusOr<JobEvent> SqliteJobStore::AppendEventLocked(
    const std::string& job_id, const std::string& payload) {
  QUANTD_RETURN_IF_ERROR(
      CheckSize("the event", payload.size(), kMaxEventPayloadBytes));
  SqliteStatement max = db_->Prepare(
      "SELECT COALESCE(MAX(sequence), 0) + 1 FROM events WHERE job_id = ?1");
  max.Bind(job_id);
  JobEvent event{job_id, 0, NowUs(), payload};
  QUANTD_ASSIGN_OR_RETURN(event.sequence, max.Scalar());
  SqliteStatement st = db_->Prepare(
      "INSERT INTO events (job_id, sequence, time_us, payload) VALUES (?1, "
      "?2, ?3, ?4)");
  st.Bind(job_id, event.sequence, event.time_us, SqlBlob{payload});
  QUANTD_RETURN_IF_ERROR(st.Run());
  return event;
}

absl::Status SqliteJobStore::AppendMoveEventsLocked(
    const JobRecord& job, const EventsOnMove& events,
    std::vector<JobEvent>* appended) {
  if (!events) return absl::OkStatus();
  for (const std::string& payload : events(job)) {
    QUANTD_ASSIGN_OR_RETURN(JobEvent event, AppendEventLocked(job.id, payload));
    if (appended != nullptr) appended->push_back(std::move(event));
  }
  return absl::OkStatus();
}

absl::StatusOr<JobRecord> SqliteJobStore::Transition(
    const std::string& id, std::initializer_list<JobState> from, JobState to,
    const std::string& error, const EventsOnMove& events,
    std::vector<JobEvent>* appended, const std::string& owner) {
  absl::MutexLock lock(&mu_);
  SqliteDb::Transaction txn(*db_);
  QUANTD_RETURN_IF_ERROR(txn.Begin());
  QUANTD_ASSIGN_OR_RETURN(JobRecord found, FindLocked(id, ""));
  JobRecord job = std::move(found);
  QUANTD_RETURN_IF_ERROR(CheckMoveAllowed(job, from, to));
  QUANTD_RETURN_IF_ERROR(CheckLease(job, owner));
  QUANTD_RETURN_IF_ERROR(MoveLocked(job, to, error));
  std::vector<JobEvent> added;
  QUANTD_RETURN_IF_ERROR(AppendMoveEventsLocked(job, events, &added));
  QUANTD_RETURN_IF_ERROR(txn.Commit());
  HandOver(added, appended);
  return job;
}

absl::Status SqliteJobStore::SetArtifacts(const std::string& id,
                                          const std::string& model_sha256,
                                          int64_t model_size,
                                          const std::string& report_sha256,
                                          int64_t report_size,
                                          const std::string& report) {
  QUANTD_RETURN_IF_ERROR(CheckArtifacts(model_sha256, model_size, report_sha256,
                                        report_size, report));
  absl::MutexLock lock(&mu_);
  SqliteStatement st = db_->Prepare(
      "UPDATE jobs SET model_sha256 = ?2, model_size = ?3, report_sha256 = ?4, "
      "report_size = ?5, update_time_us = ?6, report = ?7 WHERE id = ?1");
  st.Bind(id, model_sha256, model_size, report_sha256, report_size, NowUs(),
          SqlBlob{report});
  QUANTD_RETURN_IF_ERROR(st.Run());
  return db_->Changes() == 0 ? JobNotFound(id) : absl::OkStatus();
}

absl::StatusOr<int64_t> SqliteJobStore::AppendEvent(const std::string& job_id,
                                                    const std::string& payload,
                                                    const std::string* progress,
                                                    const std::string& owner) {
  absl::MutexLock lock(&mu_);
  SqliteDb::Transaction txn(*db_);
  QUANTD_RETURN_IF_ERROR(txn.Begin());
  QUANTD_ASSIGN_OR_RETURN(const JobRecord job, FindLocked(job_id, ""));
  QUANTD_RETURN_IF_ERROR(CheckLease(job, owner));
  QUANTD_ASSIGN_OR_RETURN(const JobEvent event,
                          AppendEventLocked(job_id, payload));
  if (progress != nullptr) {
    SqliteStatement p =
        db_->Prepare("UPDATE jobs SET progress = ?2 WHERE id = ?1");
    p.Bind(job_id, SqlBlob{*progress});
    QUANTD_RETURN_IF_ERROR(p.Run());
  }
  QUANTD_RETURN_IF_ERROR(txn.Commit());  // fsynced: synchronous=FULL
  return event.sequence;
}

absl::StatusOr<std::vector<JobEvent>> SqliteJobStore::EventsAfter(
    const std::string& job_id, int64_t after, int32_t limit) {
  QUANTD_RETURN_IF_ERROR(CheckEventsLimit(limit));
  absl::MutexLock lock(&mu_);
  QUANTD_RETURN_IF_ERROR(FindLocked(job_id, "").status());
  SqliteStatement st = db_->Prepare(
      "SELECT sequence, time_us, payload FROM events WHERE job_id = ?1 AND "
      "sequence > ?2 ORDER BY sequence LIMIT ?3");
  st.Bind(job_id, after, limit);
  std::vector<JobEvent> events;
  for (;;) {
    QUANTD_ASSIGN_OR_RETURN(bool row, st.Step());
    if (!row) return events;
    events.push_back({job_id, st.ColInt(0), st.ColInt(1), st.ColStr(2)});
  }
}

absl::StatusOr<JobRecord> SqliteJobStore::Delete(const std::string& tenant,
                                                 const std::string& id) {
  QUANTD_RETURN_IF_ERROR(CheckKey("tenant", tenant));
  QUANTD_RETURN_IF_ERROR(CheckKey("job id", id));
  absl::MutexLock lock(&mu_);
  SqliteDb::Transaction txn(*db_);
  QUANTD_RETURN_IF_ERROR(txn.Begin());
  QUANTD_ASSIGN_OR_RETURN(JobRecord found, FindLocked(id, tenant));
  QUANTD_RETURN_IF_ERROR(CheckDeletable(found));
  SqliteStatement st =
      db_->Prepare("DELETE FROM jobs WHERE id = ?1");  // events cascade
  st.Bind(id);
  QUANTD_RETURN_IF_ERROR(st.Run());
  QUANTD_RETURN_IF_ERROR(txn.Commit());
  return found;
}

absl::StatusOr<std::optional<JobRecord>> SqliteJobStore::NextQueued(
    const std::set<std::string>& skip_tenants) {
  absl::MutexLock lock(&mu_);
  return QueueHeadLocked(skip_tenants);
}

absl::StatusOr<std::optional<JobRecord>> SqliteJobStore::QueueHeadLocked(
    const std::set<std::string>& skip_tenants) {
  // Tenants at their concurrency limit are skipped, looking at most 256
  // jobs deep.
  SqliteStatement st =
      db_->Prepare("SELECT " JOB_COLUMNS
                   " FROM jobs WHERE state = ?1 ORDER BY priority DESC, "
                   "seq ASC LIMIT 256");
  st.Bind(JobState::kQueued);
  std::vector<JobRecord> jobs;
  QUANTD_RETURN_IF_ERROR(ReadJobs(st, jobs));
  for (JobRecord& j : jobs) {
    if (!skip_tenants.contains(j.tenant)) return std::move(j);
  }
  return std::nullopt;
}

absl::Status SqliteJobStore::CheckQueueRoomLocked(const std::string& tenant,
                                                  const QueueLimits& limits) {
  SqliteStatement st = db_->Prepare(
      "SELECT COUNT(*), COALESCE(SUM(tenant = ?2), 0) FROM jobs "
      "WHERE state = ?1");
  st.Bind(JobState::kQueued, tenant);
  QUANTD_ASSIGN_OR_RETURN(const bool row, st.Step());
  const int64_t queued = row ? st.ColInt(0) : 0;
  const int64_t mine = row ? st.ColInt(1) : 0;
  return CheckQueueRoom(mine, queued, limits);
}

absl::StatusOr<int64_t> SqliteJobStore::CountInState(
    JobState state, const std::string& tenant) {
  absl::MutexLock lock(&mu_);
  SqliteStatement st = db_->Prepare(
      "SELECT COUNT(*) FROM jobs WHERE state = ?1 AND (?2 = '' OR tenant = "
      "?2)");
  st.Bind(state, tenant);
  return st.Scalar();
}

absl::StatusOr<std::vector<JobRecord>> SqliteJobStore::Recover(
    int32_t max_attempts, const EventsOnMove& events,
    std::vector<JobEvent>* appended) {
  return RecoverWhere(/*expired_only=*/false, max_attempts, events, appended);
}

absl::StatusOr<std::vector<JobRecord>> SqliteJobStore::RecoverExpired(
    int32_t max_attempts, const EventsOnMove& events,
    std::vector<JobEvent>* appended) {
  return RecoverWhere(/*expired_only=*/true, max_attempts, events, appended);
}

absl::StatusOr<std::vector<JobRecord>> SqliteJobStore::RecoverWhere(
    bool expired_only, int32_t max_attempts, const EventsOnMove& events,
    std::vector<JobEvent>* appended) {
  QUANTD_RETURN_IF_ERROR(CheckRecoverAttempts(max_attempts));
  absl::MutexLock lock(&mu_);
  SqliteDb::Transaction txn(*db_);
  QUANTD_RETURN_IF_ERROR(txn.Begin());
  std::vector<JobRecord> jobs;
  {
    SqliteStatement st = db_->Prepare(
        "SELECT " JOB_COLUMNS
        " FROM jobs WHERE state IN (?1, ?2) AND (?3 = 0 OR lease_expiry_us < "
        "?4) ORDER BY seq");
    st.Bind(JobState::kRunning, JobState::kCancelling,
            int64_t{expired_only ? 1 : 0}, NowUs());
    QUANTD_RETURN_IF_ERROR(ReadJobs(st, jobs));
  }
  std::vector<JobEvent> added;
  for (JobRecord& job : jobs) {
    const auto [to, error] = RecoveryMove(job, max_attempts);
    QUANTD_RETURN_IF_ERROR(MoveLocked(job, to, error));
    QUANTD_RETURN_IF_ERROR(AppendMoveEventsLocked(job, events, &added));
  }
  QUANTD_RETURN_IF_ERROR(txn.Commit());
  HandOver(added, appended);
  return jobs;
}

absl::StatusOr<std::optional<JobRecord>> SqliteJobStore::Claim(
    const std::string& owner, absl::Duration lease,
    const std::set<std::string>& skip_tenants, const EventsOnMove& events,
    std::vector<JobEvent>* appended) {
  QUANTD_RETURN_IF_ERROR(CheckKey("lease owner", owner));
  absl::MutexLock lock(&mu_);
  SqliteDb::Transaction txn(*db_);  // BEGIN IMMEDIATE: one claimer at a time
  QUANTD_RETURN_IF_ERROR(txn.Begin());
  QUANTD_ASSIGN_OR_RETURN(std::optional<JobRecord> job,
                          QueueHeadLocked(skip_tenants));
  if (!job.has_value()) return std::nullopt;
  ApplyClaim(*job, owner, lease);
  QUANTD_RETURN_IF_ERROR(WriteMoveLocked(*job));
  std::vector<JobEvent> added;
  QUANTD_RETURN_IF_ERROR(AppendMoveEventsLocked(*job, events, &added));
  QUANTD_RETURN_IF_ERROR(txn.Commit());
  HandOver(added, appended);
  return job;
}

absl::StatusOr<std::map<std::string, JobState>> SqliteJobStore::RenewLeases(
    const std::string& owner, absl::Duration lease) {
  QUANTD_RETURN_IF_ERROR(CheckKey("lease owner", owner));
  absl::MutexLock lock(&mu_);
  SqliteStatement st = db_->Prepare(
      "UPDATE jobs SET lease_expiry_us = ?2 WHERE lease_owner = ?1 AND state "
      "IN (?3, ?4) RETURNING id, state");
  st.Bind(owner, NowUs() + absl::ToInt64Microseconds(lease), JobState::kRunning,
          JobState::kCancelling);
  std::map<std::string, JobState> held;
  for (;;) {
    QUANTD_ASSIGN_OR_RETURN(bool row, st.Step());
    if (!row) return held;
    held[st.ColStr(0)] = static_cast<JobState>(st.ColInt(1));
  }
}

absl::StatusOr<bool> SqliteJobStore::ReferencesBlob(const std::string& sha256) {
  if (sha256.empty()) return false;
  absl::MutexLock lock(&mu_);
  SqliteStatement st = db_->Prepare(
      "SELECT EXISTS (SELECT 1 FROM jobs WHERE model_sha256 = ?1) OR "
      "EXISTS (SELECT 1 FROM jobs WHERE report_sha256 = ?1)");
  st.Bind(sha256);
  QUANTD_ASSIGN_OR_RETURN(int64_t found, st.Scalar());
  return found != 0;
}

absl::StatusOr<int64_t> SqliteJobStore::ArtifactBytes(
    const std::string& tenant) {
  absl::MutexLock lock(&mu_);
  SqliteStatement st = db_->Prepare(
      "SELECT COALESCE(SUM(size), 0) FROM ("
      " SELECT model_sha256 AS d, model_size AS size FROM jobs"
      "  WHERE model_sha256 != '' AND (?1 = '' OR tenant = ?1)"
      " UNION SELECT report_sha256, report_size FROM jobs"
      "  WHERE report_sha256 != '' AND (?1 = '' OR tenant = ?1))");
  st.Bind(tenant);
  return st.Scalar();
}

absl::StatusOr<JobState> SqliteJobStore::StateOf(const std::string& id) {
  absl::MutexLock lock(&mu_);
  SqliteStatement st = db_->Prepare("SELECT state FROM jobs WHERE id = ?1");
  st.Bind(id);
  QUANTD_ASSIGN_OR_RETURN(const bool row, st.Step());
  if (!row) return absl::NotFoundError(absl::StrCat("no job ", id));
  return static_cast<JobState>(st.ColInt(0));
}

}  // namespace quantd
