// The blob index in PostgreSQL, for replicas that share one database: a
// tenant's upload through any replica counts for its jobs and quota on all.
// Its tables live beside the job store's, versioned as the component
// "blobs" in quantd_schema and created under the same advisory lock, so
// replicas starting together create them once.
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "server/blob_index.h"
#include "server/postgres_db.h"
#include "server/postgres_migrations.h"
#include "util/status_macros.h"

namespace quantd {
namespace {

constexpr const char* kBlobSchemaV1 = R"sql(
CREATE TABLE blobs (
  tenant BYTEA NOT NULL,
  sha256 BYTEA NOT NULL,
  kind INTEGER NOT NULL,
  name BYTEA NOT NULL,
  size BIGINT NOT NULL,
  create_time BIGINT NOT NULL,
  PRIMARY KEY (tenant, sha256)
);
CREATE INDEX blobs_by_digest ON blobs (sha256);
CREATE TABLE dataset_scans (
  sha256 BYTEA PRIMARY KEY,
  scan_time BIGINT NOT NULL,
  check_proto BYTEA NOT NULL
);
)sql";

absl::Status InitBlobSchema(PostgresDb& db) {
  PostgresDb::Transaction txn(db);
  QUANTD_RETURN_IF_ERROR(txn.Begin());
  QUANTD_RETURN_IF_ERROR(
      MigrateComponent(db, "blobs", {kBlobSchemaV1}, "the blob index"));
  return txn.Commit();
}

class PostgresBlobIndex : public BlobIndex {
 public:
  explicit PostgresBlobIndex(std::unique_ptr<PostgresDb> db)
      : db_(std::move(db)) {}

  absl::Status Record(const std::string& tenant,
                      const v1::Blob& blob) override {
    QUANTD_RETURN_IF_ERROR(CheckBlobDigest(blob.sha256()));
    absl::MutexLock lock(&mu_);
    return db_
        ->Query(
            "INSERT INTO blobs (tenant, sha256, kind, name, size, "
            "create_time) VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT "
            "(tenant, sha256) DO UPDATE SET kind = $3, name = $4, size = $5, "
            "create_time = $6",
            tenant, blob.sha256(), blob.kind(), blob.name(), blob.size(),
            blob.create_time().seconds())
        .status();
  }

  absl::StatusOr<int64_t> TenantBytes(const std::string& tenant) override {
    absl::MutexLock lock(&mu_);
    QUANTD_ASSIGN_OR_RETURN(
        PgResult r,
        db_->Query("SELECT COALESCE(SUM(size), 0)::BIGINT FROM blobs WHERE "
                   "tenant = $1",
                   tenant));
    return r.Int(0, 0);
  }

  absl::StatusOr<bool> AnyTenantOwns(const std::string& sha256) override {
    absl::MutexLock lock(&mu_);
    QUANTD_ASSIGN_OR_RETURN(
        PgResult r,
        db_->Query("SELECT 1 FROM blobs WHERE sha256 = $1 LIMIT 1", sha256));
    return r.rows() > 0;
  }

  absl::StatusOr<v1::Blob> Find(const std::string& tenant,
                                const std::string& sha256) override {
    absl::MutexLock lock(&mu_);
    QUANTD_ASSIGN_OR_RETURN(
        PgResult r, db_->Query("SELECT kind, name, size, create_time FROM "
                               "blobs WHERE tenant = $1 AND sha256 = $2",
                               tenant, sha256));
    if (r.rows() == 0) return NoSuchTenantBlob(sha256);
    v1::Blob b;
    b.set_sha256(sha256);
    b.set_kind(static_cast<v1::BlobKind>(r.Int(0, 0)));
    b.set_name(r.Str(0, 1));
    b.set_size(r.Int(0, 2));
    b.mutable_create_time()->set_seconds(r.Int(0, 3));
    return b;
  }

  absl::Status RecordScan(const std::string& sha256,
                          const v1::DatasetCheck& check) override {
    QUANTD_RETURN_IF_ERROR(CheckBlobDigest(sha256));
    const std::string bytes = check.SerializeAsString();
    absl::MutexLock lock(&mu_);
    return db_
        ->Query(
            "INSERT INTO dataset_scans (sha256, scan_time, check_proto) "
            "VALUES ($1, $2, $3) ON CONFLICT (sha256) DO UPDATE SET "
            "scan_time = $2, check_proto = $3",
            sha256, absl::ToUnixSeconds(absl::Now()), bytes)
        .status();
  }

  absl::StatusOr<std::optional<v1::DatasetCheck>> FindScan(
      const std::string& sha256) override {
    absl::MutexLock lock(&mu_);
    QUANTD_ASSIGN_OR_RETURN(
        PgResult r,
        db_->Query("SELECT check_proto FROM dataset_scans WHERE sha256 = $1",
                   sha256));
    if (r.rows() == 0) return std::optional<v1::DatasetCheck>();
    v1::DatasetCheck check;
    if (!check.ParseFromString(r.Str(0, 0))) {
      return absl::DataLossError(
          absl::StrCat("the stored scan of blob ", sha256, " is unreadable"));
    }
    return std::optional<v1::DatasetCheck>(std::move(check));
  }

 private:
  absl::Mutex mu_;
  std::unique_ptr<PostgresDb> db_ ABSL_GUARDED_BY(mu_);
};

}  // namespace

absl::StatusOr<std::unique_ptr<BlobIndex>> OpenPostgresBlobIndex(
    const std::string& url) {
  QUANTD_ASSIGN_OR_RETURN(std::unique_ptr<PostgresDb> db,
                          PostgresDb::Connect(url, "blob index"));
  QUANTD_RETURN_IF_ERROR(InitBlobSchema(*db));
  return std::unique_ptr<BlobIndex>(new PostgresBlobIndex(std::move(db)));
}

}  // namespace quantd
