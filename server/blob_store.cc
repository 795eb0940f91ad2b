#include "server/blob_store.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <set>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "server/file_util.h"
#include "util/logging.h"
#include "util/sha256.h"
#include "util/status_macros.h"

namespace quantd {
namespace {

struct UploadMeta {
  int64_t size = 0;
  std::string sha256;
  std::string owner;  // empty in .meta files of older versions
};

absl::StatusOr<UploadMeta> ReadMeta(const std::string& path) {
  std::ifstream f(path);
  UploadMeta m;
  if (!(f >> m.size >> m.sha256) || !IsSha256Hex(m.sha256)) {
    return absl::NotFoundError("no upload in progress under this id");
  }
  f >> m.owner;
  return m;
}

// Writes the whole of `data` at the end of `path`, which holds `committed`
// bytes; on failure cuts the file back so its size stays a chunk boundary.
absl::Status AppendToFile(const std::string& path, int64_t committed,
                          absl::string_view data) {
  const int fd = open(path.c_str(), O_WRONLY | O_APPEND);
  if (fd < 0) return Errno("cannot open", path);
  size_t written = 0;
  while (written < data.size()) {
    const ssize_t n = write(fd, data.data() + written, data.size() - written);
    if (n <= 0) {
      const absl::Status s = Errno("cannot write", path);
      if (ftruncate(fd, committed) != 0) {
        // The next append starts at the committed size anyway; the stray
        // bytes past it are overwritten or discarded with the upload.
        LOG(ERROR) << "cannot truncate " << path << " back to " << committed
                   << " bytes: " << std::strerror(errno);
      }
      close(fd);
      return s;
    }
    written += n;
  }
  close(fd);
  return absl::OkStatus();
}

}  // namespace

// One upload in progress. The fields fixed at creation are read without
// the lock; the rest only under it, once `settled` (files created, or the
// creation failed).
struct BlobStore::Upload {
  Upload(std::string owner_in, std::string base_in, int64_t size_in,
         std::string sha256_in)
      : owner(std::move(owner_in)),
        base(std::move(base_in)),
        size(size_in),
        sha256(std::move(sha256_in)) {}

  const std::string owner;
  const std::string base;  // ROOT/uploads/<key>, without .part/.meta
  const int64_t size;
  const std::string sha256;
  absl::Mutex mu;
  bool settled ABSL_GUARDED_BY(mu) = false;
  // Committed, aborted, discarded or expired: look the key up again.
  bool gone ABSL_GUARDED_BY(mu) = false;
  int64_t committed ABSL_GUARDED_BY(mu) = 0;
  // The digest of the first `committed` bytes; null after a restart until
  // the .part is hashed once (EnsureHashed).
  std::unique_ptr<Sha256> hash ABSL_GUARDED_BY(mu);
  absl::Time last_active ABSL_GUARDED_BY(mu);
  // `committed` for readers that do not take `mu` (Uploads()).
  std::atomic<int64_t> received{0};
};

namespace {

absl::Status EnsureHashed(BlobStore::Upload& u)
    ABSL_EXCLUSIVE_LOCKS_REQUIRED(u.mu) {
  if (u.hash != nullptr) return absl::OkStatus();
  auto hash = std::make_unique<Sha256>();
  QUANTD_RETURN_IF_ERROR(hash->UpdateFromFile(u.base + ".part", u.committed));
  u.hash = std::move(hash);
  return absl::OkStatus();
}

void RemoveFiles(const BlobStore::Upload& u) {
  std::remove((u.base + ".part").c_str());
  std::remove((u.base + ".meta").c_str());
}

// The .part first, then the .meta that makes the upload exist.
absl::Status CreateFiles(const BlobStore::Upload& u) {
  const int fd =
      open((u.base + ".part").c_str(), O_CREAT | O_TRUNC | O_WRONLY, 0640);
  if (fd < 0) return Errno("cannot create", u.base + ".part");
  close(fd);
  const std::string meta_tmp = u.base + ".meta.tmp";
  {
    std::ofstream m(meta_tmp, std::ios::trunc);
    m << u.size << " " << u.sha256 << " " << u.owner << "\n";
    if (!m.flush()) return Errno("cannot write", meta_tmp);
  }
  QUANTD_RETURN_IF_ERROR(FsyncPath(meta_tmp, O_RDONLY));
  if (std::rename(meta_tmp.c_str(), (u.base + ".meta").c_str()) != 0) {
    return Errno("cannot rename", meta_tmp);
  }
  return absl::OkStatus();
}

}  // namespace

BlobStore::~BlobStore() = default;

absl::StatusOr<std::unique_ptr<BlobStore>> BlobStore::Open(
    const std::string& root, std::unique_ptr<RemoteBlobs> remote) {
  if (root.empty()) {
    return absl::InvalidArgumentError("the blob store folder is empty");
  }
  for (const char* sub : {"/blobs/sha256", "/uploads"}) {
    QUANTD_RETURN_IF_ERROR(MakeDirs(root + sub));
  }
  std::unique_ptr<BlobStore> store(new BlobStore(root, std::move(remote)));
  QUANTD_RETURN_IF_ERROR(store->LoadUploads());
  return store;
}

absl::Status BlobStore::LoadUploads() {
  const std::string dir = root_ + "/uploads";
  ForEachFile(dir, [&](const std::string& name, const struct stat&) {
    if (!absl::EndsWith(name, ".meta")) return;
    const std::string base = dir + "/" + name.substr(0, name.size() - 5);
    struct stat part;
    absl::StatusOr<UploadMeta> m = ReadMeta(base + ".meta");
    if (!m.ok() || stat((base + ".part").c_str(), &part) != 0) return;
    auto u = std::make_shared<Upload>(m->owner, base, m->size, m->sha256);
    {
      absl::MutexLock lock(&u->mu);
      u->settled = true;
      u->committed = part.st_size;
      u->received = part.st_size;
      u->last_active = absl::FromTimeT(part.st_mtime);
    }
    absl::MutexLock lock(&mutex_);
    uploads_[base] = std::move(u);
  });
  return absl::OkStatus();
}

std::string BlobStore::UploadBase(const UploadKey& key) const {
  // A digest of (owner, id): any client string maps to a fixed-form name,
  // and owners cannot collide with or guess each other's uploads.
  const std::string h =
      Sha256Hex(absl::StrCat(key.owner.size(), ":", key.owner, key.upload_id));
  return absl::StrCat(root_, "/uploads/", h.substr(0, 40));
}

std::string BlobStore::BlobPath(const std::string& sha256) const {
  return absl::StrCat(root_, "/blobs/sha256/", sha256.substr(0, 2), "/",
                      sha256);
}

BlobStore::UploadPtr BlobStore::Find(const UploadKey& key) {
  const std::string base = UploadBase(key);
  absl::MutexLock lock(&mutex_);
  auto it = uploads_.find(base);
  return it == uploads_.end() ? nullptr : it->second;
}

absl::StatusOr<BlobStore::UploadPtr> BlobStore::FindOrReserve(
    const UploadKey& key, int64_t size, const std::string& sha256,
    const UploadQuota& quota, bool* created) {
  const std::string base = UploadBase(key);
  absl::MutexLock lock(&mutex_);
  if (auto it = uploads_.find(base); it != uploads_.end()) {
    *created = false;
    return it->second;
  }
  if (quota.release_generation >= 0 && quota.release_generation != releases_) {
    return absl::AbortedError("a reservation ended meanwhile; count again");
  }
  const int64_t reserved = ReservedLocked(key.owner);
  if (quota.used + reserved + size > quota.limit) {
    return absl::ResourceExhaustedError(absl::StrCat(
        "this upload of ", size, " bytes would take your storage to ",
        quota.used + reserved + size, " bytes (", quota.used, " stored, ",
        reserved, " reserved by uploads in progress); the limit is ",
        quota.limit,
        ": delete jobs or finish uploads in progress (abandoned uploads "
        "expire), then retry"));
  }
  auto u = std::make_shared<Upload>(key.owner, base, size, sha256);
  uploads_[base] = u;
  *created = true;
  return u;
}

void BlobStore::Forget(const Upload& u, bool keep_reservation) {
  absl::MutexLock lock(&mutex_);
  auto it = uploads_.find(u.base);
  if (it != uploads_.end() && it->second.get() == &u) uploads_.erase(it);
  if (keep_reservation) committed_[u.base] = Committed{u.owner, u.size};
}

absl::Status BlobStore::BeginUpload(const UploadKey& key, int64_t size,
                                    const std::string& sha256, int64_t max_size,
                                    const UploadQuota& quota) {
  if (!IsSha256Hex(sha256)) {
    return absl::InvalidArgumentError(
        "sha256 must be 64 lowercase hex characters");
  }
  if (size < 0) return absl::InvalidArgumentError("size must be >= 0");
  if (size > max_size) {
    return absl::ResourceExhaustedError(absl::StrCat(
        "the upload declares ", size, " bytes; the limit is ", max_size));
  }
  for (;;) {
    bool created = false;
    QUANTD_ASSIGN_OR_RETURN(UploadPtr u,
                            FindOrReserve(key, size, sha256, quota, &created));
    absl::MutexLock lock(&u->mu);
    if (created) {
      const absl::Status s = CreateFiles(*u);
      u->settled = true;
      if (!s.ok()) {
        u->gone = true;
        RemoveFiles(*u);
        Forget(*u, /*keep_reservation=*/false);
        return s;
      }
      u->hash = std::make_unique<Sha256>();
      u->last_active = absl::Now();
      return absl::OkStatus();
    }
    u->mu.Await(absl::Condition(&u->settled));
    if (!u->gone && FileSizeOrMinus1(u->base + ".meta") < 0) {
      // Finished or removed behind this store's back (another process).
      u->gone = true;
      Forget(*u, /*keep_reservation=*/false);
    }
    if (u->gone) continue;
    if (u->size != size || u->sha256 != sha256) {
      return absl::FailedPreconditionError(absl::StrCat(
          "upload id '", key.upload_id, "' is in progress for ", u->size,
          " bytes with sha256 ", u->sha256,
          "; resume it with the same size and digest, or use a new id"));
    }
    u->last_active = absl::Now();
    // After a restart: the .part is hashed once, here.
    return EnsureHashed(*u);
  }
}

absl::StatusOr<int64_t> BlobStore::CommittedSize(const UploadKey& key) {
  QUANTD_ASSIGN_OR_RETURN(UploadProgress p, UploadStatus(key));
  return p.committed;
}

absl::StatusOr<UploadProgress> BlobStore::UploadStatus(const UploadKey& key) {
  UploadPtr u = Find(key);
  if (u == nullptr) {
    return absl::NotFoundError("no upload in progress under this id");
  }
  absl::MutexLock lock(&u->mu);
  u->mu.Await(absl::Condition(&u->settled));
  if (u->gone)
    return absl::NotFoundError("no upload in progress under this id");
  return UploadProgress{u->committed, u->size, u->sha256};
}

absl::Status BlobStore::Append(const UploadKey& key, int64_t offset,
                               absl::string_view data) {
  UploadPtr u = Find(key);
  if (u == nullptr) {
    return absl::NotFoundError("no upload in progress under this id");
  }
  absl::MutexLock lock(&u->mu);
  u->mu.Await(absl::Condition(&u->settled));
  if (u->gone)
    return absl::NotFoundError("no upload in progress under this id");
  if (offset != u->committed) {
    return absl::FailedPreconditionError(absl::StrCat(
        "the upload has ", u->committed, " bytes; send from offset ",
        u->committed, ", not ", offset));
  }
  if (u->committed + static_cast<int64_t>(data.size()) > u->size) {
    return absl::InvalidArgumentError(absl::StrCat(
        "the upload declared ", u->size, " bytes; this chunk goes past that"));
  }
  QUANTD_RETURN_IF_ERROR(EnsureHashed(*u));
  QUANTD_RETURN_IF_ERROR(AppendToFile(u->base + ".part", u->committed, data));
  u->hash->Update(data);
  u->committed += static_cast<int64_t>(data.size());
  u->received = u->committed;
  u->last_active = absl::Now();
  return absl::OkStatus();
}

absl::StatusOr<std::string> BlobStore::MoveIntoPlace(
    const std::string& temp, const std::string& sha256) {
  const std::string path = BlobPath(sha256);
  const std::string dir = path.substr(0, path.rfind('/'));
  QUANTD_RETURN_IF_ERROR(MakeDirs(dir));
  QUANTD_RETURN_IF_ERROR(FsyncPath(temp, O_RDONLY));
  // With object storage, a blob counts as stored once the bucket has it:
  // until then a Commit fails (Unavailable) and can be retried.
  if (remote_ != nullptr) QUANTD_RETURN_IF_ERROR(remote_->Upload(sha256, temp));
  {
    absl::MutexLock lock(&mutex_);
    // Same bytes already stored: uploading twice is free.
    if (FileSizeOrMinus1(path) >= 0) {
      std::remove(temp.c_str());
      return sha256;
    }
    if (std::rename(temp.c_str(), path.c_str()) != 0) {
      return Errno("cannot move blob into", path);
    }
  }
  QUANTD_RETURN_IF_ERROR(FsyncPath(dir, O_RDONLY | O_DIRECTORY));
  return sha256;
}

absl::StatusOr<std::string> BlobStore::Commit(const UploadKey& key) {
  UploadPtr u = Find(key);
  if (u == nullptr) {
    return absl::NotFoundError("no upload in progress under this id");
  }
  absl::MutexLock lock(&u->mu);
  u->mu.Await(absl::Condition(&u->settled));
  if (u->gone)
    return absl::NotFoundError("no upload in progress under this id");
  if (u->committed != u->size) {
    return absl::FailedPreconditionError(
        absl::StrCat("the upload has ", u->committed, " of ", u->size,
                     " declared bytes; send the rest before finishing"));
  }
  QUANTD_RETURN_IF_ERROR(EnsureHashed(*u));
  const std::string digest = u->hash->HexDigest();
  if (digest != u->sha256) {
    u->gone = true;
    RemoveFiles(*u);
    Forget(*u, /*keep_reservation=*/false);
    return absl::InvalidArgumentError(absl::StrCat(
        "the uploaded bytes have sha256 ", digest, ", not the declared ",
        u->sha256, "; the upload was discarded, send it again"));
  }
  QUANTD_ASSIGN_OR_RETURN(std::string stored,
                          MoveIntoPlace(u->base + ".part", digest));
  std::remove((u->base + ".meta").c_str());
  u->gone = true;
  Forget(*u, /*keep_reservation=*/true);
  return stored;
}

void BlobStore::ReleaseUpload(const UploadKey& key) {
  const std::string base = UploadBase(key);
  absl::MutexLock lock(&mutex_);
  if (committed_.erase(base) > 0) ++releases_;
}

int64_t BlobStore::ReleaseGeneration() {
  absl::MutexLock lock(&mutex_);
  return releases_;
}

absl::Status BlobStore::AbortUpload(const UploadKey& key) {
  UploadPtr u = Find(key);
  if (u == nullptr) return absl::OkStatus();
  absl::MutexLock lock(&u->mu);
  u->mu.Await(absl::Condition(&u->settled));
  if (u->gone) return absl::OkStatus();
  u->gone = true;
  RemoveFiles(*u);
  Forget(*u, /*keep_reservation=*/false);
  return absl::OkStatus();
}

int64_t BlobStore::ReservedBytes(const std::string& owner) {
  absl::MutexLock lock(&mutex_);
  return ReservedLocked(owner);
}

int64_t BlobStore::ReservedLocked(const std::string& owner) {
  int64_t n = 0;
  for (const auto& [b, u] : uploads_) n += u->owner == owner ? u->size : 0;
  for (const auto& [b, c] : committed_) n += c.owner == owner ? c.size : 0;
  return n;
}

UploadUsage BlobStore::Uploads() {
  absl::MutexLock lock(&mutex_);
  UploadUsage usage;
  for (const auto& [b, u] : uploads_) {
    ++usage.uploads;
    usage.declared_bytes += u->size;
    usage.received_bytes += u->received;
  }
  return usage;
}

CleanupCount BlobStore::ExpireUploads(absl::Time cutoff) {
  std::vector<UploadPtr> all;
  {
    absl::MutexLock lock(&mutex_);
    for (const auto& [b, u] : uploads_) all.push_back(u);
  }
  CleanupCount removed;
  for (const UploadPtr& u : all) {
    if (!u->mu.TryLock()) continue;  // busy: not stale
    if (u->settled && !u->gone && u->last_active < cutoff) {
      u->gone = true;
      RemoveFiles(*u);
      Forget(*u, /*keep_reservation=*/false);
      ++removed.files;
      removed.bytes += u->committed;
    }
    u->mu.Unlock();
  }
  return removed;
}

CleanupCount BlobStore::RemoveOrphanFiles(absl::Time cutoff) {
  std::set<std::string> live;
  {
    absl::MutexLock lock(&mutex_);
    for (const auto& [b, u] : uploads_) live.insert(b);
  }
  const std::string dir = root_ + "/uploads";
  CleanupCount removed;
  ForEachFile(dir, [&](const std::string& name, const struct stat& st) {
    const std::string base = dir + "/" + name.substr(0, name.find('.'));
    const bool upload_file =
        absl::EndsWith(name, ".part") || absl::EndsWith(name, ".meta");
    if (upload_file && live.count(base) > 0) return;
    if (absl::FromTimeT(st.st_mtime) >= cutoff) return;
    if (std::remove((dir + "/" + name).c_str()) == 0) {
      ++removed.files;
      removed.bytes += st.st_size;
    }
  });
  return removed;
}

absl::StatusOr<int64_t> BlobStore::CommittedBytes() const {
  const std::string top = root_ + "/blobs/sha256";
  int64_t total = 0;
  const bool listed = ForEachFileInSubdirs(
      top,
      [&](const std::string&, const struct stat& st) { total += st.st_size; });
  if (!listed) return Errno("cannot list", top);
  return total;
}

absl::StatusOr<std::string> BlobStore::Put(absl::string_view bytes) {
  const std::string digest = Sha256Hex(bytes);
  std::string tmpl = absl::StrCat(root_, "/uploads/put-XXXXXX");
  const int fd = mkstemp(tmpl.data());
  if (fd < 0) return Errno("cannot create a temporary file in", root_);
  size_t written = 0;
  while (written < bytes.size()) {
    const ssize_t n = write(fd, bytes.data() + written, bytes.size() - written);
    if (n <= 0) {
      const absl::Status s = Errno("cannot write", tmpl);
      close(fd);
      std::remove(tmpl.c_str());
      return s;
    }
    written += n;
  }
  close(fd);
  absl::StatusOr<std::string> r = MoveIntoPlace(tmpl, digest);
  if (!r.ok()) std::remove(tmpl.c_str());
  return r;
}

absl::StatusOr<std::string> BlobStore::Adopt(const std::string& temp,
                                             const std::string& sha256) {
  absl::StatusOr<std::string> r =
      IsSha256Hex(sha256) ? MoveIntoPlace(temp, sha256)
                          : absl::InvalidArgumentError("bad digest");
  if (!r.ok()) std::remove(temp.c_str());
  return r;
}

bool BlobStore::Contains(const std::string& sha256) const {
  if (!IsSha256Hex(sha256)) return false;
  if (FileSizeOrMinus1(BlobPath(sha256)) >= 0) return true;
  return remote_ != nullptr && remote_->Size(sha256).ok();
}

absl::StatusOr<int64_t> BlobStore::Size(const std::string& sha256) const {
  if (IsSha256Hex(sha256) && remote_ != nullptr) {
    const int64_t local = FileSizeOrMinus1(BlobPath(sha256));
    if (local >= 0) return local;
    return remote_->Size(sha256);
  }
  QUANTD_ASSIGN_OR_RETURN(std::string path, PathOf(sha256));
  return FileSizeOrMinus1(path);
}

absl::StatusOr<std::string> BlobStore::PathOf(const std::string& sha256) const {
  if (!IsSha256Hex(sha256)) {
    return absl::InvalidArgumentError(
        "a blob digest is 64 lowercase hex characters");
  }
  const std::string path = BlobPath(sha256);
  if (FileSizeOrMinus1(path) < 0 && remote_ != nullptr) {
    // Not cached here yet: another replica stored it.
    const absl::Status fetched =
        remote_->Fetch(sha256, path, root_ + "/uploads");
    if (!absl::IsNotFound(fetched)) {
      QUANTD_RETURN_IF_ERROR(fetched);
      return path;
    }
  } else {
    TouchCached(path);
  }
  if (FileSizeOrMinus1(path) < 0) {
    return absl::NotFoundError(
        absl::StrCat("no blob with sha256 ", sha256, "; upload it first"));
  }
  return path;
}

absl::StatusOr<std::string> BlobStore::Read(const std::string& sha256,
                                            int64_t offset, int64_t max) const {
  QUANTD_ASSIGN_OR_RETURN(std::string path, PathOf(sha256));
  const int64_t size = FileSizeOrMinus1(path);
  if (offset < 0 || offset > size || max < 0) {
    return absl::OutOfRangeError(absl::StrCat(
        "offset ", offset, " is outside the blob's ", size, " bytes"));
  }
  std::string out(static_cast<size_t>(std::min(max, size - offset)), '\0');
  const int fd = open(path.c_str(), O_RDONLY);
  if (fd < 0) return Errno("cannot open", path);
  size_t got = 0;
  while (got < out.size()) {
    const ssize_t n = pread(fd, out.data() + got, out.size() - got,
                            offset + static_cast<int64_t>(got));
    if (n <= 0) break;
    got += n;
  }
  close(fd);
  out.resize(got);
  return out;
}

absl::Status BlobStore::Remove(const std::string& sha256) {
  if (remote_ != nullptr && IsSha256Hex(sha256)) {
    QUANTD_RETURN_IF_ERROR(remote_->Remove(sha256));
    const std::string path = BlobPath(sha256);
    absl::MutexLock lock(&mutex_);
    if (std::remove(path.c_str()) != 0 && errno != ENOENT) {
      return Errno("cannot remove", path);
    }
    return absl::OkStatus();
  }
  QUANTD_ASSIGN_OR_RETURN(std::string path, PathOf(sha256));
  absl::MutexLock lock(&mutex_);
  if (std::remove(path.c_str()) != 0) return Errno("cannot remove", path);
  return absl::OkStatus();
}

}  // namespace quantd
