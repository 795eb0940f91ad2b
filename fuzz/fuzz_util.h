// What the fuzz targets share: a per-process scratch folder and writing one
// input to a file there (for APIs that only read files).
#ifndef QUANTD_FUZZ_FUZZ_UTIL_H_
#define QUANTD_FUZZ_FUZZ_UTIL_H_

#include <cstddef>
#include <cstdint>
#include <string>

namespace quantd {
namespace fuzz {

// Sends logs to stderr, errors only: millions of rejected inputs must not
// become millions of warning lines (a LOG(FATAL) still aborts and counts as
// a crash).
void QuietLogging(const char* argv0);

// A folder under $TMPDIR (or /tmp) made once per process and removed at
// exit, so parallel fuzzer jobs never share files.
const std::string& ScratchDir();

// Writes `size` bytes to `path`, replacing it. Aborts on I/O failure: a
// fuzz run that cannot write its input would test nothing.
void WriteFileOrDie(const std::string& path, const uint8_t* data, size_t size);

}  // namespace fuzz
}  // namespace quantd

#endif  // QUANTD_FUZZ_FUZZ_UTIL_H_
