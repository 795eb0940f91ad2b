#include "server/job_store.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>
#include <sqlite3.h>

#include <algorithm>

#include "absl/strings/escaping.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "server/blob_store.h"

// Every call below returns early on the first error; this keeps that one
// line per step.
#define JOB_STORE_RETURN_IF_ERROR(expr) \
  do {                                  \
    absl::Status status_ = (expr);      \
    if (!status_.ok()) return status_;  \
  } while (0)

namespace quantd {
namespace {

// Version 1: the schema below. Bump it and add a migration in InitSchema
// when the schema changes; older binaries then refuse the file.
constexpr int kSchemaVersion = 1;

// `seq` orders jobs by creation (AUTOINCREMENT never reuses a value, even
// after deletes), so it is both the "newest first" order and a stable page
// position. Labels are a length-prefixed blob: they are only ever read and
// written together with their job.
constexpr const char* kSchema = R"sql(
CREATE TABLE jobs (
  seq INTEGER PRIMARY KEY AUTOINCREMENT,
  id TEXT NOT NULL UNIQUE,
  tenant TEXT NOT NULL,
  request_id TEXT NOT NULL,
  state INTEGER NOT NULL,
  priority INTEGER NOT NULL,
  spec BLOB NOT NULL,
  display_name TEXT NOT NULL,
  labels BLOB NOT NULL,
  attempts INTEGER NOT NULL,
  error TEXT NOT NULL,
  create_time_us INTEGER NOT NULL,
  update_time_us INTEGER NOT NULL,
  start_time_us INTEGER NOT NULL,
  end_time_us INTEGER NOT NULL,
  model_sha256 TEXT NOT NULL,
  model_size INTEGER NOT NULL,
  report_sha256 TEXT NOT NULL,
  report_size INTEGER NOT NULL
);
CREATE UNIQUE INDEX jobs_by_request ON jobs(tenant, request_id)
  WHERE request_id != '';
CREATE INDEX jobs_by_tenant ON jobs(tenant, seq);
CREATE INDEX jobs_by_tenant_state ON jobs(tenant, state, seq);
CREATE INDEX jobs_by_queue ON jobs(state, priority DESC, seq);
CREATE INDEX jobs_by_model ON jobs(model_sha256) WHERE model_sha256 != '';
CREATE INDEX jobs_by_report ON jobs(report_sha256) WHERE report_sha256 != '';
CREATE TABLE events (
  job_id TEXT NOT NULL REFERENCES jobs(id) ON DELETE CASCADE,
  sequence INTEGER NOT NULL,
  time_us INTEGER NOT NULL,
  payload BLOB NOT NULL,
  PRIMARY KEY (job_id, sequence)
) WITHOUT ROWID;
PRAGMA user_version = 1;
)sql";

#define JOB_COLUMNS                                                          \
  "seq, id, tenant, request_id, state, priority, spec, display_name, "       \
  "labels, attempts, error, create_time_us, update_time_us, start_time_us, " \
  "end_time_us, model_sha256, model_size, report_sha256, report_size"

int64_t NowUs() { return absl::ToUnixMicros(absl::Now()); }

void PutLength(std::string& out, size_t n) {
  for (int i = 0; i < 4; ++i) out.push_back(static_cast<char>(n >> (8 * i)));
}

std::string EncodeLabels(const std::map<std::string, std::string>& labels) {
  std::string out;
  for (const auto& [key, value] : labels) {
    PutLength(out, key.size());
    out += key;
    PutLength(out, value.size());
    out += value;
  }
  return out;
}

bool TakeString(absl::string_view& in, std::string& out) {
  if (in.size() < 4) return false;
  size_t n = 0;
  for (int i = 0; i < 4; ++i) {
    n |= size_t{static_cast<uint8_t>(in[i])} << (8 * i);
  }
  in.remove_prefix(4);
  if (in.size() < n) return false;
  out.assign(in.data(), n);
  in.remove_prefix(n);
  return true;
}

bool DecodeLabels(absl::string_view in,
                  std::map<std::string, std::string>& labels) {
  while (!in.empty()) {
    std::string key, value;
    if (!TakeString(in, key) || !TakeString(in, value)) return false;
    labels[std::move(key)] = std::move(value);
  }
  return true;
}

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

// Maps SQLite result codes to the codes a client can act on.
absl::Status SqliteError(sqlite3* db, int rc, absl::string_view context) {
  std::string msg =
      absl::StrCat("job database ", sqlite3_db_filename(db, "main"), ": ",
                   sqlite3_errstr(rc), " (", sqlite3_errmsg(db), ") in ",
                   context.substr(0, 60));
  switch (rc & 0xff) {
    case SQLITE_BUSY:
    case SQLITE_LOCKED:
      return absl::UnavailableError(
          absl::StrCat(msg, "; another process holds the database, retry"));
    case SQLITE_FULL:
      return absl::ResourceExhaustedError(
          absl::StrCat(msg, "; free disk space under the data folder"));
    case SQLITE_NOTADB:
      return absl::FailedPreconditionError(
          absl::StrCat(msg, "; point quantd at its own job database file"));
    case SQLITE_CORRUPT:
      return absl::DataLossError(
          absl::StrCat(msg, "; restore the job database from a backup"));
    default:
      return absl::InternalError(msg);
  }
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

struct AsBlob {
  absl::string_view bytes;
};

// A cached prepared statement, borrowed for one use. The first error (from
// preparing or binding) is kept and reported by Step, so call sites bind
// without checking each call. Reset on destruction, which ends the
// statement and drops the copies of bound values.
class JobStore::Stmt {
 public:
  Stmt(sqlite3* db, sqlite3_stmt* s, int rc, const char* sql)
      : db_(db), s_(s), rc_(rc), sql_(sql) {}
  Stmt(const Stmt&) = delete;  // returned as a prvalue only
  ~Stmt() {
    if (s_ != nullptr) {
      sqlite3_reset(s_);
      sqlite3_clear_bindings(s_);
    }
  }

  // Binds ?1, ?2, ... in order: integers and JobStates as INTEGER, strings
  // as TEXT, AsBlob as BLOB.
  template <typename... Args>
  void Bind(const Args&... args) {
    int i = 0;
    (BindOne(++i, args), ...);
  }

  // True if a row is available, false when the statement is done.
  absl::StatusOr<bool> Step() {
    if (ok()) rc_ = sqlite3_step(s_);
    if (rc_ == SQLITE_ROW || rc_ == SQLITE_DONE) {
      bool row = rc_ == SQLITE_ROW;
      rc_ = SQLITE_OK;
      return row;
    }
    return SqliteError(db_, rc_, sql_);
  }
  // The first column of the first row as an integer (0 if no row).
  absl::StatusOr<int64_t> Scalar() {
    absl::StatusOr<bool> row = Step();
    if (!row.ok()) return row.status();
    return *row ? ColInt(0) : 0;
  }
  // Runs a statement that returns no rows (or whose rows are not needed).
  absl::Status Run() { return Step().status(); }

  int64_t ColInt(int c) { return sqlite3_column_int64(s_, c); }
  std::string ColStr(int c) {
    const void* p = sqlite3_column_blob(s_, c);
    int n = sqlite3_column_bytes(s_, c);
    return p == nullptr ? std::string()
                        : std::string(static_cast<const char*>(p), n);
  }

 private:
  bool ok() const { return rc_ == SQLITE_OK && s_ != nullptr; }
  void BindOne(int i, int64_t v) {
    if (ok()) rc_ = sqlite3_bind_int64(s_, i, v);
  }
  void BindOne(int i, JobState v) { BindOne(i, static_cast<int64_t>(v)); }
  // Empty values bind as '' / X'' (a null pointer would bind SQL NULL).
  void BindOne(int i, absl::string_view v) {
    if (ok()) {
      rc_ = sqlite3_bind_text64(s_, i, v.empty() ? "" : v.data(), v.size(),
                                SQLITE_TRANSIENT, SQLITE_UTF8);
    }
  }
  void BindOne(int i, AsBlob v) {
    if (ok()) {
      rc_ = sqlite3_bind_blob64(s_, i, v.bytes.empty() ? "" : v.bytes.data(),
                                v.bytes.size(), SQLITE_TRANSIENT);
    }
  }

  sqlite3* db_;
  sqlite3_stmt* s_;
  int rc_;
  const char* sql_;
};

// BEGIN IMMEDIATE takes the write lock up front, so read-then-write
// sequences (compare-and-set, max + 1 sequences, idempotency checks) cannot
// interleave with another writer. Rolls back unless committed.
class JobStore::Txn {
 public:
  explicit Txn(JobStore* store) : store_(store) {}
  ~Txn() ABSL_NO_THREAD_SAFETY_ANALYSIS {
    if (open_) sqlite3_exec(store_->db_, "ROLLBACK", nullptr, nullptr, nullptr);
  }
  absl::Status Begin() ABSL_NO_THREAD_SAFETY_ANALYSIS {
    absl::Status s = store_->Exec("BEGIN IMMEDIATE");
    open_ = s.ok();
    return s;
  }
  absl::Status Commit() ABSL_NO_THREAD_SAFETY_ANALYSIS {
    absl::Status s = store_->Exec("COMMIT");
    if (s.ok()) open_ = false;
    return s;
  }

 private:
  JobStore* store_;
  bool open_ = false;
};

absl::Status JobStore::ReadJobs(Stmt& st, std::vector<JobRecord>& jobs,
                                std::vector<int64_t>* seqs) {
  for (;;) {
    absl::StatusOr<bool> row = st.Step();
    if (!row.ok()) return row.status();
    if (!*row) return absl::OkStatus();
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
  }
}

JobStore::JobStore(sqlite3* db, std::string path, std::string page_token_key)
    : db_(db),
      path_(std::move(path)),
      page_token_key_(std::move(page_token_key)) {}

JobStore::~JobStore() {
  absl::MutexLock lock(&mu_);
  for (auto& [sql, st] : statements_) sqlite3_finalize(st);
  sqlite3_close(db_);
}

absl::StatusOr<std::unique_ptr<JobStore>> JobStore::Open(
    const std::string& path, const std::string& page_token_key) {
  if (page_token_key.size() < 16) {
    return absl::InvalidArgumentError(absl::StrCat(
        "the page token key is ", page_token_key.size(),
        " bytes; use at least 16 random bytes so tokens cannot be forged"));
  }
  sqlite3* db = nullptr;
  int rc = sqlite3_open_v2(
      path.c_str(), &db,
      SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX,
      nullptr);
  if (rc != SQLITE_OK) {
    std::string msg = db != nullptr ? sqlite3_errmsg(db) : sqlite3_errstr(rc);
    sqlite3_close(db);
    return absl::FailedPreconditionError(
        absl::StrCat("cannot open the job database ", path, ": ", msg,
                     "; check that its folder exists and is writable"));
  }
  // Waits for a lock held by another connection instead of failing at once.
  sqlite3_busy_timeout(db, 5000);
  std::unique_ptr<JobStore> store(new JobStore(db, path, page_token_key));
  absl::MutexLock lock(&store->mu_);
  JOB_STORE_RETURN_IF_ERROR(store->InitSchema());
  return store;
}

absl::Status JobStore::InitSchema() {
  // WAL: readers never block the writer; synchronous=FULL: a commit is on
  // disk when it returns, so the server may tell clients about it.
  {
    Stmt wal = Prepare("PRAGMA journal_mode=WAL");
    absl::StatusOr<bool> row = wal.Step();
    if (!row.ok()) return row.status();
    if (!*row || wal.ColStr(0) != "wal") {
      return absl::FailedPreconditionError(absl::StrCat(
          "the job database ", path_,
          " cannot use a write-ahead log (is it on a network file system?); "
          "put the data folder on a local disk"));
    }
  }
  JOB_STORE_RETURN_IF_ERROR(
      Exec("PRAGMA synchronous=FULL; PRAGMA foreign_keys=ON"));
  Txn txn(this);
  JOB_STORE_RETURN_IF_ERROR(txn.Begin());
  absl::StatusOr<int64_t> version = Prepare("PRAGMA user_version").Scalar();
  if (!version.ok()) return version.status();
  if (*version > kSchemaVersion) {
    return absl::FailedPreconditionError(absl::StrCat(
        "the job database ", path_, " has schema version ", *version,
        ", written by a newer quantd; this one understands up to version ",
        kSchemaVersion, ". Run the newer quantd or use another data folder"));
  }
  if (*version < kSchemaVersion) JOB_STORE_RETURN_IF_ERROR(Exec(kSchema));
  return txn.Commit();
}

JobStore::Stmt JobStore::Prepare(const char* sql) {
  auto it = statements_.find(sql);
  if (it != statements_.end()) return Stmt(db_, it->second, SQLITE_OK, sql);
  sqlite3_stmt* st = nullptr;
  int rc =
      sqlite3_prepare_v3(db_, sql, -1, SQLITE_PREPARE_PERSISTENT, &st, nullptr);
  if (rc == SQLITE_OK) statements_.emplace(sql, st);
  return Stmt(db_, st, rc, sql);
}

absl::Status JobStore::Exec(const char* sql) {
  int rc = sqlite3_exec(db_, sql, nullptr, nullptr, nullptr);
  return rc == SQLITE_OK ? absl::OkStatus() : SqliteError(db_, rc, sql);
}

absl::StatusOr<JobRecord> JobStore::FindLocked(absl::string_view id,
                                               absl::string_view tenant) {
  Stmt st = Prepare("SELECT " JOB_COLUMNS
                    " FROM jobs WHERE id = ?1 AND (?2 = '' OR tenant = ?2)");
  st.Bind(id, tenant);
  std::vector<JobRecord> jobs;
  JOB_STORE_RETURN_IF_ERROR(ReadJobs(st, jobs));
  if (jobs.empty()) return NotFound(id);
  return std::move(jobs[0]);
}

absl::StatusOr<std::pair<JobRecord, bool>> JobStore::Create(JobRecord job) {
  JOB_STORE_RETURN_IF_ERROR(CheckKey("tenant", job.tenant));
  JOB_STORE_RETURN_IF_ERROR(
      CheckSize("request_id", job.request_id.size(), kMaxKeyBytes));
  JOB_STORE_RETURN_IF_ERROR(
      CheckSize("the job spec", job.spec.size(), kMaxSpecBytes));
  JOB_STORE_RETURN_IF_ERROR(
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
  Txn txn(this);
  JOB_STORE_RETURN_IF_ERROR(txn.Begin());
  if (!job.request_id.empty()) {
    Stmt st = Prepare("SELECT " JOB_COLUMNS
                      " FROM jobs WHERE tenant = ?1 AND request_id = ?2");
    st.Bind(job.tenant, job.request_id);
    std::vector<JobRecord> existing;
    JOB_STORE_RETURN_IF_ERROR(ReadJobs(st, existing));
    if (!existing.empty()) {
      if (existing[0].spec != job.spec) {
        return absl::AlreadyExistsError(absl::StrCat(
            "request_id \"", job.request_id, "\" was already used for job ",
            existing[0].id,
            " with a different spec; use a new request_id for a new job"));
      }
      return std::make_pair(std::move(existing[0]), false);
    }
  }

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

  Stmt st = Prepare(
      "INSERT INTO jobs (id, tenant, request_id, state, priority, spec, "
      "display_name, labels, attempts, error, create_time_us, update_time_us, "
      "start_time_us, end_time_us, model_sha256, model_size, report_sha256, "
      "report_size) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, 0, '', ?9, ?9, 0, "
      "0, '', 0, '', 0)");
  st.Bind(job.id, job.tenant, job.request_id, job.state, job.priority,
          AsBlob{job.spec}, job.display_name, AsBlob{EncodeLabels(job.labels)},
          job.create_time_us);
  JOB_STORE_RETURN_IF_ERROR(st.Run());
  JOB_STORE_RETURN_IF_ERROR(txn.Commit());
  return std::make_pair(std::move(job), true);
}

absl::StatusOr<JobRecord> JobStore::Get(const std::string& tenant,
                                        const std::string& id) {
  JOB_STORE_RETURN_IF_ERROR(CheckKey("tenant", tenant));
  JOB_STORE_RETURN_IF_ERROR(CheckKey("job id", id));
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
  JOB_STORE_RETURN_IF_ERROR(CheckKey("tenant", tenant));
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
  Stmt st = Prepare("SELECT " JOB_COLUMNS
                    " FROM jobs WHERE tenant = ?1 AND (?2 = 0 OR state = ?2) "
                    "AND seq < ?3 ORDER BY seq DESC LIMIT ?4");
  // One more row than asked tells whether there is a next page.
  st.Bind(tenant, state ? static_cast<int>(*state) : 0, position,
          page_size + 1);
  JobPage page;
  std::vector<int64_t> seqs;
  JOB_STORE_RETURN_IF_ERROR(ReadJobs(st, page.jobs, &seqs));
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
  Stmt st = Prepare(
      "UPDATE jobs SET state = ?2, attempts = ?3, error = ?4, "
      "update_time_us = ?5, start_time_us = ?6, end_time_us = ?7 "
      "WHERE id = ?1");
  st.Bind(job.id, job.state, job.attempts, job.error, job.update_time_us,
          job.start_time_us, job.end_time_us);
  return st.Run();
}

absl::StatusOr<JobRecord> JobStore::Transition(
    const std::string& id, std::initializer_list<JobState> from, JobState to,
    const std::string& error) {
  absl::MutexLock lock(&mu_);
  Txn txn(this);
  JOB_STORE_RETURN_IF_ERROR(txn.Begin());
  absl::StatusOr<JobRecord> found = FindLocked(id, "");
  if (!found.ok()) return found.status();
  JobRecord job = std::move(*found);
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
  JOB_STORE_RETURN_IF_ERROR(MoveLocked(job, to, error));
  JOB_STORE_RETURN_IF_ERROR(txn.Commit());
  return job;
}

absl::Status JobStore::SetArtifacts(const std::string& id,
                                    const std::string& model_sha256,
                                    int64_t model_size,
                                    const std::string& report_sha256,
                                    int64_t report_size) {
  if (!IsSha256Hex(model_sha256) || !IsSha256Hex(report_sha256) ||
      model_size < 0 || report_size < 0) {
    return absl::InvalidArgumentError(
        "artifact digests must be 64 lowercase hex characters (SHA-256) and "
        "sizes must not be negative");
  }
  absl::MutexLock lock(&mu_);
  Stmt st = Prepare(
      "UPDATE jobs SET model_sha256 = ?2, model_size = ?3, report_sha256 = ?4, "
      "report_size = ?5, update_time_us = ?6 WHERE id = ?1");
  st.Bind(id, model_sha256, model_size, report_sha256, report_size, NowUs());
  JOB_STORE_RETURN_IF_ERROR(st.Run());
  return sqlite3_changes(db_) == 0 ? NotFound(id) : absl::OkStatus();
}

absl::StatusOr<int64_t> JobStore::AppendEvent(const std::string& job_id,
                                              const std::string& payload) {
  JOB_STORE_RETURN_IF_ERROR(
      CheckSize("the event", payload.size(), kMaxEventPayloadBytes));
  absl::MutexLock lock(&mu_);
  Txn txn(this);
  JOB_STORE_RETURN_IF_ERROR(txn.Begin());
  JOB_STORE_RETURN_IF_ERROR(FindLocked(job_id, "").status());
  Stmt max = Prepare(
      "SELECT COALESCE(MAX(sequence), 0) + 1 FROM events WHERE job_id = ?1");
  max.Bind(job_id);
  absl::StatusOr<int64_t> sequence = max.Scalar();
  if (!sequence.ok()) return sequence.status();
  Stmt st = Prepare(
      "INSERT INTO events (job_id, sequence, time_us, payload) VALUES (?1, "
      "?2, ?3, ?4)");
  st.Bind(job_id, *sequence, NowUs(), AsBlob{payload});
  JOB_STORE_RETURN_IF_ERROR(st.Run());
  JOB_STORE_RETURN_IF_ERROR(txn.Commit());  // fsynced: synchronous=FULL
  return *sequence;
}

absl::StatusOr<std::vector<JobEvent>> JobStore::EventsAfter(
    const std::string& job_id, int64_t after, int32_t limit) {
  if (limit < 1 || limit > kMaxEventsPerCall) {
    return absl::InvalidArgumentError(
        absl::StrCat("limit is ", limit, "; use 1 to ", kMaxEventsPerCall));
  }
  absl::MutexLock lock(&mu_);
  JOB_STORE_RETURN_IF_ERROR(FindLocked(job_id, "").status());
  Stmt st = Prepare(
      "SELECT sequence, time_us, payload FROM events WHERE job_id = ?1 AND "
      "sequence > ?2 ORDER BY sequence LIMIT ?3");
  st.Bind(job_id, after, limit);
  std::vector<JobEvent> events;
  for (;;) {
    absl::StatusOr<bool> row = st.Step();
    if (!row.ok()) return row.status();
    if (!*row) return events;
    events.push_back({job_id, st.ColInt(0), st.ColInt(1), st.ColStr(2)});
  }
}

absl::StatusOr<JobRecord> JobStore::Delete(const std::string& tenant,
                                           const std::string& id) {
  JOB_STORE_RETURN_IF_ERROR(CheckKey("tenant", tenant));
  JOB_STORE_RETURN_IF_ERROR(CheckKey("job id", id));
  absl::MutexLock lock(&mu_);
  Txn txn(this);
  JOB_STORE_RETURN_IF_ERROR(txn.Begin());
  absl::StatusOr<JobRecord> found = FindLocked(id, tenant);
  if (!found.ok()) return found.status();
  if (!IsTerminal(found->state)) {
    return absl::FailedPreconditionError(
        absl::StrCat("job ", id, " is ", JobStateName(found->state),
                     "; cancel it and wait until it is CANCELLED (or let it "
                     "finish) before deleting it"));
  }
  Stmt st = Prepare("DELETE FROM jobs WHERE id = ?1");  // events cascade
  st.Bind(id);
  JOB_STORE_RETURN_IF_ERROR(st.Run());
  JOB_STORE_RETURN_IF_ERROR(txn.Commit());
  return std::move(*found);
}

absl::StatusOr<std::optional<JobRecord>> JobStore::NextQueued(
    const std::set<std::string>& skip_tenants) {
  absl::MutexLock lock(&mu_);
  // The head of the queue; tenants at their concurrency limit are skipped
  // (looking at most kQueueLookahead jobs deep).
  Stmt st = Prepare("SELECT " JOB_COLUMNS
                    " FROM jobs WHERE state = ?1 ORDER BY priority DESC, "
                    "seq ASC LIMIT 256");
  st.Bind(JobState::kQueued);
  std::vector<JobRecord> jobs;
  JOB_STORE_RETURN_IF_ERROR(ReadJobs(st, jobs));
  for (JobRecord& j : jobs) {
    if (!skip_tenants.contains(j.tenant)) return std::move(j);
  }
  return std::nullopt;
}

absl::StatusOr<int64_t> JobStore::CountInState(JobState state,
                                               const std::string& tenant) {
  absl::MutexLock lock(&mu_);
  Stmt st = Prepare(
      "SELECT COUNT(*) FROM jobs WHERE state = ?1 AND (?2 = '' OR tenant = "
      "?2)");
  st.Bind(state, tenant);
  return st.Scalar();
}

absl::StatusOr<std::vector<JobRecord>> JobStore::Recover(int32_t max_attempts) {
  if (max_attempts < 1) {
    return absl::InvalidArgumentError(absl::StrCat(
        "max_attempts is ", max_attempts, "; it must be at least 1"));
  }
  absl::MutexLock lock(&mu_);
  Txn txn(this);
  JOB_STORE_RETURN_IF_ERROR(txn.Begin());
  std::vector<JobRecord> jobs;
  {
    Stmt st = Prepare("SELECT " JOB_COLUMNS
                      " FROM jobs WHERE state IN (?1, ?2) ORDER BY seq");
    st.Bind(JobState::kRunning, JobState::kCancelling);
    JOB_STORE_RETURN_IF_ERROR(ReadJobs(st, jobs));
  }
  for (JobRecord& job : jobs) {
    if (job.state == JobState::kCancelling) {
      JOB_STORE_RETURN_IF_ERROR(MoveLocked(
          job, JobState::kCancelled,
          job.error.empty() ? "the server restarted while cancelling" : ""));
    } else if (job.attempts < max_attempts) {
      JOB_STORE_RETURN_IF_ERROR(MoveLocked(job, JobState::kQueued, ""));
    } else {
      JOB_STORE_RETURN_IF_ERROR(
          MoveLocked(job, JobState::kFailed,
                     absl::StrCat("the server stopped ", job.attempts,
                                  " times while running this job")));
    }
  }
  JOB_STORE_RETURN_IF_ERROR(txn.Commit());
  return jobs;
}

absl::StatusOr<bool> JobStore::ReferencesBlob(const std::string& sha256) {
  if (sha256.empty()) return false;
  absl::MutexLock lock(&mu_);
  Stmt st = Prepare(
      "SELECT EXISTS (SELECT 1 FROM jobs WHERE model_sha256 = ?1) OR "
      "EXISTS (SELECT 1 FROM jobs WHERE report_sha256 = ?1)");
  st.Bind(sha256);
  absl::StatusOr<int64_t> found = st.Scalar();
  if (!found.ok()) return found.status();
  return *found != 0;
}

}  // namespace quantd
