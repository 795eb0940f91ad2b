// The data folder as a bounded cache when blobs live in object storage
// (BlobStore::TouchCached, BlobStore::EvictCached; declared in
// blob_store.h). Kept apart from blob_store.cc, whose subject is the
// folder as the store of record.
#include <fcntl.h>
#include <sys/stat.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <vector>

#include "server/blob_store.h"
#include "server/file_util.h"

namespace quantd {

void BlobStore::TouchCached(const std::string& path) const {
  // The modification time is the cache's "last used": a blob's bytes never
  // change, and atime is unreliable (relatime, noatime mounts).
  if (remote_ != nullptr) utimensat(AT_FDCWD, path.c_str(), nullptr, 0);
}

CleanupCount BlobStore::EvictCached(int64_t max_bytes, absl::Time used_before) {
  CleanupCount removed;
  if (remote_ == nullptr || max_bytes <= 0) return removed;
  struct Cached {
    std::string path;
    int64_t size;
    absl::Time used;
  };
  std::vector<Cached> all;
  int64_t total = 0;
  ForEachFileInSubdirs(root_ + "/blobs/sha256", [&](const std::string& path,
                                                    const struct stat& st) {
    all.push_back({path, st.st_size, absl::FromTimeT(st.st_mtime)});
    total += st.st_size;
  });
  std::sort(all.begin(), all.end(),
            [](const Cached& a, const Cached& b) { return a.used < b.used; });
  for (const Cached& c : all) {
    // Recently used blobs stay even over the limit: a job may be about to
    // open the path PathOf gave it.
    if (total <= max_bytes || c.used >= used_before) break;
    absl::MutexLock lock(&mutex_);
    if (std::remove(c.path.c_str()) == 0) {
      total -= c.size;
      ++removed.files;
      removed.bytes += c.size;
    }
  }
  return removed;
}

}  // namespace quantd
