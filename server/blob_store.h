// A content-addressed blob store on disk for uploaded models and datasets
// and for job artifacts:
//
//   ROOT/blobs/sha256/ab/abcdef...   committed blobs, named by their digest
//   ROOT/uploads/<key>.part          uploads in progress (resumable)
//   ROOT/uploads/<key>.meta          their declared size and digest
//
// Bytes go to a temporary file, are fsynced, verified against the declared
// size and sha256, and renamed into place, so a reader never sees a partial
// or unverified blob and a crash leaves at most a .part file behind. No
// client-chosen string reaches a path: upload files are named by a hash of
// (owner, upload id), blobs by a validated digest.
//
//   absl::StatusOr<std::unique_ptr<BlobStore>> store =
//   BlobStore::Open("/var/lib/quantd"); UploadKey key{"tenant-a", "upload-1"};
//   (*store)->BeginUpload(key, size, sha256);        // or resume: same call
//   int64_t committed = *(*store)->CommittedSize(key);
//   (*store)->Append(key, committed, chunk);
//   absl::StatusOr<std::string> digest = (*store)->Commit(key);
//   std::string path = (*store)->PathOf(*digest);
#ifndef QUANTD_SERVER_BLOB_STORE_H_
#define QUANTD_SERVER_BLOB_STORE_H_

#include <cstdint>
#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "server/resource_names.h"

namespace quantd {

struct UploadKey {
  std::string owner;      // the tenant
  std::string upload_id;  // chosen by the client, unique per owner
};

// An upload in progress: what was declared and what arrived.
struct UploadProgress {
  int64_t committed = 0;
  int64_t size = 0;
  std::string sha256;
};

class BlobStore {
 public:
  static absl::StatusOr<std::unique_ptr<BlobStore>> Open(
      const std::string& root);

  // Starts an upload, or resumes one with the same key: the declared size
  // and digest must then match the first call's (FailedPrecondition
  // otherwise). `max_size` bounds `size` (ResourceExhausted).
  absl::Status BeginUpload(const UploadKey& key, int64_t size,
                           const std::string& sha256, int64_t max_size);
  // Bytes received so far (what a client resumes from); NotFound if no
  // such upload is in progress.
  absl::StatusOr<int64_t> CommittedSize(const UploadKey& key);
  absl::StatusOr<UploadProgress> UploadStatus(const UploadKey& key);
  // Appends `data` at `offset`, which must equal CommittedSize
  // (FailedPrecondition naming it otherwise); never past the declared size.
  absl::Status Append(const UploadKey& key, int64_t offset,
                      absl::string_view data);
  // Verifies size and digest and moves the blob into place; returns the
  // digest. On a mismatch the upload is discarded (InvalidArgument saying
  // what differed) so that the client starts over.
  absl::StatusOr<std::string> Commit(const UploadKey& key);
  // Drops an upload in progress (no error if there is none).
  absl::Status AbortUpload(const UploadKey& key);

  // Stores `bytes` as a blob (artifacts); returns the digest.
  absl::StatusOr<std::string> Put(absl::string_view bytes);

  bool Contains(const std::string& sha256) const;
  absl::StatusOr<int64_t> Size(const std::string& sha256) const;
  // Reads up to `max` bytes from `offset` (fewer at the end).
  absl::StatusOr<std::string> Read(const std::string& sha256, int64_t offset,
                                   int64_t max) const;
  // The committed blob's file, for the engine to open (digest validated).
  absl::StatusOr<std::string> PathOf(const std::string& sha256) const;
  absl::Status Remove(const std::string& sha256);

 private:
  explicit BlobStore(std::string root) : root_(std::move(root)) {}
  std::string UploadBase(const UploadKey& key) const;
  std::string BlobPath(const std::string& sha256) const;
  absl::StatusOr<std::string> MoveIntoPlace(const std::string& temp,
                                            const std::string& sha256);

  std::string root_;

 public:
  // The folder this store lives in (for redacting it from messages).
  const std::string& root() const { return root_; }
  absl::Mutex mutex_;  // serializes uploads' metadata and renames
};

}  // namespace quantd

#endif  // QUANTD_SERVER_BLOB_STORE_H_
