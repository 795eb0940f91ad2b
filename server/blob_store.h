// A content-addressed blob store on disk for uploaded models and datasets
// and for job artifacts:
//
//   ROOT/blobs/sha256/ab/abcdef...   committed blobs, named by their digest
//   ROOT/uploads/<key>.part          uploads in progress (resumable)
//   ROOT/uploads/<key>.meta          their declared size, digest and owner
//
// Bytes go to a temporary file, are fsynced, verified against the declared
// size and sha256, and renamed into place, so a reader never sees a partial
// or unverified blob and a crash leaves at most a .part file behind. No
// client-chosen string reaches a path: upload files are named by a hash of
// (owner, upload id), blobs by a validated digest.
//
// With object storage (remote_blobs.h) the folder is this replica's cache:
// a blob is committed once the bucket holds it, and one missing here is
// downloaded (and its digest checked) when first read. Uploads in progress
// stay on the replica that receives them.
//
// Concurrency: each upload in progress has its own state and lock (offset,
// incremental sha256), so appends, the digest and the fsync of one upload
// never wait for another's disk I/O; the store-wide lock only guards the
// table of uploads and the final rename. The digest is computed as bytes
// arrive; after a restart the .part is hashed once, when the upload is
// first touched again (resume).
//
// Uploads in progress are also storage reservations: each counts its
// declared size for its owner from BeginUpload until it is aborted, expires
// (ExpireUploads) or, after Commit, until ReleaseUpload (the caller releases
// once the blob counts as the owner's elsewhere).
//
//   absl::StatusOr<std::unique_ptr<BlobStore>> store =
//   BlobStore::Open("/var/lib/quantd"); UploadKey key{"tenant-a", "upload-1"};
//   (*store)->BeginUpload(key, size, sha256, max);   // or resume: same call
//   int64_t committed = *(*store)->CommittedSize(key);
//   (*store)->Append(key, committed, chunk);
//   absl::StatusOr<std::string> digest = (*store)->Commit(key);
//   (*store)->ReleaseUpload(key);
//   std::string path = (*store)->PathOf(*digest);
#ifndef QUANTD_SERVER_BLOB_STORE_H_
#define QUANTD_SERVER_BLOB_STORE_H_

#include <cstdint>
#include <limits>
#include <map>
#include <memory>
#include <string>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "server/remote_blobs.h"
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

// The storage limit a new upload's reservation is checked against.
struct UploadQuota {
  int64_t limit = std::numeric_limits<int64_t>::max();
  // The owner's bytes outside this store's reservations (committed blobs,
  // job artifacts).
  int64_t used = 0;
  // ReleaseGeneration() when `used` was read, or -1. If a reservation was
  // released since (its blob may now be in `used`, or not yet), BeginUpload
  // returns Aborted and the caller reads `used` again: never undercounted.
  int64_t release_generation = -1;
};

// Uploads in progress (reservations), in all.
struct UploadUsage {
  int64_t uploads = 0;
  int64_t declared_bytes = 0;  // reserved
  int64_t received_bytes = 0;  // on disk in .part files
};

// What ExpireUploads / RemoveOrphanFiles removed.
struct CleanupCount {
  int64_t files = 0;  // uploads (a .part and its .meta count as one) or files
  int64_t bytes = 0;
};

class BlobStore {
 public:
  // Opens (creates) the folders and loads the uploads in progress, so their
  // reservations count again after a restart.
  // With `remote`, committed blobs live in object storage and `root` is
  // this replica's cache of them (and holds its uploads in progress).
  static absl::StatusOr<std::unique_ptr<BlobStore>> Open(
      const std::string& root, std::unique_ptr<RemoteBlobs> remote = nullptr);
  ~BlobStore();

  // Starts an upload, or resumes one with the same key: the declared size
  // and digest must then match the first call's (FailedPrecondition
  // otherwise). `max_size` bounds `size` (ResourceExhausted). A new upload
  // reserves `size` bytes for its owner: ResourceExhausted if quota.used +
  // the owner's reservations + size exceeds quota.limit; the check and the
  // reservation are one step, so concurrent headers cannot both pass.
  absl::Status BeginUpload(const UploadKey& key, int64_t size,
                           const std::string& sha256, int64_t max_size,
                           const UploadQuota& quota = {});
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
  // what differed) so that the client starts over. The reservation stays
  // until ReleaseUpload.
  absl::StatusOr<std::string> Commit(const UploadKey& key);
  // Ends a committed upload's reservation (no error if there is none).
  void ReleaseUpload(const UploadKey& key);
  // Counts ReleaseUpload calls that ended a reservation (see UploadQuota).
  int64_t ReleaseGeneration();
  // Drops an upload in progress and its reservation (no error if none).
  absl::Status AbortUpload(const UploadKey& key);

  // Bytes reserved by the owner's uploads in progress (declared sizes).
  int64_t ReservedBytes(const std::string& owner);
  UploadUsage Uploads();
  // Removes uploads in progress with no bytes received since `cutoff`
  // (their reservations end), skipping any that is busy right now.
  CleanupCount ExpireUploads(absl::Time cutoff);
  // Removes files under uploads/ older than `cutoff` that belong to no
  // upload in progress: temporary files of an interrupted Put or .meta
  // write, a .part without its .meta.
  CleanupCount RemoveOrphanFiles(absl::Time cutoff);
  // Bytes of all committed blobs (uploads and artifacts) on this disk (with
  // object storage: the blobs cached here).
  absl::StatusOr<int64_t> CommittedBytes() const;

  // Stores `bytes` as a blob (artifacts); returns the digest.
  absl::StatusOr<std::string> Put(absl::string_view bytes);
  // Stores the file `temp`, made in temp_dir() and hashing to `sha256`
  // (the caller computed it while writing), as a blob; the file is moved
  // (removed on failure). Returns the digest.
  absl::StatusOr<std::string> Adopt(const std::string& temp,
                                    const std::string& sha256);
  // Where callers make files for Adopt (same filesystem as the blobs).
  std::string temp_dir() const { return root_ + "/uploads"; }

  bool Contains(const std::string& sha256) const;
  absl::StatusOr<int64_t> Size(const std::string& sha256) const;
  // Reads up to `max` bytes from `offset` (fewer at the end).
  absl::StatusOr<std::string> Read(const std::string& sha256, int64_t offset,
                                   int64_t max) const;
  // The committed blob's file, for the engine to open (digest validated);
  // with object storage, downloaded into the cache first if need be.
  absl::StatusOr<std::string> PathOf(const std::string& sha256) const;
  absl::Status Remove(const std::string& sha256);

  // With object storage, the folder is a cache: TouchCached marks a blob
  // used now (PathOf and Read do), EvictCached removes the least recently
  // used blobs while the cache holds more than `max_bytes`, sparing those
  // used since `used_before`. Without object storage both do nothing.
  void TouchCached(const std::string& path) const;
  CleanupCount EvictCached(int64_t max_bytes, absl::Time used_before);

  // Object storage behind the folder, or null.
  RemoteBlobs* remote() const { return remote_.get(); }

  // The folder this store lives in (for redacting it from messages).
  const std::string& root() const { return root_; }

  // One upload in progress (defined and used in blob_store.cc only).
  struct Upload;

 private:
  using UploadPtr = std::shared_ptr<Upload>;
  // A committed upload whose reservation is not yet released.
  struct Committed {
    std::string owner;
    int64_t size = 0;
  };

  BlobStore(std::string root, std::unique_ptr<RemoteBlobs> remote)
      : root_(std::move(root)), remote_(std::move(remote)) {}
  absl::Status LoadUploads();
  std::string UploadBase(const UploadKey& key) const;
  std::string BlobPath(const std::string& sha256) const;
  // The upload under `key` (nullptr if none).
  UploadPtr Find(const UploadKey& key);
  // Finds or creates (reserving) the upload; `*created` says which.
  absl::StatusOr<UploadPtr> FindOrReserve(const UploadKey& key, int64_t size,
                                          const std::string& sha256,
                                          const UploadQuota& quota,
                                          bool* created);
  int64_t ReservedLocked(const std::string& owner)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mutex_);
  // Removes `u` from the table if it is still there.
  void Forget(const Upload& u, bool keep_reservation);
  absl::StatusOr<std::string> MoveIntoPlace(const std::string& temp,
                                            const std::string& sha256);

  const std::string root_;
  const std::unique_ptr<RemoteBlobs> remote_;  // null: the folder is all
  absl::Mutex mutex_;  // the tables below and renames into blobs/
  std::map<std::string, UploadPtr> uploads_ ABSL_GUARDED_BY(mutex_);
  std::map<std::string, Committed> committed_ ABSL_GUARDED_BY(mutex_);
  int64_t releases_ ABSL_GUARDED_BY(mutex_) = 0;
};

}  // namespace quantd

#endif  // QUANTD_SERVER_BLOB_STORE_H_
