// Which tenant uploaded which blob. Blobs are content-addressed and stored
// once, but a tenant may only use (in a job spec) or look up a blob it
// uploaded itself: knowing a digest must not grant access to another
// tenant's data. A small SQLite table (its own database file, WAL).
//
//   absl::StatusOr<std::unique_ptr<BlobIndex>> index =
//       BlobIndex::Open("/var/lib/quantd/blobs.db");
//   (*index)->Record("tenant-a", blob);                 // after an upload
//   absl::StatusOr<v1::Blob> b = (*index)->Find("tenant-a", digest);
#ifndef QUANTD_SERVER_BLOB_INDEX_H_
#define QUANTD_SERVER_BLOB_INDEX_H_

#include <memory>
#include <optional>
#include <string>

#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "quantd/v1/service.pb.h"
#include "server/sqlite_db.h"

namespace quantd {

class BlobIndex {
 public:
  static absl::StatusOr<std::unique_ptr<BlobIndex>> Open(
      const std::string& path);
  ~BlobIndex();
  BlobIndex(const BlobIndex&) = delete;
  BlobIndex& operator=(const BlobIndex&) = delete;

  // Records (or refreshes) the tenant's ownership of `blob`.
  absl::Status Record(const std::string& tenant, const v1::Blob& blob);
  // Bytes of all blobs the tenant uploaded (each digest once).
  absl::StatusOr<int64_t> TenantBytes(const std::string& tenant);
  // Whether any tenant uploaded the blob (so its bytes must stay).
  absl::StatusOr<bool> AnyTenantOwns(const std::string& sha256);
  // NotFound unless this tenant uploaded the blob.
  absl::StatusOr<v1::Blob> Find(const std::string& tenant,
                                const std::string& sha256);

  // The upload scan's verdict on a dataset's bytes, kept per digest (the
  // same bytes get the same verdict, whoever uploaded them) in the table
  // dataset_scans. FindScan: nullopt when the blob was never scanned.
  absl::Status RecordScan(const std::string& sha256,
                          const v1::DatasetCheck& check);
  absl::StatusOr<std::optional<v1::DatasetCheck>> FindScan(
      const std::string& sha256);

 private:
  explicit BlobIndex(std::unique_ptr<SqliteDb> db) : db_(std::move(db)) {}
  absl::Mutex mu_;
  std::unique_ptr<SqliteDb> db_ ABSL_GUARDED_BY(mu_);
};

}  // namespace quantd

#endif  // QUANTD_SERVER_BLOB_INDEX_H_
