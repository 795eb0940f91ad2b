#include "server/blob_store.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fstream>

#include "absl/strings/str_cat.h"
#include "util/logging.h"
#include "util/sha256.h"
#include "util/status_macros.h"

namespace quantd {
namespace {

absl::Status Errno(absl::string_view what, const std::string& path) {
  return absl::InternalError(
      absl::StrCat(what, " '", path, "': ", std::strerror(errno)));
}

absl::Status MakeDirs(const std::string& dir) {
  for (size_t pos = dir.find('/', 1);; pos = dir.find('/', pos + 1)) {
    const std::string prefix = dir.substr(0, pos);
    if (mkdir(prefix.c_str(), 0750) != 0 && errno != EEXIST) {
      return Errno("cannot create folder", prefix);
    }
    if (pos == std::string::npos) return absl::OkStatus();
  }
}

absl::Status FsyncPath(const std::string& path, int flags) {
  const int fd = open(path.c_str(), flags);
  if (fd < 0) return Errno("cannot open", path);
  const bool ok = fsync(fd) == 0;
  close(fd);
  return ok ? absl::OkStatus() : Errno("cannot fsync", path);
}

int64_t FileSizeOrMinus1(const std::string& path) {
  struct stat st;
  return stat(path.c_str(), &st) == 0 ? st.st_size : -1;
}

struct UploadMeta {
  int64_t size = 0;
  std::string sha256;
};

absl::StatusOr<UploadMeta> ReadMeta(const std::string& path) {
  std::ifstream f(path);
  UploadMeta m;
  if (!(f >> m.size >> m.sha256) || !IsSha256Hex(m.sha256)) {
    return absl::NotFoundError("no upload in progress under this id");
  }
  return m;
}

}  // namespace

absl::StatusOr<std::unique_ptr<BlobStore>> BlobStore::Open(
    const std::string& root) {
  if (root.empty()) {
    return absl::InvalidArgumentError("the blob store folder is empty");
  }
  for (const char* sub : {"/blobs/sha256", "/uploads"}) {
    QUANTD_RETURN_IF_ERROR(MakeDirs(root + sub));
  }
  return std::unique_ptr<BlobStore>(new BlobStore(root));
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

absl::Status BlobStore::BeginUpload(const UploadKey& key, int64_t size,
                                    const std::string& sha256,
                                    int64_t max_size) {
  if (!IsSha256Hex(sha256)) {
    return absl::InvalidArgumentError(
        "sha256 must be 64 lowercase hex characters");
  }
  if (size < 0) return absl::InvalidArgumentError("size must be >= 0");
  if (size > max_size) {
    return absl::ResourceExhaustedError(absl::StrCat(
        "the upload declares ", size, " bytes; the limit is ", max_size));
  }
  absl::MutexLock lock(&mutex_);
  const std::string base = UploadBase(key);
  absl::StatusOr<UploadMeta> existing = ReadMeta(base + ".meta");
  if (existing.ok()) {
    if (existing->size != size || existing->sha256 != sha256) {
      return absl::FailedPreconditionError(absl::StrCat(
          "upload id '", key.upload_id, "' is in progress for ", existing->size,
          " bytes with sha256 ", existing->sha256,
          "; resume it with the same size and digest, or use a new id"));
    }
    return absl::OkStatus();
  }
  // The .part first, then the .meta that makes the upload exist.
  const int fd =
      open((base + ".part").c_str(), O_CREAT | O_TRUNC | O_WRONLY, 0640);
  if (fd < 0) return Errno("cannot create", base + ".part");
  close(fd);
  const std::string meta_tmp = base + ".meta.tmp";
  {
    std::ofstream m(meta_tmp, std::ios::trunc);
    m << size << " " << sha256 << "\n";
    if (!m.flush()) return Errno("cannot write", meta_tmp);
  }
  QUANTD_RETURN_IF_ERROR(FsyncPath(meta_tmp, O_RDONLY));
  if (std::rename(meta_tmp.c_str(), (base + ".meta").c_str()) != 0) {
    return Errno("cannot rename", meta_tmp);
  }
  return absl::OkStatus();
}

absl::StatusOr<int64_t> BlobStore::CommittedSize(const UploadKey& key) {
  QUANTD_ASSIGN_OR_RETURN(UploadProgress p, UploadStatus(key));
  return p.committed;
}

absl::StatusOr<UploadProgress> BlobStore::UploadStatus(const UploadKey& key) {
  absl::MutexLock lock(&mutex_);
  const std::string base = UploadBase(key);
  QUANTD_ASSIGN_OR_RETURN(UploadMeta m, ReadMeta(base + ".meta"));
  const int64_t n = FileSizeOrMinus1(base + ".part");
  if (n < 0) return absl::NotFoundError("no upload in progress under this id");
  return UploadProgress{n, m.size, m.sha256};
}

absl::Status BlobStore::Append(const UploadKey& key, int64_t offset,
                               absl::string_view data) {
  absl::MutexLock lock(&mutex_);
  const std::string base = UploadBase(key);
  QUANTD_ASSIGN_OR_RETURN(UploadMeta meta, ReadMeta(base + ".meta"));
  const int64_t committed = FileSizeOrMinus1(base + ".part");
  if (offset != committed) {
    return absl::FailedPreconditionError(
        absl::StrCat("the upload has ", committed, " bytes; send from offset ",
                     committed, ", not ", offset));
  }
  if (committed + static_cast<int64_t>(data.size()) > meta.size) {
    return absl::InvalidArgumentError(
        absl::StrCat("the upload declared ", meta.size,
                     " bytes; this chunk goes past that"));
  }
  const int fd = open((base + ".part").c_str(), O_WRONLY | O_APPEND);
  if (fd < 0) return Errno("cannot open", base + ".part");
  size_t written = 0;
  while (written < data.size()) {
    const ssize_t n = write(fd, data.data() + written, data.size() - written);
    if (n <= 0) {
      const absl::Status s = Errno("cannot write", base + ".part");
      // Drop a partial write so the committed size stays a chunk boundary.
      if (ftruncate(fd, committed) != 0) {
        // The next append starts at the committed size anyway; the stray
        // bytes past it are overwritten or discarded with the upload.
        LOG(ERROR) << "cannot truncate " << base << ".part back to "
                   << committed << " bytes: " << std::strerror(errno);
      }
      close(fd);
      return s;
    }
    written += n;
  }
  close(fd);
  return absl::OkStatus();
}

absl::StatusOr<std::string> BlobStore::MoveIntoPlace(
    const std::string& temp, const std::string& sha256) {
  const std::string path = BlobPath(sha256);
  const std::string dir = path.substr(0, path.rfind('/'));
  QUANTD_RETURN_IF_ERROR(MakeDirs(dir));
  QUANTD_RETURN_IF_ERROR(FsyncPath(temp, O_RDONLY));
  // Same bytes already stored: uploading twice is free.
  if (FileSizeOrMinus1(path) >= 0) {
    std::remove(temp.c_str());
    return sha256;
  }
  if (std::rename(temp.c_str(), path.c_str()) != 0) {
    return Errno("cannot move blob into", path);
  }
  QUANTD_RETURN_IF_ERROR(FsyncPath(dir, O_RDONLY | O_DIRECTORY));
  return sha256;
}

absl::StatusOr<std::string> BlobStore::Commit(const UploadKey& key) {
  absl::MutexLock lock(&mutex_);
  const std::string base = UploadBase(key);
  QUANTD_ASSIGN_OR_RETURN(UploadMeta meta, ReadMeta(base + ".meta"));
  const std::string part = base + ".part";
  const int64_t size = FileSizeOrMinus1(part);
  auto discard = [&] {
    std::remove(part.c_str());
    std::remove((base + ".meta").c_str());
  };
  if (size != meta.size) {
    return absl::FailedPreconditionError(
        absl::StrCat("the upload has ", size, " of ", meta.size,
                     " declared bytes; send the rest before finishing"));
  }
  QUANTD_ASSIGN_OR_RETURN(std::string digest, Sha256File(part));
  if (digest != meta.sha256) {
    discard();
    return absl::InvalidArgumentError(absl::StrCat(
        "the uploaded bytes have sha256 ", digest, ", not the declared ",
        meta.sha256, "; the upload was discarded, send it again"));
  }
  absl::StatusOr<std::string> r = MoveIntoPlace(part, digest);
  if (r.ok()) std::remove((base + ".meta").c_str());
  return r;
}

absl::Status BlobStore::AbortUpload(const UploadKey& key) {
  absl::MutexLock lock(&mutex_);
  const std::string base = UploadBase(key);
  std::remove((base + ".meta").c_str());
  std::remove((base + ".part").c_str());
  return absl::OkStatus();
}

absl::StatusOr<std::string> BlobStore::Put(absl::string_view bytes) {
  const std::string digest = Sha256Hex(bytes);
  absl::MutexLock lock(&mutex_);
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

bool BlobStore::Contains(const std::string& sha256) const {
  return IsSha256Hex(sha256) && FileSizeOrMinus1(BlobPath(sha256)) >= 0;
}

absl::StatusOr<int64_t> BlobStore::Size(const std::string& sha256) const {
  QUANTD_ASSIGN_OR_RETURN(std::string path, PathOf(sha256));
  return FileSizeOrMinus1(path);
}

absl::StatusOr<std::string> BlobStore::PathOf(const std::string& sha256) const {
  if (!IsSha256Hex(sha256)) {
    return absl::InvalidArgumentError(
        "a blob digest is 64 lowercase hex characters");
  }
  const std::string path = BlobPath(sha256);
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
  QUANTD_ASSIGN_OR_RETURN(std::string path, PathOf(sha256));
  absl::MutexLock lock(&mutex_);
  if (std::remove(path.c_str()) != 0) return Errno("cannot remove", path);
  return absl::OkStatus();
}

}  // namespace quantd
