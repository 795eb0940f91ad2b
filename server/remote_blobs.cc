#include "server/remote_blobs.h"

#include <fcntl.h>
#include <stdlib.h>
#include <unistd.h>

#include <cstdio>
#include <limits>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "server/file_util.h"
#include "util/sha256.h"
#include "util/status_macros.h"

namespace quantd {

std::string RemoteBlobs::Key(const std::string& sha256) {
  return absl::StrCat("blobs/sha256/", sha256.substr(0, 2), "/", sha256);
}

absl::Status RemoteBlobs::Upload(const std::string& sha256,
                                 const std::string& file) {
  const int64_t size = FileSizeOrMinus1(file);
  if (size < 0) return Errno("cannot read", file);
  absl::StatusOr<int64_t> there = s3_->Size(Key(sha256));
  if (there.ok() && *there == size) return absl::OkStatus();
  if (!there.ok() && !absl::IsNotFound(there.status())) return there.status();
  return s3_->PutFile(Key(sha256), file, sha256, size);
}

absl::StatusOr<DownloadedFile> DownloadToTemp(S3Client& s3,
                                              const std::string& key,
                                              const std::string& temp_dir,
                                              int64_t max_bytes) {
  QUANTD_ASSIGN_OR_RETURN(const int64_t size, s3.Size(key));
  const auto too_big = [&](int64_t n) {
    return absl::ResourceExhaustedError(
        absl::StrCat("s3://", s3.config().bucket, "/", s3.config().prefix, key,
                     " has ", n, " bytes; the limit is ", max_bytes));
  };
  if (size > max_bytes) return too_big(size);
  DownloadedFile out;
  out.path = absl::StrCat(temp_dir, "/fetch-XXXXXX");
  const int fd = mkstemp(out.path.data());
  if (fd < 0) return Errno("cannot create a temporary file in", temp_dir);
  Sha256 hash;
  absl::Status status = s3.Get(key, [&](absl::string_view bytes) {
    // The object may have grown since HEAD.
    if (out.size + static_cast<int64_t>(bytes.size()) > max_bytes) {
      return too_big(out.size + bytes.size());
    }
    for (size_t done = 0; done < bytes.size();) {
      const ssize_t n = write(fd, bytes.data() + done, bytes.size() - done);
      if (n <= 0) return Errno("cannot write", out.path);
      done += n;
    }
    hash.Update(bytes);
    out.size += bytes.size();
    return absl::OkStatus();
  });
  if (status.ok() && fsync(fd) != 0) status = Errno("cannot fsync", out.path);
  close(fd);
  if (!status.ok()) {
    std::remove(out.path.c_str());
    return status;
  }
  out.sha256 = hash.HexDigest();
  return out;
}

absl::Status RemoteBlobs::Download(
    const std::string& key, const std::string& path,
    const std::string& temp_dir,
    const std::function<absl::Status(const std::string&)>& verify) {
  QUANTD_ASSIGN_OR_RETURN(
      const DownloadedFile file,
      DownloadToTemp(*s3_, key, temp_dir, std::numeric_limits<int64_t>::max()));
  absl::Status status = verify ? verify(file.sha256) : absl::OkStatus();
  const std::string dir = path.substr(0, path.rfind('/'));
  if (status.ok()) status = MakeDirs(dir);
  if (status.ok() && std::rename(file.path.c_str(), path.c_str()) != 0) {
    status = Errno("cannot move the download into", path);
  }
  if (!status.ok()) {
    std::remove(file.path.c_str());
    return status;
  }
  return FsyncPath(dir, O_RDONLY | O_DIRECTORY);
}

absl::Status RemoteBlobs::Fetch(const std::string& sha256,
                                const std::string& path,
                                const std::string& temp_dir) {
  return Download(Key(sha256), path, temp_dir, [&](const std::string& got) {
    if (got == sha256) return absl::OkStatus();
    return absl::DataLossError(absl::StrCat(
        "the object for blob ", sha256, " in ", Describe(),
        " holds other bytes (sha256 ", got,
        "); it was changed outside quantd: upload the original again"));
  });
}

absl::StatusOr<std::string> RemoteBlobs::CheckpointKey(
    const std::string& job_id) {
  const bool safe = !job_id.empty() && job_id.size() <= 128 &&
                    job_id.find_first_not_of(
                        "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRS"
                        "TUVWXYZ0123456789-_") == std::string::npos;
  if (!safe) return absl::InvalidArgumentError("not a job id: " + job_id);
  return absl::StrCat("checkpoints/", job_id, ".npz");
}

absl::Status RemoteBlobs::PutCheckpoint(const std::string& job_id,
                                        const std::string& file) {
  QUANTD_ASSIGN_OR_RETURN(const std::string key, CheckpointKey(job_id));
  QUANTD_ASSIGN_OR_RETURN(const std::string sha256, Sha256File(file));
  return s3_->PutFile(key, file, sha256, FileSizeOrMinus1(file));
}

absl::Status RemoteBlobs::FetchCheckpoint(const std::string& job_id,
                                          const std::string& path,
                                          const std::string& temp_dir) {
  QUANTD_ASSIGN_OR_RETURN(const std::string key, CheckpointKey(job_id));
  return Download(key, path, temp_dir, nullptr);
}

absl::Status RemoteBlobs::RemoveCheckpoint(const std::string& job_id) {
  QUANTD_ASSIGN_OR_RETURN(const std::string key, CheckpointKey(job_id));
  return s3_->Delete(key);
}

absl::Status RemoteBlobs::CheckAccess() {
  const absl::Status s =
      s3_->Get(Key(std::string(64, '0')),
               [](absl::string_view) { return absl::OkStatus(); });
  if (s.ok()) return s;
  if (absl::IsNotFound(s) && !absl::StrContains(s.message(), "NoSuchBucket")) {
    return absl::OkStatus();  // the bucket answers: no such key
  }
  return absl::Status(s.code(), absl::StrCat(Describe(), ": ", s.message()));
}

absl::StatusOr<int64_t> RemoteBlobs::Size(const std::string& sha256) {
  return s3_->Size(Key(sha256));
}

absl::Status RemoteBlobs::Remove(const std::string& sha256) {
  return s3_->Delete(Key(sha256));
}

}  // namespace quantd
