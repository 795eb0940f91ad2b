// Small POSIX file helpers shared by the blob store and the janitor: errors
// as absl::Status naming the path, folder creation, fsync, sizes, listing.
#ifndef QUANTD_SERVER_FILE_UTIL_H_
#define QUANTD_SERVER_FILE_UTIL_H_

#include <sys/stat.h>

#include <cstdint>
#include <functional>
#include <string>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"

namespace quantd {

// Internal error "<what> '<path>': <strerror(errno)>".
absl::Status Errno(absl::string_view what, const std::string& path);
// mkdir -p (mode 0750).
absl::Status MakeDirs(const std::string& dir);
// Opens `path` with `flags` (O_RDONLY, or O_RDONLY | O_DIRECTORY) and fsyncs.
absl::Status FsyncPath(const std::string& path, int flags);
// The file's size, or -1 if it does not exist.
int64_t FileSizeOrMinus1(const std::string& path);
// Calls `f(name, stat)` for each regular file directly in `dir` (none if
// the folder cannot be listed).
void ForEachFile(const std::string& dir,
                 const std::function<void(const std::string& name,
                                          const struct stat& st)>& f);
// The same for each regular file one level down (DIR/SUB/FILE), `path`
// being the whole path; false if `dir` cannot be listed.
bool ForEachFileInSubdirs(const std::string& dir,
                          const std::function<void(const std::string& path,
                                                   const struct stat& st)>& f);

}  // namespace quantd

#endif  // QUANTD_SERVER_FILE_UTIL_H_
