#include "server/blob_index.h"

#include <sqlite3.h>

#include "absl/strings/str_cat.h"
#include "server/blob_store.h"

namespace quantd {
namespace {

absl::Status SqlError(sqlite3* db, absl::string_view what) {
  return absl::InternalError(
      absl::StrCat("blob index: ", what, ": ", sqlite3_errmsg(db)));
}

// A prepared statement that finalizes itself.
struct Statement {
  sqlite3_stmt* stmt = nullptr;
  ~Statement() { sqlite3_finalize(stmt); }
};

}  // namespace

absl::StatusOr<std::unique_ptr<BlobIndex>> BlobIndex::Open(
    const std::string& path) {
  sqlite3* db = nullptr;
  if (sqlite3_open_v2(
          path.c_str(), &db,
          SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_FULLMUTEX,
          nullptr) != SQLITE_OK) {
    const std::string msg = db ? sqlite3_errmsg(db) : "out of memory";
    sqlite3_close(db);
    return absl::FailedPreconditionError(
        absl::StrCat("cannot open the blob index '", path, "': ", msg));
  }
  std::unique_ptr<BlobIndex> index(new BlobIndex(db));
  const char* schema =
      "PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL;"
      "PRAGMA busy_timeout=5000;"
      "CREATE TABLE IF NOT EXISTS blobs ("
      " tenant TEXT NOT NULL, sha256 TEXT NOT NULL, kind INTEGER NOT NULL,"
      " name TEXT NOT NULL, size INTEGER NOT NULL, create_time INTEGER NOT "
      "NULL, PRIMARY KEY (tenant, sha256));";
  if (sqlite3_exec(db, schema, nullptr, nullptr, nullptr) != SQLITE_OK) {
    return SqlError(db, "creating the schema");
  }
  return index;
}

BlobIndex::~BlobIndex() { sqlite3_close(db_); }

absl::Status BlobIndex::Record(const std::string& tenant,
                               const v1::Blob& blob) {
  if (!IsSha256Hex(blob.sha256())) {
    return absl::InvalidArgumentError("a blob digest is 64 hex characters");
  }
  absl::MutexLock lock(&mu_);
  Statement st;
  if (sqlite3_prepare_v2(db_,
                         "INSERT OR REPLACE INTO blobs (tenant, sha256, kind, "
                         "name, size, create_time) VALUES (?, ?, ?, ?, ?, ?)",
                         -1, &st.stmt, nullptr) != SQLITE_OK) {
    return SqlError(db_, "preparing an insert");
  }
  sqlite3_bind_text(st.stmt, 1, tenant.data(), tenant.size(), SQLITE_STATIC);
  sqlite3_bind_text(st.stmt, 2, blob.sha256().data(), blob.sha256().size(),
                    SQLITE_STATIC);
  sqlite3_bind_int(st.stmt, 3, blob.kind());
  sqlite3_bind_text(st.stmt, 4, blob.name().data(), blob.name().size(),
                    SQLITE_STATIC);
  sqlite3_bind_int64(st.stmt, 5, blob.size());
  sqlite3_bind_int64(st.stmt, 6, blob.create_time().seconds());
  if (sqlite3_step(st.stmt) != SQLITE_DONE) {
    return SqlError(db_, "recording a blob");
  }
  return absl::OkStatus();
}

absl::StatusOr<int64_t> BlobIndex::TenantBytes(const std::string& tenant) {
  absl::MutexLock lock(&mu_);
  Statement st;
  if (sqlite3_prepare_v2(db_,
                         "SELECT COALESCE(SUM(size), 0) FROM blobs WHERE "
                         "tenant = ?",
                         -1, &st.stmt, nullptr) != SQLITE_OK) {
    return SqlError(db_, "preparing a sum");
  }
  sqlite3_bind_text(st.stmt, 1, tenant.data(), tenant.size(), SQLITE_STATIC);
  if (sqlite3_step(st.stmt) != SQLITE_ROW) {
    return SqlError(db_, "summing a tenant's blobs");
  }
  return sqlite3_column_int64(st.stmt, 0);
}

absl::StatusOr<v1::Blob> BlobIndex::Find(const std::string& tenant,
                                         const std::string& sha256) {
  absl::MutexLock lock(&mu_);
  Statement st;
  if (sqlite3_prepare_v2(db_,
                         "SELECT kind, name, size, create_time FROM blobs "
                         "WHERE tenant = ? AND sha256 = ?",
                         -1, &st.stmt, nullptr) != SQLITE_OK) {
    return SqlError(db_, "preparing a lookup");
  }
  sqlite3_bind_text(st.stmt, 1, tenant.data(), tenant.size(), SQLITE_STATIC);
  sqlite3_bind_text(st.stmt, 2, sha256.data(), sha256.size(), SQLITE_STATIC);
  const int rc = sqlite3_step(st.stmt);
  if (rc == SQLITE_DONE) {
    return absl::NotFoundError(
        absl::StrCat("no blob with sha256 ", sha256.substr(0, 64),
                     " was uploaded by this tenant; upload it first"));
  }
  if (rc != SQLITE_ROW) return SqlError(db_, "looking up a blob");
  v1::Blob b;
  b.set_sha256(sha256);
  b.set_kind(static_cast<v1::BlobKind>(sqlite3_column_int(st.stmt, 0)));
  b.set_name(reinterpret_cast<const char*>(sqlite3_column_text(st.stmt, 1)));
  b.set_size(sqlite3_column_int64(st.stmt, 2));
  b.mutable_create_time()->set_seconds(sqlite3_column_int64(st.stmt, 3));
  return b;
}

}  // namespace quantd
