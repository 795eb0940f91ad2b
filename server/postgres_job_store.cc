#include "server/postgres_job_store.h"

#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "server/job_labels.h"
#include "server/job_store_schema.h"
#include "server/postgres_job_store_schema.h"
#include "server/postgres_migrations.h"
#include "util/status_macros.h"

namespace quantd {

#define QUANTD_EVENTS_CHANNEL "quantd_events"
constexpr char kEventsChannel[] = QUANTD_EVENTS_CHANNEL;

absl::Status PostgresJobStore::ReadJobs(const PgResult& rows,
                                        std::vector<JobRecord>& jobs,
                                        std::vector<int64_t>* seqs) {
  for (int r = 0; r < rows.rows(); ++r) {
    JobRecord& job = jobs.emplace_back();
    if (seqs != nullptr) seqs->push_back(rows.Int(r, 0));
    QUANTD_RETURN_IF_ERROR(DecodeJobRow([&](int c) { return rows.Int(r, c); },
                                        [&](int c) { return rows.Str(r, c); },
                                        job));
  }
  return absl::OkStatus();
}

PostgresJobStore::PostgresJobStore(std::unique_ptr<PostgresDb> db,
                                   std::string url, std::string page_token_key)
    : db_(std::move(db)),
      page_tokens_(std::move(page_token_key)),
      url_(std::move(url)) {}

PostgresJobStore::~PostgresJobStore() { StopWatchingEvents(); }

void PostgresJobStore::StopWatchingEvents() {
  stop_listening_ = true;
  if (listener_.joinable()) listener_.join();
}

absl::Status PostgresJobStore::WatchEvents(
    std::function<void(const std::string& job_id)> on_event) {
  if (listener_.joinable() || stop_listening_) {
    return absl::FailedPreconditionError("WatchEvents was already called");
  }
  QUANTD_ASSIGN_OR_RETURN(std::unique_ptr<PostgresDb> listener,
                          PostgresDb::Connect(url_, "job database"));
  QUANTD_RETURN_IF_ERROR(listener->Listen(kEventsChannel));
  listener_ = std::thread(
      [this, l = std::move(listener), cb = std::move(on_event)]() mutable {
        ListenLoop(std::move(l), std::move(cb));
      });
  return absl::OkStatus();
}

void PostgresJobStore::ListenLoop(
    std::unique_ptr<PostgresDb> listener,
    std::function<void(const std::string&)> on_event) {
  bool connected = true;
  while (!stop_listening_) {
    if (!connected) {
      // Back after an outage: LISTEN again, and have every watcher re-read
      // (what was notified meanwhile is lost).
      connected =
          listener->Reconnect().ok() && listener->Listen(kEventsChannel).ok();
      if (!connected) {
        absl::SleepFor(absl::Milliseconds(500));
        continue;
      }
      on_event("");
    }
    absl::StatusOr<std::vector<std::string>> ids =
        listener->WaitForNotifications(absl::Milliseconds(200));
    if (!ids.ok()) {
      connected = false;
      continue;
    }
    for (const std::string& id : *ids) on_event(id);
  }
}

namespace {

// Creates or migrates the schema; returns the page token key: `key` if
// given, else the database's own (made by the first replica), so that a
// token one replica issued works on every other.
absl::StatusOr<std::string> InitSchema(PostgresDb& db, std::string key) {
  PostgresDb::Transaction txn(db);
  QUANTD_RETURN_IF_ERROR(txn.Begin());
  QUANTD_RETURN_IF_ERROR(MigrateComponent(
      db, "jobs", {kPostgresSchemaV1, kPostgresSchemaV2}, "the job database"));
  if (key.empty()) {
    QUANTD_ASSIGN_OR_RETURN(std::string fresh, RandomBytes(32));
    QUANTD_RETURN_IF_ERROR(
        db.Query("INSERT INTO quantd_keys (name, key) VALUES ($1, $2) ON "
                 "CONFLICT (name) DO NOTHING",
                 "page_tokens", fresh)
            .status());
    QUANTD_ASSIGN_OR_RETURN(
        PgResult stored,
        db.Query("SELECT key FROM quantd_keys WHERE name = $1", "page_tokens"));
    key = stored.rows() > 0 ? stored.Str(0, 0) : "";
  }
  QUANTD_RETURN_IF_ERROR(txn.Commit());
  return key;
}

}  // namespace

absl::StatusOr<std::unique_ptr<JobStore>> PostgresJobStore::Open(
    const std::string& url, const std::string& page_token_key) {
  if (!page_token_key.empty()) {
    QUANTD_RETURN_IF_ERROR(CheckPageTokenKey(page_token_key));
  }
  QUANTD_ASSIGN_OR_RETURN(std::unique_ptr<PostgresDb> db,
                          PostgresDb::Connect(url, "job database"));
  QUANTD_ASSIGN_OR_RETURN(std::string key, InitSchema(*db, page_token_key));
  QUANTD_RETURN_IF_ERROR(CheckPageTokenKey(key));
  return std::unique_ptr<JobStore>(
      new PostgresJobStore(std::move(db), url, std::move(key)));
}

absl::StatusOr<JobRecord> PostgresJobStore::FindLocked(absl::string_view id,
                                                       absl::string_view tenant,
                                                       bool for_update) {
  absl::StatusOr<PgResult> rows =
      for_update ? db_->Query("SELECT " JOB_COLUMNS
                              " FROM jobs WHERE id = $1 AND ($2 = ''::bytea OR "
                              "tenant = $2) FOR UPDATE",
                              id, tenant)
                 : db_->Query("SELECT " JOB_COLUMNS
                              " FROM jobs WHERE id = $1 AND ($2 = ''::bytea OR "
                              "tenant = $2)",
                              id, tenant);
  if (!rows.ok()) return rows.status();
  std::vector<JobRecord> jobs;
  QUANTD_RETURN_IF_ERROR(ReadJobs(*rows, jobs));
  if (jobs.empty()) return JobNotFound(id);
  return std::move(jobs[0]);
}

absl::StatusOr<std::pair<JobRecord, bool>> PostgresJobStore::Create(
    JobRecord job, const QueueLimits& limits) {
  QUANTD_RETURN_IF_ERROR(CheckNewJob(job));
  absl::MutexLock lock(&mu_);
  PostgresDb::Transaction txn(*db_);
  QUANTD_RETURN_IF_ERROR(txn.Begin());
  // Creates are serialized across replicas, so that the idempotency check
  // and the queue count see every committed create.
  QUANTD_RETURN_IF_ERROR(
      db_->Query("SELECT pg_advisory_xact_lock($1)", kCreateLockKey).status());
  if (!job.request_id.empty()) {
    QUANTD_ASSIGN_OR_RETURN(
        PgResult rows,
        db_->Query("SELECT " JOB_COLUMNS
                   " FROM jobs WHERE tenant = $1 AND request_id = $2",
                   job.tenant, job.request_id));
    std::vector<JobRecord> existing;
    QUANTD_RETURN_IF_ERROR(ReadJobs(rows, existing));
    if (!existing.empty()) return RetriedCreate(std::move(existing[0]), job);
  }
  QUANTD_RETURN_IF_ERROR(CheckQueueRoomLocked(job.tenant, limits));
  QUANTD_RETURN_IF_ERROR(ResetNewJob(job));
  QUANTD_RETURN_IF_ERROR(
      db_->Query("INSERT INTO jobs (id, tenant, request_id, state, priority, "
                 "spec, display_name, labels, attempts, error, create_time_us, "
                 "update_time_us, start_time_us, end_time_us, model_sha256, "
                 "model_size, report_sha256, report_size) VALUES ($1, $2, $3, "
                 "$4, $5, $6, $7, $8, 0, '', $9, $9, 0, 0, '', 0, '', 0)",
                 job.id, job.tenant, job.request_id, job.state, job.priority,
                 job.spec, job.display_name, EncodeLabels(job.labels),
                 job.create_time_us)
          .status());
  QUANTD_RETURN_IF_ERROR(txn.Commit());
  return std::make_pair(std::move(job), true);
}

absl::StatusOr<JobRecord> PostgresJobStore::Get(const std::string& tenant,
                                                const std::string& id) {
  QUANTD_RETURN_IF_ERROR(CheckKey("tenant", tenant));
  QUANTD_RETURN_IF_ERROR(CheckKey("job id", id));
  absl::MutexLock lock(&mu_);
  return FindLocked(id, tenant, /*for_update=*/false);
}

absl::StatusOr<JobPage> PostgresJobStore::List(const std::string& tenant,
                                               std::optional<JobState> state,
                                               int32_t page_size,
                                               const std::string& page_token) {
  QUANTD_RETURN_IF_ERROR(CheckKey("tenant", tenant));
  QUANTD_ASSIGN_OR_RETURN(page_size, PageSize(page_size));
  QUANTD_ASSIGN_OR_RETURN(const int64_t position,
                          page_tokens_.Position(tenant, state, page_token));
  absl::MutexLock lock(&mu_);
  // One more row than asked tells whether there is a next page.
  QUANTD_ASSIGN_OR_RETURN(
      PgResult rows,
      db_->Query("SELECT " JOB_COLUMNS
                 " FROM jobs WHERE tenant = $1 AND ($2 = 0 OR state = $2) "
                 "AND seq < $3 ORDER BY seq DESC LIMIT $4",
                 tenant, state ? static_cast<int64_t>(*state) : int64_t{0},
                 position, int64_t{page_size} + 1));
  JobPage page;
  std::vector<int64_t> seqs;
  QUANTD_RETURN_IF_ERROR(ReadJobs(rows, page.jobs, &seqs));
  if (static_cast<int32_t>(page.jobs.size()) > page_size) {
    page.jobs.resize(page_size);
    page.next_page_token =
        page_tokens_.Token(tenant, state, seqs[page_size - 1]);
  }
  return page;
}

absl::Status PostgresJobStore::MoveLocked(JobRecord& job, JobState to,
                                          absl::string_view error) {
  ApplyMove(job, to, error);
  return WriteMoveLocked(job);
}

absl::Status PostgresJobStore::WriteMoveLocked(const JobRecord& job) {
  return db_
      ->Query(
          "UPDATE jobs SET state = $2, attempts = $3, error = $4, "
          "update_time_us = $5, start_time_us = $6, end_time_us = $7, "
          "lease_owner = $8, lease_expiry_us = $9 WHERE id = $1",
          job.id, job.state, job.attempts, job.error, job.update_time_us,
          job.start_time_us, job.end_time_us, job.lease_owner,
          job.lease_expiry_us)
      .status();
}

absl::StatusOr<JobEvent> PostgresJobStore::AppendEventLocked(
    const std::string& job_id, const std::string& payload) {
  QUANTD_RETURN_IF_ERROR(
      CheckSize("the event", payload.size(), kMaxEventPayloadBytes));
  // The caller holds the job's row lock, so no other replica appends to
  // this job between the max and the insert.
  JobEvent event{job_id, 0, NowUs(), payload};
  // NOTIFY is delivered at commit, to every replica's listener
  // (WatchEvents). Job ids are ours ("job-" + hex): valid text.
  QUANTD_ASSIGN_OR_RETURN(
      PgResult next,
      db_->Query("WITH added AS (INSERT INTO events (job_id, sequence, "
                 "time_us, payload) SELECT $1, COALESCE(MAX(sequence), 0) + "
                 "1, $2, $3 FROM events WHERE job_id = $1 RETURNING "
                 "sequence) SELECT sequence, pg_notify('" QUANTD_EVENTS_CHANNEL
                 "', encode($1, 'escape')) FROM added",
                 job_id, event.time_us, payload));
  event.sequence = next.Int(0, 0);
  return event;
}

absl::Status PostgresJobStore::AppendMoveEventsLocked(
    const JobRecord& job, const EventsOnMove& events,
    std::vector<JobEvent>* appended) {
  if (!events) return absl::OkStatus();
  for (const std::string& payload : events(job)) {
    QUANTD_ASSIGN_OR_RETURN(JobEvent event, AppendEventLocked(job.id, payload));
    if (appended != nullptr) appended->push_back(std::move(event));
  }
  return absl::OkStatus();
}

absl::StatusOr<JobRecord> PostgresJobStore::Transition(
    const std::string& id, std::initializer_list<JobState> from, JobState to,
    const std::string& error, const EventsOnMove& events,
    std::vector<JobEvent>* appended, const std::string& owner) {
  absl::MutexLock lock(&mu_);
  PostgresDb::Transaction txn(*db_);
  QUANTD_RETURN_IF_ERROR(txn.Begin());
  QUANTD_ASSIGN_OR_RETURN(JobRecord job,
                          FindLocked(id, "", /*for_update=*/true));
  QUANTD_RETURN_IF_ERROR(CheckMoveAllowed(job, from, to));
  QUANTD_RETURN_IF_ERROR(CheckLease(job, owner));
  QUANTD_RETURN_IF_ERROR(MoveLocked(job, to, error));
  std::vector<JobEvent> added;
  QUANTD_RETURN_IF_ERROR(AppendMoveEventsLocked(job, events, &added));
  QUANTD_RETURN_IF_ERROR(txn.Commit());
  HandOver(added, appended);
  return job;
}

absl::Status PostgresJobStore::SetArtifacts(const std::string& id,
                                            const std::string& model_sha256,
                                            int64_t model_size,
                                            const std::string& report_sha256,
                                            int64_t report_size,
                                            const std::string& report) {
  QUANTD_RETURN_IF_ERROR(CheckArtifacts(model_sha256, model_size, report_sha256,
                                        report_size, report));
  absl::MutexLock lock(&mu_);
  QUANTD_ASSIGN_OR_RETURN(
      PgResult r,
      db_->Query("UPDATE jobs SET model_sha256 = $2, model_size = $3, "
                 "report_sha256 = $4, report_size = $5, update_time_us = $6, "
                 "report = $7 WHERE id = $1",
                 id, model_sha256, model_size, report_sha256, report_size,
                 NowUs(), report));
  return r.Affected() == 0 ? JobNotFound(id) : absl::OkStatus();
}

absl::StatusOr<int64_t> PostgresJobStore::AppendEvent(
    const std::string& job_id, const std::string& payload,
    const std::string* progress, const std::string& owner) {
  absl::MutexLock lock(&mu_);
  PostgresDb::Transaction txn(*db_);
  QUANTD_RETURN_IF_ERROR(txn.Begin());
  QUANTD_ASSIGN_OR_RETURN(const JobRecord job,
                          FindLocked(job_id, "", /*for_update=*/true));
  QUANTD_RETURN_IF_ERROR(CheckLease(job, owner));
  QUANTD_ASSIGN_OR_RETURN(const JobEvent event,
                          AppendEventLocked(job_id, payload));
  if (progress != nullptr) {
    QUANTD_RETURN_IF_ERROR(
        db_->Query("UPDATE jobs SET progress = $2 WHERE id = $1", job_id,
                   *progress)
            .status());
  }
  QUANTD_RETURN_IF_ERROR(txn.Commit());
  return event.sequence;
}

absl::StatusOr<std::vector<JobEvent>> PostgresJobStore::EventsAfter(
    const std::string& job_id, int64_t after, int32_t limit) {
  QUANTD_RETURN_IF_ERROR(CheckEventsLimit(limit));
  absl::MutexLock lock(&mu_);
  QUANTD_RETURN_IF_ERROR(FindLocked(job_id, "", /*for_update=*/false).status());
  QUANTD_ASSIGN_OR_RETURN(
      PgResult rows,
      db_->Query("SELECT sequence, time_us, payload FROM events WHERE job_id "
                 "= $1 AND sequence > $2 ORDER BY sequence LIMIT $3",
                 job_id, after, int64_t{limit}));
  std::vector<JobEvent> events;
  for (int r = 0; r < rows.rows(); ++r) {
    events.push_back({job_id, rows.Int(r, 0), rows.Int(r, 1), rows.Str(r, 2)});
  }
  return events;
}

absl::StatusOr<JobRecord> PostgresJobStore::Delete(const std::string& tenant,
                                                   const std::string& id) {
  QUANTD_RETURN_IF_ERROR(CheckKey("tenant", tenant));
  QUANTD_RETURN_IF_ERROR(CheckKey("job id", id));
  absl::MutexLock lock(&mu_);
  PostgresDb::Transaction txn(*db_);
  QUANTD_RETURN_IF_ERROR(txn.Begin());
  QUANTD_ASSIGN_OR_RETURN(JobRecord found,
                          FindLocked(id, tenant, /*for_update=*/true));
  QUANTD_RETURN_IF_ERROR(CheckDeletable(found));
  QUANTD_RETURN_IF_ERROR(  // events cascade
      db_->Query("DELETE FROM jobs WHERE id = $1", id).status());
  QUANTD_RETURN_IF_ERROR(txn.Commit());
  return found;
}

absl::StatusOr<std::optional<JobRecord>> PostgresJobStore::NextQueued(
    const std::set<std::string>& skip_tenants) {
  absl::MutexLock lock(&mu_);
  return QueueHeadLocked(skip_tenants, /*lock_rows=*/false);
}

absl::StatusOr<std::optional<JobRecord>> PostgresJobStore::QueueHeadLocked(
    const std::set<std::string>& skip_tenants, bool lock_rows) {
  // SKIP LOCKED: replicas claiming at once lock different queued jobs
  // instead of queueing on the head one.
  absl::StatusOr<PgResult> rows =
      lock_rows ? db_->Query("SELECT " JOB_COLUMNS
                             " FROM jobs WHERE state = $1 ORDER BY priority "
                             "DESC, seq ASC LIMIT 256 FOR UPDATE SKIP LOCKED",
                             JobState::kQueued)
                : db_->Query("SELECT " JOB_COLUMNS
                             " FROM jobs WHERE state = $1 ORDER BY priority "
                             "DESC, seq ASC LIMIT 256",
                             JobState::kQueued);
  if (!rows.ok()) return rows.status();
  std::vector<JobRecord> jobs;
  QUANTD_RETURN_IF_ERROR(ReadJobs(*rows, jobs));
  for (JobRecord& j : jobs) {
    if (!skip_tenants.contains(j.tenant)) return std::move(j);
  }
  return std::nullopt;
}

absl::Status PostgresJobStore::CheckQueueRoomLocked(const std::string& tenant,
                                                    const QueueLimits& limits) {
  QUANTD_ASSIGN_OR_RETURN(
      PgResult row,
      db_->Query("SELECT COUNT(*), COUNT(*) FILTER (WHERE tenant = $2) FROM "
                 "jobs WHERE state = $1",
                 JobState::kQueued, tenant));
  return CheckQueueRoom(row.Int(0, 1), row.Int(0, 0), limits);
}

absl::StatusOr<int64_t> PostgresJobStore::CountInState(
    JobState state, const std::string& tenant) {
  absl::MutexLock lock(&mu_);
  QUANTD_ASSIGN_OR_RETURN(
      PgResult row,
      db_->Query("SELECT COUNT(*) FROM jobs WHERE state = $1 AND ($2 = "
                 "''::bytea OR tenant = $2)",
                 state, tenant));
  return row.Int(0, 0);
}

absl::StatusOr<std::vector<JobRecord>> PostgresJobStore::Recover(
    int32_t max_attempts, const EventsOnMove& events,
    std::vector<JobEvent>* appended) {
  return RecoverWhere(/*expired_only=*/false, max_attempts, events, appended);
}

absl::StatusOr<std::vector<JobRecord>> PostgresJobStore::RecoverExpired(
    int32_t max_attempts, const EventsOnMove& events,
    std::vector<JobEvent>* appended) {
  return RecoverWhere(/*expired_only=*/true, max_attempts, events, appended);
}

absl::StatusOr<std::vector<JobRecord>> PostgresJobStore::RecoverWhere(
    bool expired_only, int32_t max_attempts, const EventsOnMove& events,
    std::vector<JobEvent>* appended) {
  QUANTD_RETURN_IF_ERROR(CheckRecoverAttempts(max_attempts));
  absl::MutexLock lock(&mu_);
  PostgresDb::Transaction txn(*db_);
  QUANTD_RETURN_IF_ERROR(txn.Begin());
  std::vector<JobRecord> jobs;
  {
    // SKIP LOCKED: a job another replica is moving right now (renewing,
    // ending, recovering it) is left to that replica.
    QUANTD_ASSIGN_OR_RETURN(
        PgResult rows,
        db_->Query("SELECT " JOB_COLUMNS
                   " FROM jobs WHERE state IN ($1, $2) AND ($3 = 0 OR "
                   "lease_expiry_us < $4) ORDER BY seq FOR UPDATE SKIP LOCKED",
                   JobState::kRunning, JobState::kCancelling,
                   int64_t{expired_only ? 1 : 0}, NowUs()));
    QUANTD_RETURN_IF_ERROR(ReadJobs(rows, jobs));
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

absl::StatusOr<std::optional<JobRecord>> PostgresJobStore::Claim(
    const std::string& owner, absl::Duration lease,
    const std::set<std::string>& skip_tenants, const EventsOnMove& events,
    std::vector<JobEvent>* appended) {
  QUANTD_RETURN_IF_ERROR(CheckKey("lease owner", owner));
  absl::MutexLock lock(&mu_);
  PostgresDb::Transaction txn(*db_);
  QUANTD_RETURN_IF_ERROR(txn.Begin());
  QUANTD_ASSIGN_OR_RETURN(std::optional<JobRecord> job,
                          QueueHeadLocked(skip_tenants, /*lock_rows=*/true));
  if (!job.has_value()) return std::nullopt;
  ApplyClaim(*job, owner, lease);
  QUANTD_RETURN_IF_ERROR(WriteMoveLocked(*job));
  std::vector<JobEvent> added;
  QUANTD_RETURN_IF_ERROR(AppendMoveEventsLocked(*job, events, &added));
  QUANTD_RETURN_IF_ERROR(txn.Commit());
  HandOver(added, appended);
  return job;
}

absl::StatusOr<std::map<std::string, JobState>> PostgresJobStore::RenewLeases(
    const std::string& owner, absl::Duration lease) {
  QUANTD_RETURN_IF_ERROR(CheckKey("lease owner", owner));
  absl::MutexLock lock(&mu_);
  QUANTD_ASSIGN_OR_RETURN(
      PgResult rows,
      db_->Query("UPDATE jobs SET lease_expiry_us = $2 WHERE lease_owner = $1 "
                 "AND state IN ($3, $4) RETURNING id, state",
                 owner, NowUs() + absl::ToInt64Microseconds(lease),
                 JobState::kRunning, JobState::kCancelling));
  std::map<std::string, JobState> held;
  for (int r = 0; r < rows.rows(); ++r) {
    held[rows.Str(r, 0)] = static_cast<JobState>(rows.Int(r, 1));
  }
  return held;
}

absl::StatusOr<bool> PostgresJobStore::ReferencesBlob(
    const std::string& sha256) {
  if (sha256.empty()) return false;
  absl::MutexLock lock(&mu_);
  QUANTD_ASSIGN_OR_RETURN(
      PgResult row,
      db_->Query("SELECT EXISTS (SELECT 1 FROM jobs WHERE model_sha256 = $1) "
                 "OR EXISTS (SELECT 1 FROM jobs WHERE report_sha256 = $1)",
                 sha256));
  return row.Int(0, 0) != 0;
}

absl::StatusOr<int64_t> PostgresJobStore::ArtifactBytes(
    const std::string& tenant) {
  absl::MutexLock lock(&mu_);
  QUANTD_ASSIGN_OR_RETURN(
      PgResult row,
      db_->Query("SELECT COALESCE(SUM(size), 0)::bigint FROM ("
                 " SELECT model_sha256 AS d, model_size AS size FROM jobs"
                 "  WHERE model_sha256 <> '' AND ($1 = ''::bytea OR tenant = "
                 "$1)"
                 " UNION SELECT report_sha256, report_size FROM jobs"
                 "  WHERE report_sha256 <> '' AND ($1 = ''::bytea OR tenant = "
                 "$1)) AS artifacts",
                 tenant));
  return row.Int(0, 0);
}

absl::StatusOr<JobState> PostgresJobStore::StateOf(const std::string& id) {
  absl::MutexLock lock(&mu_);
  QUANTD_ASSIGN_OR_RETURN(
      PgResult row, db_->Query("SELECT state FROM jobs WHERE id = $1", id));
  if (row.rows() == 0) return absl::NotFoundError(absl::StrCat("no job ", id));
  return static_cast<JobState>(row.Int(0, 0));
}

}  // namespace quantd
