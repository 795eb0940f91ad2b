// SHA-256 of files and byte strings (OpenSSL), hex encoded. Files are read
// in chunks, so any size hashes in constant memory. `Sha256` hashes
// incrementally (bytes as they arrive, e.g. an upload's chunks); its digest
// equals the one-shot Sha256Hex of the concatenated bytes.
//
//   absl::StatusOr<std::string> d = Sha256File("model.onnx");  // 64 hex chars
//   Sha256 h;
//   h.Update("ab");
//   h.Update("c");
//   std::string hex = h.HexDigest();  // == Sha256Hex("abc"); h stays usable
#ifndef QUANTD_UTIL_SHA256_H_
#define QUANTD_UTIL_SHA256_H_

#include <cstdint>
#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace quantd {

std::string Sha256Hex(absl::string_view bytes);
absl::StatusOr<std::string> Sha256File(const std::string& path);

// An incremental SHA-256. Not thread-safe (callers serialize, e.g. one per
// upload under that upload's lock). Movable, not copyable.
class Sha256 {
 public:
  Sha256();
  ~Sha256();
  Sha256(Sha256&& other) noexcept;
  Sha256& operator=(Sha256&& other) noexcept;
  Sha256(const Sha256&) = delete;
  Sha256& operator=(const Sha256&) = delete;

  void Update(absl::string_view bytes);
  // Hashes the first `length` bytes of the file at `path` (all of it if
  // `length` < 0), e.g. to rebuild an upload's state from its partial file.
  // DataLoss if the file is shorter; NotFound if it cannot be opened.
  absl::Status UpdateFromFile(const std::string& path, int64_t length = -1);
  // The digest of everything so far (64 lowercase hex characters). The
  // state is kept: more Update calls may follow.
  std::string HexDigest() const;
  // Bytes hashed so far.
  int64_t bytes() const { return bytes_; }

 private:
  struct Ctx;
  std::unique_ptr<Ctx> ctx_;
  int64_t bytes_ = 0;
};

}  // namespace quantd

#endif  // QUANTD_UTIL_SHA256_H_
