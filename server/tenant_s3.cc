#include "server/tenant_s3.h"

#include <fstream>
#include <sstream>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "server/resource_names.h"
#include "util/status_macros.h"

namespace quantd {
namespace {

constexpr size_t kMaxKeyBytes = 512;

absl::StatusOr<S3Location> ParseUri(absl::string_view uri, bool object) {
  if (uri.size() > kMaxKeyBytes + 70) {
    return absl::InvalidArgumentError("the s3:// URI is too long");
  }
  QUANTD_ASSIGN_OR_RETURN(S3Config c, S3ConfigFromUrl(uri));
  S3Location loc{c.bucket, c.prefix};
  while (!loc.key.empty() && loc.key.back() == '/') loc.key.pop_back();
  if (object && (loc.key.empty() || absl::EndsWith(uri, "/"))) {
    return absl::InvalidArgumentError(
        absl::StrCat("'", uri, "' names no object: give s3://BUCKET/KEY"));
  }
  return loc;
}

}  // namespace

absl::StatusOr<S3Location> ParseS3ObjectUri(absl::string_view uri) {
  return ParseUri(uri, /*object=*/true);
}

absl::StatusOr<S3Location> ParseS3PrefixUri(absl::string_view uri) {
  return ParseUri(uri, /*object=*/false);
}

absl::StatusOr<TenantS3> TenantS3::FromText(absl::string_view text,
                                            const S3Config& defaults,
                                            bool server_fallback) {
  TenantS3 t;
  int line_no = 0;
  for (absl::string_view line : absl::StrSplit(text, '\n')) {
    ++line_no;
    line = absl::StripAsciiWhitespace(line);
    if (line.empty() || line[0] == '#') continue;
    const std::vector<std::string> f =
        absl::StrSplit(line, ' ', absl::SkipEmpty());
    if (f.size() < 3 || f.size() > 5 || !IsIdentifier(f[0], 128)) {
      return absl::InvalidArgumentError(absl::StrCat(
          "line ", line_no,
          ": expected \"<tenant> <access-key-id> <secret-access-key> "
          "[<endpoint> [<region>]]\""));
    }
    if (t.by_tenant_.count(f[0]) > 0) {
      return absl::InvalidArgumentError(
          absl::StrCat("line ", line_no, ": tenant ", f[0], " appears twice"));
    }
    S3Config c = defaults;
    c.access_key_id = f[1];
    c.secret_access_key = f[2];
    c.session_token.clear();
    if (f.size() > 3) c.endpoint = f[3];
    if (f.size() > 4) c.region = f[4];
    if (absl::Status s = FillS3ConfigFromEnv(c); !s.ok()) {
      return absl::InvalidArgumentError(
          absl::StrCat("line ", line_no, ": ", s.message()));
    }
    t.by_tenant_[f[0]] = std::move(c);
  }
  if (server_fallback) t.fallback_ = defaults;
  return t;
}

absl::StatusOr<TenantS3> TenantS3::FromFile(const std::string& path,
                                            const S3Config& defaults,
                                            bool server_fallback) {
  std::ifstream f(path);
  if (!f) {
    return absl::NotFoundError(absl::StrCat(
        "cannot read the tenant object-storage credentials file '", path, "'"));
  }
  std::stringstream text;
  text << f.rdbuf();
  absl::StatusOr<TenantS3> t = FromText(text.str(), defaults, server_fallback);
  if (!t.ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat("'", path, "': ", t.status().message()));
  }
  return t;
}

void TenantS3::ReserveForService(const std::string& bucket,
                                 const std::string& prefix) {
  reserved_ = S3Location{bucket, prefix};
}

absl::StatusOr<S3Config> TenantS3::ConfigFor(const std::string& tenant,
                                             const std::string& bucket,
                                             const std::string& key) const {
  if (reserved_.has_value() && bucket == reserved_->bucket &&
      absl::StartsWith(key, reserved_->key)) {
    return absl::PermissionDeniedError(absl::StrCat(
        "s3://", bucket, "/", reserved_->key,
        " is this service's own storage; jobs may not read or write there"));
  }
  auto it = by_tenant_.find(tenant);
  if (it == by_tenant_.end() && !fallback_.has_value()) {
    return absl::FailedPreconditionError(absl::StrCat(
        "tenant ", tenant,
        " has no object-storage credentials on this server, so s3:// "
        "references cannot be read or written for it; ask the operator to "
        "add them (--tenant-s3-credentials), or upload the files instead"));
  }
  S3Config c = it != by_tenant_.end() ? it->second : *fallback_;
  c.bucket = bucket;
  c.prefix.clear();
  return c;
}

}  // namespace quantd
