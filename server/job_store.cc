#include "server/job_store.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>

#include <algorithm>

#include "absl/strings/escaping.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "server/blob_store.h"
#include "server/job_labels.h"
#include "server/job_store_schema.h"
#include "util/status_macros.h"

namespace quantd {
namespace {

int64_t NowUs() { return absl::ToUnixMicros(absl::Now()); }

absl::Status CheckKey(absl::string_view what, absl::string_view value) {
  if (value.empty()) {
    return absl::InvalidArgumentError(absl::StrCat(what, " is empty"));
  }
  if (value.size() > kMaxKeyBytes) {
    return absl::InvalidArgumentError(absl::StrCat(
        what, " is ", value.size(), " bytes; the limit is ", kMaxKeyBytes));
  }
  return absl::OkStatus();
}

absl::Status CheckSize(absl::string_view what, size_t size, size_t limit) {
  if (size <= limit) return absl::OkStatus();
  return absl::InvalidArgumentError(
      absl::StrCat(what, " is ", size, " bytes; the limit is ", limit));
}

absl::Status NotFound(absl::string_view id) {
  return absl::NotFoundError(absl::StrCat(
      "job ", id, " not found; check the job id (ListJobs shows yours)"));
}

}  // namespace

bool IsTerminal(JobState s) {
  return s == JobState::kSucceeded || s == JobState::kFailed ||
         s == JobState::kCancelled;
}

absl::string_view JobStateName(JobState s) {
  static constexpr absl::string_view kNames[] = {
      "UNKNOWN", "QUEUED",     "RUNNING",  "SUCCEEDED",
      "FAILED",  "CANCELLING", "CANCELLED"};
  int i = static_cast<int>(s);
  return kNames[i >= 1 && i <= 6 ? i : 0];
}

absl::Status JobStore::ReadJobs(SqliteStatement& st,
                                std::vector<JobRecord>& jobs,
                                std::vector<int64_t>* seqs) {
  for (;;) {
    QUANTD_ASSIGN_OR_RETURN(bool row, st.Step());
    if (!row) return absl::OkStatus();
    JobRecord& job = jobs.emplace_back();
    if (seqs != nullptr) seqs->push_back(st.ColInt(0));
    job.id = st.ColStr(1);
    job.tenant = st.ColStr(2);
    job.request_id = st.ColStr(3);
    int64_t state = st.ColInt(4);
    if (state < 1 || state > 6) {
      return absl::DataLossError(absl::StrCat(
          "job ", job.id, " has an unknown state ", state, " in the database"));
    }
    job.state = static_cast<JobState>(state);
    job.priority = static_cast<int32_t>(st.ColInt(5));
    job.spec = st.ColStr(6);
    job.display_name = st.ColStr(7);
    if (!DecodeLabels(st.ColStr(8), job.labels)) {
      return absl::DataLossError(
          absl::StrCat("job ", job.id, " has corrupt labels in the database"));
    }
    job.attempts = static_cast<int32_t>(st.ColInt(9));
    job.error = st.ColStr(10);
    job.create_time_us = st.ColInt(11);
    job.update_time_us = st.ColInt(12);
    job.start_time_us = st.ColInt(13);
    job.end_time_us = st.ColInt(14);
    job.model_artifact_sha256 = st.ColStr(15);
    job.model_artifact_size = st.ColInt(16);
    job.report_artifact_sha256 = st.ColStr(17);
    job.report_artifact_size = st.ColInt(18);
    job.progress = st.ColStr(19);
    job.report = st.ColStr(20);
  }
}

JobStore::JobStore(std::unique_ptr<SqliteDb> db, std::string page_token_key)
    : db_(std::move(db)), page_token_key_(std::move(page_token_key)) {}

JobStore::~JobStore() = default;

absl::StatusOr<std::unique_ptr<JobStore>> JobStore::Open(
    const std::string& path, const std::string& page_token_key) {
  if (page_token_key.size() < 16) {
    return absl::InvalidArgumentError(absl::StrCat(
        "the page token key is ", page_token_key.size(),
        " bytes; use at least 16 random bytes so tokens cannot be forged"));
  }
  QUANTD_ASSIGN_OR_RETURN(std::unique_ptr<SqliteDb> db,
                          SqliteDb::Open(path, "job database"));
  std::unique_ptr<JobStore> store(new JobStore(std::move(db), page_token_key));
  absl::MutexLock lock(&store->mu_);
  QUANTD_RETURN_IF_ERROR(store->InitSchema());
  return store;
}

absl::Status JobStore::InitSchema() {
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
  return txn.Commit();
}

absl::StatusOr<JobRecord> JobStore::FindLocked(absl::string_view id,
                                               absl::string_view tenant) {
  SqliteStatement st =
      db_->Prepare("SELECT " JOB_COLUMNS
                   " FROM jobs WHERE id = ?1 AND (?2 = '' OR tenant = ?2)");
  st.Bind(id, tenant);
  std::vector<JobRecord> jobs;
  QUANTD_RETURN_IF_ERROR(ReadJobs(st, jobs));
  if (jobs.empty()) return NotFound(id);
  return std::move(jobs[0]);
}

absl::StatusOr<std::pair<JobRecord, bool>> JobStore::Create(
    JobRecord job, const QueueLimits& limits) {
  QUANTD_RETURN_IF_ERROR(CheckKey("tenant", job.tenant));
  QUANTD_RETURN_IF_ERROR(
      CheckSize("request_id", job.request_id.size(), kMaxKeyBytes));
  QUANTD_RETURN_IF_ERROR(
      CheckSize("the job spec", job.spec.size(), kMaxSpecBytes));
  QUANTD_RETURN_IF_ERROR(
      CheckSize("display_name", job.display_name.size(), kMaxDisplayNameBytes));
  if (job.labels.size() > kMaxLabels) {
    return absl::InvalidArgumentError(
        absl::StrCat("the job has ", job.labels.size(),
                     " labels; the limit is ", kMaxLabels));
  }
  for (const auto& [key, value] : job.labels) {
    if (key.empty() || key.size() > kMaxLabelKeyBytes ||
        value.size() > kMaxLabelValueBytes) {
      return absl::InvalidArgumentError(absl::StrCat(
          "label \"", absl::CHexEscape(key.substr(0, kMaxLabelKeyBytes)),
          "\": keys must be 1 to ", kMaxLabelKeyBytes,
          " bytes and values at most ", kMaxLabelValueBytes, " bytes"));
    }
  }

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
    if (!existing.empty()) {
      if (existing[0].spec != job.spec ||
          existing[0].priority != job.priority) {
        return absl::AlreadyExistsError(absl::StrCat(
            "request_id \"", job.request_id, "\" was already used for job ",
            existing[0].id,
            " with a different spec or priority; use a new request_id for a "
            "new job"));
      }
      return std::make_pair(std::move(existing[0]), false);
    }
  }
  QUANTD_RETURN_IF_ERROR(CheckQueueRoomLocked(job.tenant, limits));

  // 64 random bits from a CSPRNG, so ids cannot be guessed. A collision
  // (astronomically rare) fails the UNIQUE constraint; nothing is overwritten.
  unsigned char bytes[8];
  if (RAND_bytes(bytes, sizeof(bytes)) != 1) {
    return absl::InternalError("the random number generator failed");
  }
  job.id = absl::StrCat("job-", absl::BytesToHexString(absl::string_view(
                                    reinterpret_cast<const char*>(bytes), 8)));
  job.state = JobState::kQueued;
  job.attempts = 0;
  job.error.clear();
  job.create_time_us = job.update_time_us = NowUs();
  job.start_time_us = job.end_time_us = 0;
  job.model_artifact_sha256.clear();
  job.report_artifact_sha256.clear();
  job.model_artifact_size = job.report_artifact_size = 0;

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

absl::StatusOr<JobRecord> JobStore::Get(const std::string& tenant,
                                        const std::string& id) {
  QUANTD_RETURN_IF_ERROR(CheckKey("tenant", tenant));
  QUANTD_RETURN_IF_ERROR(CheckKey("job id", id));
  absl::MutexLock lock(&mu_);
  return FindLocked(id, tenant);
}

std::string JobStore::PageTokenMac(absl::string_view tenant,
                                   std::optional<JobState> state,
                                   int64_t position) const {
  // The tenant is length-prefixed, so that no two (tenant, state, position)
  // triples share an encoding.
  std::string msg = "quantd.ListJobs.v1/";
  PutLength(msg, tenant.size());
  absl::StrAppend(&msg, tenant, "/", state ? static_cast<int>(*state) : 0, "/",
                  position);
  unsigned char mac[EVP_MAX_MD_SIZE];
  unsigned int mac_len = 0;
  HMAC(EVP_sha256(), page_token_key_.data(),
       static_cast<int>(page_token_key_.size()),
       reinterpret_cast<const unsigned char*>(msg.data()), msg.size(), mac,
       &mac_len);
  return std::string(reinterpret_cast<const char*>(mac), mac_len);
}

absl::StatusOr<JobPage> JobStore::List(const std::string& tenant,
                                       std::optional<JobState> state,
                                       int32_t page_size,
                                       const std::string& page_token) {
  QUANTD_RETURN_IF_ERROR(CheckKey("tenant", tenant));
  if (page_size < 0 || page_size > 1000) {
    return absl::InvalidArgumentError(
        absl::StrCat("page_size is ", page_size,
                     "; use 1 to 1000, or 0 for the default of 50"));
  }
  if (page_size == 0) page_size = 50;
  // A token is base64url(HMAC of tenant, filter and position + the position
  // in decimal). The tenant and filter are bound to it, not written in it,
  // so a token used with any other tenant or filter fails the check.
  int64_t position = INT64_MAX;
  if (!page_token.empty()) {
    std::string raw;
    bool valid = absl::WebSafeBase64Unescape(page_token, &raw) &&
                 raw.size() > 32 &&
                 absl::SimpleAtoi(absl::string_view(raw).substr(32), &position);
    if (valid) {  // canonical digits only, then the MAC
      std::string mac = PageTokenMac(tenant, state, position);
      valid = raw.substr(32) == absl::StrCat(position) &&
              CRYPTO_memcmp(mac.data(), raw.data(), 32) == 0;
    }
    if (!valid) {
      return absl::InvalidArgumentError(
          "page_token is not valid for this request: pass the "
          "next_page_token of the previous ListJobs response unchanged, with "
          "the same state filter, or an empty page_token to start from the "
          "newest job");
    }
  }

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
    const int64_t last = seqs[page_size - 1];
    std::string raw = absl::StrCat(PageTokenMac(tenant, state, last), last);
    page.next_page_token = absl::WebSafeBase64Escape(raw);
  }
  return page;
}

absl::Status JobStore::MoveLocked(JobRecord& job, JobState to,
                                  absl::string_view error) {
  const int64_t now = NowUs();
  job.state = to;
  job.update_time_us = now;
  if (to == JobState::kRunning) {
    job.start_time_us = now;
    ++job.attempts;
  }
  if (IsTerminal(to)) job.end_time_us = now;
  if (!error.empty()) job.error = std::string(error);
  SqliteStatement st = db_->Prepare(
      "UPDATE jobs SET state = ?2, attempts = ?3, error = ?4, "
      "update_time_us = ?5, start_time_us = ?6, end_time_us = ?7 "
      "WHERE id = ?1");
  st.Bind(job.id, job.state, job.attempts, job.error, job.update_time_us,
          job.start_time_us, job.end_time_us);
  return st.Run();
}

absl::StatusOr<JobEvent> JobStore::AppendEventLocked(
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

absl::Status JobStore::AppendMoveEventsLocked(const JobRecord& job,
                                              const EventsOnMove& events,
                                              std::vector<JobEvent>* appended) {
  if (!events) return absl::OkStatus();
  for (const std::string& payload : events(job)) {
    QUANTD_ASSIGN_OR_RETURN(JobEvent event, AppendEventLocked(job.id, payload));
    if (appended != nullptr) appended->push_back(std::move(event));
  }
  return absl::OkStatus();
}

absl::StatusOr<JobRecord> JobStore::Transition(
    const std::string& id, std::initializer_list<JobState> from, JobState to,
    const std::string& error, const EventsOnMove& events,
    std::vector<JobEvent>* appended) {
  absl::MutexLock lock(&mu_);
  SqliteDb::Transaction txn(*db_);
  QUANTD_RETURN_IF_ERROR(txn.Begin());
  QUANTD_ASSIGN_OR_RETURN(JobRecord found, FindLocked(id, ""));
  JobRecord job = std::move(found);
  if (std::find(from.begin(), from.end(), job.state) == from.end()) {
    std::string allowed;
    for (JobState s : from) {
      absl::StrAppend(&allowed, allowed.empty() ? "" : " or ", JobStateName(s));
    }
    return absl::FailedPreconditionError(
        absl::StrCat("job ", id, " is ", JobStateName(job.state),
                     "; it can become ", JobStateName(to), " only from ",
                     allowed.empty() ? "(no state given)" : allowed));
  }
  QUANTD_RETURN_IF_ERROR(MoveLocked(job, to, error));
  std::vector<JobEvent> added;
  QUANTD_RETURN_IF_ERROR(AppendMoveEventsLocked(job, events, &added));
  QUANTD_RETURN_IF_ERROR(txn.Commit());
  if (appended != nullptr) {
    for (JobEvent& e : added) appended->push_back(std::move(e));
  }
  return job;
}

absl::Status JobStore::SetArtifacts(const std::string& id,
                                    const std::string& model_sha256,
                                    int64_t model_size,
                                    const std::string& report_sha256,
                                    int64_t report_size,
                                    const std::string& report) {
  QUANTD_RETURN_IF_ERROR(
      CheckSize("the report summary", report.size(), kMaxReportSummaryBytes));
  if (!IsSha256Hex(model_sha256) || !IsSha256Hex(report_sha256) ||
      model_size < 0 || report_size < 0) {
    return absl::InvalidArgumentError(
        "artifact digests must be 64 lowercase hex characters (SHA-256) and "
        "sizes must not be negative");
  }
  absl::MutexLock lock(&mu_);
  SqliteStatement st = db_->Prepare(
      "UPDATE jobs SET model_sha256 = ?2, model_size = ?3, report_sha256 = ?4, "
      "report_size = ?5, update_time_us = ?6, report = ?7 WHERE id = ?1");
  st.Bind(id, model_sha256, model_size, report_sha256, report_size, NowUs(),
          SqlBlob{report});
  QUANTD_RETURN_IF_ERROR(st.Run());
  return db_->Changes() == 0 ? NotFound(id) : absl::OkStatus();
}

absl::StatusOr<int64_t> JobStore::AppendEvent(const std::string& job_id,
                                              const std::string& payload,
                                              const std::string* progress) {
  absl::MutexLock lock(&mu_);
  SqliteDb::Transaction txn(*db_);
  QUANTD_RETURN_IF_ERROR(txn.Begin());
  QUANTD_RETURN_IF_ERROR(FindLocked(job_id, "").status());
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

absl::StatusOr<std::vector<JobEvent>> JobStore::EventsAfter(
    const std::string& job_id, int64_t after, int32_t limit) {
  if (limit < 1 || limit > kMaxEventsPerCall) {
    return absl::InvalidArgumentError(
        absl::StrCat("limit is ", limit, "; use 1 to ", kMaxEventsPerCall));
  }
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

absl::StatusOr<JobRecord> JobStore::Delete(const std::string& tenant,
                                           const std::string& id) {
  QUANTD_RETURN_IF_ERROR(CheckKey("tenant", tenant));
  QUANTD_RETURN_IF_ERROR(CheckKey("job id", id));
  absl::MutexLock lock(&mu_);
  SqliteDb::Transaction txn(*db_);
  QUANTD_RETURN_IF_ERROR(txn.Begin());
  QUANTD_ASSIGN_OR_RETURN(JobRecord found, FindLocked(id, tenant));
  if (!IsTerminal(found.state)) {
    return absl::FailedPreconditionError(
        absl::StrCat("job ", id, " is ", JobStateName(found.state),
                     "; cancel it and wait until it is CANCELLED (or let it "
                     "finish) before deleting it"));
  }
  SqliteStatement st =
      db_->Prepare("DELETE FROM jobs WHERE id = ?1");  // events cascade
  st.Bind(id);
  QUANTD_RETURN_IF_ERROR(st.Run());
  QUANTD_RETURN_IF_ERROR(txn.Commit());
  return found;
}

absl::StatusOr<std::optional<JobRecord>> JobStore::NextQueued(
    const std::set<std::string>& skip_tenants) {
  absl::MutexLock lock(&mu_);
  // The head of the queue; tenants at their concurrency limit are skipped
  // (looking at most kQueueLookahead jobs deep).
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

absl::Status JobStore::CheckQueueRoomLocked(const std::string& tenant,
                                            const QueueLimits& limits) {
  SqliteStatement st = db_->Prepare(
      "SELECT COUNT(*), COALESCE(SUM(tenant = ?2), 0) FROM jobs "
      "WHERE state = ?1");
  st.Bind(JobState::kQueued, tenant);
  QUANTD_ASSIGN_OR_RETURN(const bool row, st.Step());
  const int64_t queued = row ? st.ColInt(0) : 0;
  const int64_t mine = row ? st.ColInt(1) : 0;
  if (queued < limits.max_queued && mine < limits.max_queued_per_tenant) {
    return absl::OkStatus();
  }
  return absl::ResourceExhaustedError(
      absl::StrCat("the queue is full (", mine, " of your jobs and ", queued,
                   " in all are queued); retry after some finish"));
}

absl::StatusOr<int64_t> JobStore::CountInState(JobState state,
                                               const std::string& tenant) {
  absl::MutexLock lock(&mu_);
  SqliteStatement st = db_->Prepare(
      "SELECT COUNT(*) FROM jobs WHERE state = ?1 AND (?2 = '' OR tenant = "
      "?2)");
  st.Bind(state, tenant);
  return st.Scalar();
}

absl::StatusOr<std::vector<JobRecord>> JobStore::Recover(
    int32_t max_attempts, const EventsOnMove& events,
    std::vector<JobEvent>* appended) {
  if (max_attempts < 1) {
    return absl::InvalidArgumentError(absl::StrCat(
        "max_attempts is ", max_attempts, "; it must be at least 1"));
  }
  absl::MutexLock lock(&mu_);
  SqliteDb::Transaction txn(*db_);
  QUANTD_RETURN_IF_ERROR(txn.Begin());
  std::vector<JobRecord> jobs;
  {
    SqliteStatement st =
        db_->Prepare("SELECT " JOB_COLUMNS
                     " FROM jobs WHERE state IN (?1, ?2) ORDER BY seq");
    st.Bind(JobState::kRunning, JobState::kCancelling);
    QUANTD_RETURN_IF_ERROR(ReadJobs(st, jobs));
  }
  std::vector<JobEvent> added;
  for (JobRecord& job : jobs) {
    if (job.state == JobState::kCancelling) {
      QUANTD_RETURN_IF_ERROR(MoveLocked(
          job, JobState::kCancelled,
          job.error.empty() ? "the server restarted while cancelling" : ""));
    } else if (job.attempts < max_attempts) {
      QUANTD_RETURN_IF_ERROR(MoveLocked(job, JobState::kQueued, ""));
    } else {
      QUANTD_RETURN_IF_ERROR(MoveLocked(
          job, JobState::kFailed,
          absl::StrCat("the server stopped ",
                       job.attempts == 1 ? std::string("once")
                                         : absl::StrCat(job.attempts, " times"),
                       " while running this job (--max-attempts ", max_attempts,
                       ")")));
    }
    QUANTD_RETURN_IF_ERROR(AppendMoveEventsLocked(job, events, &added));
  }
  QUANTD_RETURN_IF_ERROR(txn.Commit());
  if (appended != nullptr) {
    for (JobEvent& e : added) appended->push_back(std::move(e));
  }
  return jobs;
}

absl::StatusOr<bool> JobStore::ReferencesBlob(const std::string& sha256) {
  if (sha256.empty()) return false;
  absl::MutexLock lock(&mu_);
  SqliteStatement st = db_->Prepare(
      "SELECT EXISTS (SELECT 1 FROM jobs WHERE model_sha256 = ?1) OR "
      "EXISTS (SELECT 1 FROM jobs WHERE report_sha256 = ?1)");
  st.Bind(sha256);
  QUANTD_ASSIGN_OR_RETURN(int64_t found, st.Scalar());
  return found != 0;
}

absl::StatusOr<int64_t> JobStore::ArtifactBytes(const std::string& tenant) {
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

absl::StatusOr<JobState> JobStore::StateOf(const std::string& id) {
  absl::MutexLock lock(&mu_);
  SqliteStatement st = db_->Prepare("SELECT state FROM jobs WHERE id = ?1");
  st.Bind(id);
  QUANTD_ASSIGN_OR_RETURN(const bool row, st.Step());
  if (!row) return absl::NotFoundError(absl::StrCat("no job ", id));
  return static_cast<JobState>(st.ColInt(0));
}

}  // namespace quantd
