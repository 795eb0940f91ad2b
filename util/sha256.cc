#include "util/sha256.h"

#include <openssl/evp.h>

#include <algorithm>
#include <cstdio>
#include <memory>

#include "absl/status/status.h"
#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"

namespace quantd {
namespace {

struct MdCtxDeleter {
  void operator()(EVP_MD_CTX* c) const { EVP_MD_CTX_free(c); }
};
using MdCtx = std::unique_ptr<EVP_MD_CTX, MdCtxDeleter>;

MdCtx NewSha256Ctx() {
  MdCtx ctx(EVP_MD_CTX_new());
  EVP_DigestInit_ex(ctx.get(), EVP_sha256(), nullptr);
  return ctx;
}

std::string Finish(EVP_MD_CTX* ctx) {
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  EVP_DigestFinal_ex(ctx, digest, &len);
  return absl::BytesToHexString(
      absl::string_view(reinterpret_cast<const char*>(digest), len));
}

using File = std::unique_ptr<FILE, int (*)(FILE*)>;

// Feeds up to `length` bytes of `f` (all if < 0) to `ctx`; returns the count.
absl::StatusOr<int64_t> HashStream(FILE* f, int64_t length,
                                   const std::string& path, EVP_MD_CTX* ctx) {
  std::string buf(1 << 20, '\0');
  int64_t total = 0;
  while (length < 0 || total < length) {
    size_t want = buf.size();
    if (length >= 0) {
      want = static_cast<size_t>(
          std::min<int64_t>(static_cast<int64_t>(want), length - total));
    }
    const size_t n = std::fread(buf.data(), 1, want, f);
    if (n == 0) break;
    EVP_DigestUpdate(ctx, buf.data(), n);
    total += static_cast<int64_t>(n);
  }
  if (std::ferror(f)) {
    return absl::DataLossError(absl::StrCat("error reading '", path, "'"));
  }
  return total;
}

}  // namespace

std::string Sha256Hex(absl::string_view bytes) {
  MdCtx ctx = NewSha256Ctx();
  EVP_DigestUpdate(ctx.get(), bytes.data(), bytes.size());
  return Finish(ctx.get());
}

absl::StatusOr<std::string> Sha256File(const std::string& path) {
  File f(std::fopen(path.c_str(), "rb"), &std::fclose);
  if (f == nullptr) {
    return absl::NotFoundError(absl::StrCat("cannot open '", path, "'"));
  }
  MdCtx ctx = NewSha256Ctx();
  absl::StatusOr<int64_t> n = HashStream(f.get(), -1, path, ctx.get());
  if (!n.ok()) return n.status();
  return Finish(ctx.get());
}

struct Sha256::Ctx {
  MdCtx md = NewSha256Ctx();
};

Sha256::Sha256() : ctx_(std::make_unique<Ctx>()) {}
Sha256::~Sha256() = default;
Sha256::Sha256(Sha256&& other) noexcept = default;
Sha256& Sha256::operator=(Sha256&& other) noexcept = default;

void Sha256::Update(absl::string_view bytes) {
  EVP_DigestUpdate(ctx_->md.get(), bytes.data(), bytes.size());
  bytes_ += static_cast<int64_t>(bytes.size());
}

absl::Status Sha256::UpdateFromFile(const std::string& path, int64_t length) {
  File f(std::fopen(path.c_str(), "rb"), &std::fclose);
  if (f == nullptr) {
    return absl::NotFoundError(absl::StrCat("cannot open '", path, "'"));
  }
  absl::StatusOr<int64_t> n = HashStream(f.get(), length, path, ctx_->md.get());
  if (!n.ok()) return n.status();
  bytes_ += *n;
  if (length >= 0 && *n != length) {
    return absl::DataLossError(
        absl::StrCat("'", path, "' has ", *n, " bytes, fewer than ", length));
  }
  return absl::OkStatus();
}

std::string Sha256::HexDigest() const {
  MdCtx copy(EVP_MD_CTX_new());
  EVP_MD_CTX_copy_ex(copy.get(), ctx_->md.get());
  return Finish(copy.get());
}

}  // namespace quantd
