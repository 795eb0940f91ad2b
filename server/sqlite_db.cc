#include "server/sqlite_db.h"

#include <sqlite3.h>

#include "absl/strings/str_cat.h"
#include "util/status_macros.h"

namespace quantd {
namespace {

// Maps SQLite result codes to the codes a client can act on.
absl::Status SqliteError(sqlite3* db, int rc, const std::string& what,
                         absl::string_view context) {
  std::string msg = absl::StrCat(
      what, " ", sqlite3_db_filename(db, "main"), ": ", sqlite3_errstr(rc),
      " (", sqlite3_errmsg(db), ") in ", context.substr(0, 60));
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
          absl::StrCat(msg, "; point quantd at its own ", what, " file"));
    case SQLITE_CORRUPT:
      return absl::DataLossError(
          absl::StrCat(msg, "; restore the ", what, " from a backup"));
    default:
      return absl::InternalError(msg);
  }
}

}  // namespace

SqliteStatement::~SqliteStatement() {
  if (s_ != nullptr) {
    sqlite3_reset(s_);
    sqlite3_clear_bindings(s_);
  }
}

bool SqliteStatement::ok() const { return rc_ == SQLITE_OK && s_ != nullptr; }

absl::StatusOr<bool> SqliteStatement::Step() {
  if (ok()) rc_ = sqlite3_step(s_);
  if (rc_ == SQLITE_ROW || rc_ == SQLITE_DONE) {
    const bool row = rc_ == SQLITE_ROW;
    rc_ = SQLITE_OK;
    return row;
  }
  return SqliteError(db_, rc_, *what_, sql_);
}

absl::StatusOr<int64_t> SqliteStatement::Scalar() {
  QUANTD_ASSIGN_OR_RETURN(const bool row, Step());
  return row ? ColInt(0) : 0;
}

int64_t SqliteStatement::ColInt(int c) { return sqlite3_column_int64(s_, c); }

std::string SqliteStatement::ColStr(int c) {
  const void* p = sqlite3_column_blob(s_, c);
  const int n = sqlite3_column_bytes(s_, c);
  return p == nullptr ? std::string()
                      : std::string(static_cast<const char*>(p), n);
}

void SqliteStatement::BindOne(int i, int64_t v) {
  if (ok()) rc_ = sqlite3_bind_int64(s_, i, v);
}

void SqliteStatement::BindOne(int i, absl::string_view v) {
  if (ok()) {
    rc_ = sqlite3_bind_text64(s_, i, v.empty() ? "" : v.data(), v.size(),
                              SQLITE_TRANSIENT, SQLITE_UTF8);
  }
}

void SqliteStatement::BindOne(int i, SqlBlob v) {
  if (ok()) {
    rc_ = sqlite3_bind_blob64(s_, i, v.bytes.empty() ? "" : v.bytes.data(),
                              v.bytes.size(), SQLITE_TRANSIENT);
  }
}

absl::StatusOr<std::unique_ptr<SqliteDb>> SqliteDb::Open(
    const std::string& path, const std::string& what) {
  sqlite3* raw = nullptr;
  const int rc = sqlite3_open_v2(
      path.c_str(), &raw,
      SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX,
      nullptr);
  if (rc != SQLITE_OK) {
    const std::string msg =
        raw != nullptr ? sqlite3_errmsg(raw) : sqlite3_errstr(rc);
    sqlite3_close(raw);
    return absl::FailedPreconditionError(
        absl::StrCat("cannot open the ", what, " ", path, ": ", msg,
                     "; check that its folder exists and is writable"));
  }
  std::unique_ptr<SqliteDb> db(new SqliteDb(raw, path, what));
  // Waits for a lock held by another connection instead of failing at once.
  sqlite3_busy_timeout(raw, 5000);
  // WAL: readers never block the writer; synchronous=FULL: a commit is on
  // disk when it returns, so the server may tell clients about it.
  SqliteStatement wal = db->Prepare("PRAGMA journal_mode=WAL");
  QUANTD_ASSIGN_OR_RETURN(const bool row, wal.Step());
  if (!row || wal.ColStr(0) != "wal") {
    return absl::FailedPreconditionError(absl::StrCat(
        "the ", what, " ", path,
        " cannot use a write-ahead log (is it on a network file system?); "
        "put the data folder on a local disk"));
  }
  QUANTD_RETURN_IF_ERROR(
      db->Exec("PRAGMA synchronous=FULL; PRAGMA foreign_keys=ON"));
  return db;
}

SqliteDb::~SqliteDb() {
  for (auto& [sql, st] : statements_) sqlite3_finalize(st);
  sqlite3_close(db_);
}

SqliteStatement SqliteDb::Prepare(const char* sql) {
  auto it = statements_.find(sql);
  if (it != statements_.end()) {
    return SqliteStatement(db_, it->second, SQLITE_OK, sql, &what_);
  }
  sqlite3_stmt* st = nullptr;
  const int rc =
      sqlite3_prepare_v3(db_, sql, -1, SQLITE_PREPARE_PERSISTENT, &st, nullptr);
  if (rc == SQLITE_OK) statements_.emplace(sql, st);
  return SqliteStatement(db_, st, rc, sql, &what_);
}

absl::Status SqliteDb::Exec(const char* sql) {
  const int rc = sqlite3_exec(db_, sql, nullptr, nullptr, nullptr);
  return rc == SQLITE_OK ? absl::OkStatus() : SqliteError(db_, rc, what_, sql);
}

int64_t SqliteDb::Changes() { return sqlite3_changes(db_); }

SqliteDb::Transaction::~Transaction() {
  // A failed ROLLBACK leaves nothing to do: SQLite rolls back on close.
  if (open_) sqlite3_exec(db_.db_, "ROLLBACK", nullptr, nullptr, nullptr);
}

absl::Status SqliteDb::Transaction::Begin() {
  absl::Status s = db_.Exec("BEGIN IMMEDIATE");
  open_ = s.ok();
  return s;
}

absl::Status SqliteDb::Transaction::Commit() {
  absl::Status s = db_.Exec("COMMIT");
  if (s.ok()) open_ = false;
  return s;
}

}  // namespace quantd
