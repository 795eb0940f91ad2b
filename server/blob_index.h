// Which tenant uploaded which blob. Blobs are content-addressed and stored
// once, but a tenant may only use (in a job spec) or look up a blob it
// uploaded itself: knowing a digest must not grant access to another
// tenant's data. Two tables (blobs, dataset_scans): in SQLite (its own
// database file, WAL) for one replica, in PostgreSQL (the job store's
// database) when several replicas share it.
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
#include "quantd/v1/service.pb.h"

namespace quantd {

class BlobIndex {
 public:
  // `where` is a PostgreSQL URL (postgres:// or postgresql://, shared by
  // replicas: the same database as the job store) or a SQLite file path.
  static absl::StatusOr<std::unique_ptr<BlobIndex>> Open(
      const std::string& where);
  virtual ~BlobIndex() = default;

  // Records (or refreshes) the tenant's ownership of `blob`.
  virtual absl::Status Record(const std::string& tenant,
                              const v1::Blob& blob) = 0;
  // Bytes of all blobs the tenant uploaded (each digest once).
  virtual absl::StatusOr<int64_t> TenantBytes(const std::string& tenant) = 0;
  // Whether any tenant uploaded the blob (so its bytes must stay).
  virtual absl::StatusOr<bool> AnyTenantOwns(const std::string& sha256) = 0;
  // NotFound unless this tenant uploaded the blob.
  virtual absl::StatusOr<v1::Blob> Find(const std::string& tenant,
                                        const std::string& sha256) = 0;

  // The upload scan's verdict on a dataset's bytes, kept per digest (the
  // same bytes get the same verdict, whoever uploaded them) in the table
  // dataset_scans. FindScan: nullopt when the blob was never scanned.
  virtual absl::Status RecordScan(const std::string& sha256,
                                  const v1::DatasetCheck& check) = 0;
  virtual absl::StatusOr<std::optional<v1::DatasetCheck>> FindScan(
      const std::string& sha256) = 0;
};

// The two backends (blob_index.cc dispatches between them).
absl::StatusOr<std::unique_ptr<BlobIndex>> OpenSqliteBlobIndex(
    const std::string& path);
absl::StatusOr<std::unique_ptr<BlobIndex>> OpenPostgresBlobIndex(
    const std::string& url);

// What Record refuses and Find answers alike in both backends.
absl::Status CheckBlobDigest(const std::string& sha256);
absl::Status NoSuchTenantBlob(const std::string& sha256);

}  // namespace quantd

#endif  // QUANTD_SERVER_BLOB_INDEX_H_
