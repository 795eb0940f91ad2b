#include "server/auth.h"

#include <openssl/crypto.h>

#include <fstream>
#include <set>
#include <sstream>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "util/sha256.h"

namespace quantd {
namespace {

constexpr size_t kMinTokenBytes = 16;
constexpr size_t kMaxTokenBytes = 4096;

bool IsTenantName(absl::string_view s) {
  if (s.empty() || s.size() > 128) return false;
  for (char c : s) {
    if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '.' || c == '_' ||
          c == '-')) {
      return false;
    }
  }
  return true;
}

}  // namespace

Authenticator Authenticator::SingleTenant() {
  Authenticator a;
  a.single_tenant_ = true;
  return a;
}

size_t Authenticator::tenant_count() const {
  std::set<std::string> tenants;
  for (const auto& [digest, tenant] : tenant_by_digest_) tenants.insert(tenant);
  return single_tenant_ ? 1 : tenants.size();
}

absl::StatusOr<Authenticator> Authenticator::FromFile(const std::string& path) {
  std::ifstream f(path);
  if (!f) {
    return absl::NotFoundError(
        absl::StrCat("cannot read the tokens file '", path, "'"));
  }
  std::stringstream text;
  text << f.rdbuf();
  absl::StatusOr<Authenticator> a = FromText(text.str());
  if (!a.ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat("tokens file '", path, "': ", a.status().message()));
  }
  return a;
}

absl::StatusOr<Authenticator> Authenticator::FromText(absl::string_view text) {
  Authenticator a;
  int line_number = 0;
  for (absl::string_view line : absl::StrSplit(text, '\n')) {
    ++line_number;
    line = absl::StripAsciiWhitespace(line);
    if (line.empty() || line[0] == '#') continue;
    std::vector<absl::string_view> fields =
        absl::StrSplit(line, absl::ByAnyChar(" \t"), absl::SkipEmpty());
    if (fields.size() != 2 || !IsTenantName(fields[0]) ||
        fields[1].size() < kMinTokenBytes ||
        fields[1].size() > kMaxTokenBytes) {
      return absl::InvalidArgumentError(absl::StrCat(
          "line ", line_number,
          ": expected '<tenant> <token>' with a tenant of [A-Za-z0-9._-] and "
          "a token of at least 16 characters"));
    }
    const std::string digest = Sha256Hex(fields[1]);
    if (a.tenant_by_digest_.contains(digest)) {
      return absl::InvalidArgumentError(
          absl::StrCat("line ", line_number, ": a token is listed twice"));
    }
    a.tenant_by_digest_[digest] = std::string(fields[0]);
  }
  if (a.tenant_by_digest_.empty()) {
    return absl::InvalidArgumentError("no tokens in the file");
  }
  return a;
}

absl::StatusOr<std::string> Authenticator::Authenticate(
    absl::string_view header) const {
  if (single_tenant_) return std::string("default");
  absl::string_view token = header;
  if (!absl::ConsumePrefix(&token, "Bearer ") || token.empty() ||
      token.size() > kMaxTokenBytes) {
    return absl::UnauthenticatedError(
        "send 'authorization: Bearer <token>' with a token from the server's "
        "tokens file");
  }
  const std::string digest = Sha256Hex(token);
  // Digests of equal length compared in constant time: a timing side
  // channel reveals nothing about valid tokens.
  const std::string* tenant = nullptr;
  for (const auto& [d, t] : tenant_by_digest_) {
    if (CRYPTO_memcmp(d.data(), digest.data(), d.size()) == 0) tenant = &t;
  }
  if (tenant == nullptr) {
    return absl::UnauthenticatedError("the bearer token is not known");
  }
  return *tenant;
}

}  // namespace quantd
