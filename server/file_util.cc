#include "server/file_util.h"

#include <dirent.h>
#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "absl/strings/str_cat.h"

namespace quantd {

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

void ForEachFile(const std::string& dir,
                 const std::function<void(const std::string& name,
                                          const struct stat& st)>& f) {
  DIR* d = opendir(dir.c_str());
  if (d == nullptr) return;
  while (dirent* e = readdir(d)) {
    struct stat st;
    const std::string name = e->d_name;
    if (name == "." || name == "..") continue;
    if (stat((dir + "/" + name).c_str(), &st) == 0 && S_ISREG(st.st_mode)) {
      f(name, st);
    }
  }
  closedir(d);
}

bool ForEachFileInSubdirs(const std::string& dir,
                          const std::function<void(const std::string& path,
                                                   const struct stat& st)>& f) {
  DIR* d = opendir(dir.c_str());
  if (d == nullptr) return false;
  while (dirent* e = readdir(d)) {
    const std::string name = e->d_name;
    if (name == "." || name == "..") continue;
    const std::string sub = dir + "/" + name;
    ForEachFile(sub, [&](const std::string& file, const struct stat& st) {
      f(sub + "/" + file, st);
    });
  }
  closedir(d);
  return true;
}

}  // namespace quantd
