#include "server/janitor.h"

#include <cstdio>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "server/file_util.h"
#include "util/logging.h"
#include "util/status_macros.h"

namespace quantd {
JanitorPass Janitor::RunOnce() {
  const absl::Time cutoff = options_.now() - options_.upload_retention;
  JanitorPass pass;
  pass.uploads = blobs_->ExpireUploads(cutoff);
  pass.temp_files = blobs_->RemoveOrphanFiles(cutoff);
  pass.checkpoints = CollectCheckpoints();
  pass.evicted = blobs_->EvictCached(options_.blob_cache_bytes,
                                     options_.now() - options_.cache_grace);
  if (pass.uploads.files + pass.temp_files.files + pass.checkpoints.files +
          pass.evicted.files >
      0) {
    LOG(INFO) << "janitor: removed " << pass.uploads.files << " stale uploads ("
              << pass.uploads.bytes << " bytes), " << pass.temp_files.files
              << " orphan files (" << pass.temp_files.bytes << " bytes), "
              << pass.checkpoints.files << " checkpoints ("
              << pass.checkpoints.bytes << " bytes), " << pass.evicted.files
              << " cached blobs (" << pass.evicted.bytes << " bytes)";
  }
  return pass;
}

// A checkpoint is "<job id>.npz" (or its ".tmp" while written); it goes
// once its job is terminal or gone. Other files are left alone.
CleanupCount Janitor::CollectCheckpoints() {
  CleanupCount removed;
  if (options_.checkpoint_dir.empty()) return removed;
  ForEachFile(options_.checkpoint_dir, [&](const std::string& name,
                                           const struct stat& st) {
    if (!absl::StartsWith(name, "job-")) return;
    const std::string id = name.substr(0, name.find('.'));
    absl::StatusOr<JobState> state = jobs_->StateOf(id);
    if (state.ok() ? !IsTerminal(*state) : !absl::IsNotFound(state.status())) {
      LogIfError(
          state.status(),
          absl::StrCat("janitor: looking up the job of checkpoint ", name));
      return;
    }
    const std::string path = options_.checkpoint_dir + "/" + name;
    if (std::remove(path.c_str()) == 0) {
      ++removed.files;
      removed.bytes += st.st_size;
    } else {
      LogIfError(Errno("cannot remove", path), "janitor");
    }
  });
  return removed;
}

absl::StatusOr<StorageUsage> Janitor::Usage() {
  StorageUsage usage;
  QUANTD_ASSIGN_OR_RETURN(usage.committed, blobs_->CommittedBytes());
  QUANTD_ASSIGN_OR_RETURN(usage.artifacts, jobs_->ArtifactBytes(""));
  const UploadUsage uploads = blobs_->Uploads();
  usage.uploading = uploads.received_bytes;
  usage.reserved = uploads.declared_bytes;
  if (!options_.checkpoint_dir.empty()) {
    ForEachFile(options_.checkpoint_dir,
                [&](const std::string&, const struct stat& st) {
                  usage.checkpoints += st.st_size;
                });
  }
  return usage;
}

}  // namespace quantd
