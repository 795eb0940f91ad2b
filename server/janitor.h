// The janitor: what `quantd serve` runs every --janitor-interval-seconds to
// keep the data folder from filling with what nothing will ever use:
//
//   - uploads in progress that received nothing for --upload-retention-
//     seconds (their .part/.meta files go and their quota reservation ends;
//     the client must start over);
//   - orphan files under uploads/ older than the retention (temporary files
//     of a Put or a .meta write interrupted by a crash, a .part without its
//     .meta);
//   - QAT checkpoints (ROOT/checkpoints/<job id>.npz and their .tmp files)
//     of jobs that are terminal or deleted.
//
// It also measures the folder for /metrics (bytes per state). It never
// touches committed blobs: DeleteJob removes artifacts nothing refers to.
//
//   Janitor janitor(blobs, jobs, {.upload_retention = absl::Hours(24),
//                                 .checkpoint_dir = dir + "/checkpoints"});
//   JanitorPass pass = janitor.RunOnce();
//   absl::StatusOr<StorageUsage> usage = janitor.Usage();
#ifndef QUANTD_SERVER_JANITOR_H_
#define QUANTD_SERVER_JANITOR_H_

#include <cstdint>
#include <functional>
#include <string>

#include "absl/status/statusor.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "server/blob_store.h"
#include "server/job_store.h"

namespace quantd {

struct JanitorOptions {
  absl::Duration upload_retention = absl::Hours(24);
  std::string checkpoint_dir;  // empty: no checkpoints to collect
  // With object storage: the data folder's cache of blobs is cut back to
  // this many bytes (least recently used first; 0: no limit), sparing
  // blobs used within `cache_grace`.
  int64_t blob_cache_bytes = 0;
  absl::Duration cache_grace = absl::Minutes(10);
  // The clock (tests move it forward instead of waiting).
  std::function<absl::Time()> now = [] { return absl::Now(); };
};

// What one pass removed.
struct JanitorPass {
  CleanupCount uploads;      // stale uploads in progress
  CleanupCount temp_files;   // orphan files under uploads/
  CleanupCount checkpoints;  // checkpoints of terminal or deleted jobs
  CleanupCount evicted;      // cached copies of blobs in object storage
};

// Bytes under the data folder, by state.
struct StorageUsage {
  int64_t committed = 0;    // committed blobs: uploads and artifacts
  int64_t artifacts = 0;    // job artifacts (each digest once)
  int64_t uploading = 0;    // received by uploads in progress
  int64_t reserved = 0;     // declared by uploads in progress (quota)
  int64_t checkpoints = 0;  // QAT checkpoints
};

class Janitor {
 public:
  Janitor(BlobStore* blobs, JobStore* jobs, JanitorOptions options)
      : blobs_(blobs), jobs_(jobs), options_(std::move(options)) {}

  // One pass. Errors on single files are logged and skipped: the next
  // pass tries again.
  JanitorPass RunOnce();
  absl::StatusOr<StorageUsage> Usage();

 private:
  CleanupCount CollectCheckpoints();

  BlobStore* blobs_;
  JobStore* jobs_;
  const JanitorOptions options_;
};

}  // namespace quantd

#endif  // QUANTD_SERVER_JANITOR_H_
