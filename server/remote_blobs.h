// Committed blobs in object storage, with the data folder as this
// replica's cache: `quantd serve --blob-store s3://bucket/prefix`. Every
// blob the store commits (an upload, an artifact) is written to the bucket
// before it counts as stored, under
//
//   PREFIX/blobs/sha256/ab/abcdef...   (named by the digest, as on disk)
//
// and a replica that needs a blob it does not hold (an upload that came in
// through another replica, an artifact another replica wrote) downloads it
// into its cache, checking that the bytes hash to the name. Uploads in
// progress stay local to the replica that receives them.
//
//   auto s3 = S3Client::Create(config);
//   RemoteBlobs remote(std::move(*s3));
//   remote.Upload(digest, "/var/lib/quantd/uploads/x.part");
//   remote.Fetch(digest, "/var/lib/quantd/blobs/sha256/ab/abcd...",
//                "/var/lib/quantd/uploads");
#ifndef QUANTD_SERVER_REMOTE_BLOBS_H_
#define QUANTD_SERVER_REMOTE_BLOBS_H_

#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "server/s3_client.h"

namespace quantd {

// An object streamed into a new temporary file, hashed on the way.
struct DownloadedFile {
  std::string path;  // in the caller's temp_dir; the caller moves or removes it
  std::string sha256;
  int64_t size = 0;
};
// Downloads `key` (ResourceExhausted past `max_bytes`, before and while
// reading); nothing is left behind on failure.
absl::StatusOr<DownloadedFile> DownloadToTemp(S3Client& s3,
                                              const std::string& key,
                                              const std::string& temp_dir,
                                              int64_t max_bytes);

class RemoteBlobs {
 public:
  explicit RemoteBlobs(std::unique_ptr<S3Client> s3) : s3_(std::move(s3)) {}

  // Stores the bytes of `file`, which the caller verified hash to `sha256`;
  // does nothing if the bucket holds them already (same name, same size).
  absl::Status Upload(const std::string& sha256, const std::string& file);
  // Downloads the blob to `path` (a temporary file in `temp_dir`, fsynced,
  // renamed into place). DataLoss, and nothing at `path`, if the object's
  // bytes do not hash to `sha256`; NotFound if the bucket has no such blob.
  absl::Status Fetch(const std::string& sha256, const std::string& path,
                     const std::string& temp_dir);
  absl::StatusOr<int64_t> Size(const std::string& sha256);
  absl::Status Remove(const std::string& sha256);
  // Whether the bucket exists and these keys may read it: a GET of a blob
  // that cannot exist, so that `serve` fails at start, not at the first
  // upload (a HEAD would not tell a missing bucket from a missing key).
  absl::Status CheckAccess();

  // A QAT job's latest checkpoint (PREFIX/checkpoints/JOB.npz), so that a
  // replica that takes the job over resumes it. FetchCheckpoint: NotFound
  // when there is none.
  absl::Status PutCheckpoint(const std::string& job_id,
                             const std::string& file);
  absl::Status FetchCheckpoint(const std::string& job_id,
                               const std::string& path,
                               const std::string& temp_dir);
  absl::Status RemoveCheckpoint(const std::string& job_id);

  // "s3://bucket/prefix/ at endpoint" (no credentials).
  std::string Describe() const { return DescribeS3(s3_->config()); }
  static std::string Key(const std::string& sha256);

 private:
  // Downloads `key` to `path` through a temporary file; `verify` (if set)
  // sees the bytes' sha256 and may refuse them before the rename.
  absl::Status Download(
      const std::string& key, const std::string& path,
      const std::string& temp_dir,
      const std::function<absl::Status(const std::string&)>& verify);

  static absl::StatusOr<std::string> CheckpointKey(const std::string& job_id);

  std::unique_ptr<S3Client> s3_;
};

}  // namespace quantd

#endif  // QUANTD_SERVER_REMOTE_BLOBS_H_
