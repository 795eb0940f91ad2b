#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "server/blob_index.h"
#include "server/blob_store.h"
#include "server/sqlite_db.h"
#include "util/status_macros.h"

namespace quantd {
namespace {

class SqliteBlobIndex : public BlobIndex {
 public:
  explicit SqliteBlobIndex(std::unique_ptr<SqliteDb> db) : db_(std::move(db)) {}
  absl::Status Record(const std::string& tenant, const v1::Blob& blob) override;
  absl::StatusOr<int64_t> TenantBytes(const std::string& tenant) override;
  absl::StatusOr<bool> AnyTenantOwns(const std::string& sha256) override;
  absl::StatusOr<v1::Blob> Find(const std::string& tenant,
                                const std::string& sha256) override;
  absl::Status RecordScan(const std::string& sha256,
                          const v1::DatasetCheck& check) override;
  absl::StatusOr<std::optional<v1::DatasetCheck>> FindScan(
      const std::string& sha256) override;

 private:
  absl::Mutex mu_;
  std::unique_ptr<SqliteDb> db_ ABSL_GUARDED_BY(mu_);
};

}  // namespace

absl::StatusOr<std::unique_ptr<BlobIndex>> OpenSqliteBlobIndex(
    const std::string& path) {
  QUANTD_ASSIGN_OR_RETURN(std::unique_ptr<SqliteDb> db,
                          SqliteDb::Open(path, "blob index"));
  QUANTD_RETURN_IF_ERROR(db->Exec(
      "CREATE TABLE IF NOT EXISTS blobs ("
      " tenant TEXT NOT NULL, sha256 TEXT NOT NULL, kind INTEGER NOT NULL,"
      " name TEXT NOT NULL, size INTEGER NOT NULL, create_time INTEGER NOT "
      "NULL, PRIMARY KEY (tenant, sha256));"));
  // Added with the upload scan; older databases gain it here.
  QUANTD_RETURN_IF_ERROR(db->Exec(
      "CREATE TABLE IF NOT EXISTS dataset_scans ("
      " sha256 TEXT PRIMARY KEY, ok INTEGER NOT NULL, reason TEXT NOT NULL,"
      " label_min INTEGER NOT NULL, label_max INTEGER NOT NULL,"
      " scan_version INTEGER NOT NULL, scan_time INTEGER NOT NULL,"
      " check_proto BLOB NOT NULL);"));
  return std::unique_ptr<BlobIndex>(new SqliteBlobIndex(std::move(db)));
}

absl::Status SqliteBlobIndex::Record(const std::string& tenant,
                                     const v1::Blob& blob) {
  QUANTD_RETURN_IF_ERROR(CheckBlobDigest(blob.sha256()));
  absl::MutexLock lock(&mu_);
  SqliteStatement st = db_->Prepare(
      "INSERT OR REPLACE INTO blobs (tenant, sha256, kind, name, size, "
      "create_time) VALUES (?1, ?2, ?3, ?4, ?5, ?6)");
  st.Bind(tenant, blob.sha256(), blob.kind(), blob.name(), blob.size(),
          blob.create_time().seconds());
  return st.Run();
}

absl::StatusOr<int64_t> SqliteBlobIndex::TenantBytes(
    const std::string& tenant) {
  absl::MutexLock lock(&mu_);
  SqliteStatement st = db_->Prepare(
      "SELECT COALESCE(SUM(size), 0) FROM blobs WHERE tenant = ?1");
  st.Bind(tenant);
  return st.Scalar();
}

absl::StatusOr<bool> SqliteBlobIndex::AnyTenantOwns(const std::string& sha256) {
  absl::MutexLock lock(&mu_);
  SqliteStatement st =
      db_->Prepare("SELECT COUNT(*) FROM blobs WHERE sha256 = ?1");
  st.Bind(sha256);
  QUANTD_ASSIGN_OR_RETURN(const int64_t n, st.Scalar());
  return n > 0;
}

absl::StatusOr<v1::Blob> SqliteBlobIndex::Find(const std::string& tenant,
                                               const std::string& sha256) {
  absl::MutexLock lock(&mu_);
  SqliteStatement st = db_->Prepare(
      "SELECT kind, name, size, create_time FROM blobs "
      "WHERE tenant = ?1 AND sha256 = ?2");
  st.Bind(tenant, sha256);
  QUANTD_ASSIGN_OR_RETURN(const bool row, st.Step());
  if (!row) return NoSuchTenantBlob(sha256);
  v1::Blob b;
  b.set_sha256(sha256);
  b.set_kind(static_cast<v1::BlobKind>(st.ColInt(0)));
  b.set_name(st.ColStr(1));
  b.set_size(st.ColInt(2));
  b.mutable_create_time()->set_seconds(st.ColInt(3));
  return b;
}

absl::Status SqliteBlobIndex::RecordScan(const std::string& sha256,
                                         const v1::DatasetCheck& check) {
  QUANTD_RETURN_IF_ERROR(CheckBlobDigest(sha256));
  const std::string bytes = check.SerializeAsString();
  absl::MutexLock lock(&mu_);
  SqliteStatement st = db_->Prepare(
      "INSERT OR REPLACE INTO dataset_scans (sha256, ok, reason, label_min, "
      "label_max, scan_version, scan_time, check_proto) "
      "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)");
  st.Bind(sha256, check.ok() ? 1 : 0, check.reason(), check.label_min(),
          check.label_max(), check.scan_version(),
          absl::ToUnixSeconds(absl::Now()), SqlBlob{bytes});
  return st.Run();
}

absl::StatusOr<std::optional<v1::DatasetCheck>> SqliteBlobIndex::FindScan(
    const std::string& sha256) {
  absl::MutexLock lock(&mu_);
  SqliteStatement st =
      db_->Prepare("SELECT check_proto FROM dataset_scans WHERE sha256 = ?1");
  st.Bind(sha256);
  QUANTD_ASSIGN_OR_RETURN(const bool row, st.Step());
  if (!row) return std::optional<v1::DatasetCheck>();
  v1::DatasetCheck check;
  if (!check.ParseFromString(st.ColStr(0))) {
    return absl::DataLossError(
        absl::StrCat("the stored scan of blob ", sha256, " is unreadable"));
  }
  return std::optional<v1::DatasetCheck>(std::move(check));
}

}  // namespace quantd
