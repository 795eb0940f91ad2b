// SHA-256 of files and byte strings (OpenSSL), hex encoded. Files are read
// in chunks, so any size hashes in constant memory.
//
//   absl::StatusOr<std::string> d = Sha256File("model.onnx");  // 64 hex chars
#ifndef QUANTD_UTIL_SHA256_H_
#define QUANTD_UTIL_SHA256_H_

#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace quantd {

std::string Sha256Hex(absl::string_view bytes);
absl::StatusOr<std::string> Sha256File(const std::string& path);

}  // namespace quantd

#endif  // QUANTD_UTIL_SHA256_H_
