#include "server/s3_config.h"

#include <cstdlib>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"

namespace quantd {
namespace {

bool ValidBucket(absl::string_view b) {
  if (b.size() < 3 || b.size() > 63) return false;
  for (char c : b) {
    const bool ok = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
                    c == '.' || c == '-';
    if (!ok) return false;
  }
  return b.front() != '.' && b.front() != '-' && b.back() != '.' &&
         b.back() != '-';
}

bool ValidPrefix(absl::string_view p) {
  for (char c : p) {
    const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
                    (c >= '0' && c <= '9') || c == '.' || c == '_' ||
                    c == '-' || c == '/';
    if (!ok) return false;
  }
  return !absl::StrContains(p, "..") && !absl::StrContains(p, "//") &&
         !absl::StartsWith(p, "/");
}

std::string Env(const char* name) {
  const char* v = std::getenv(name);
  return v == nullptr ? "" : v;
}

void FillFromEnv(std::string& field, std::initializer_list<const char*> names) {
  for (const char* name : names) {
    if (!field.empty()) return;
    field = Env(name);
  }
}

}  // namespace

absl::StatusOr<S3Config> S3ConfigFromUrl(absl::string_view url) {
  absl::string_view rest = url;
  if (!absl::ConsumePrefix(&rest, "s3://")) {
    return absl::InvalidArgumentError(
        absl::StrCat("'", url, "' is not an s3://bucket/prefix URL"));
  }
  S3Config config;
  const size_t slash = rest.find('/');
  config.bucket = std::string(rest.substr(0, slash));
  if (!ValidBucket(config.bucket)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "'", config.bucket,
        "' is not an S3 bucket name (3-63 characters of a-z, 0-9, '.', '-')"));
  }
  absl::string_view prefix =
      slash == absl::string_view::npos ? "" : rest.substr(slash + 1);
  while (absl::ConsumeSuffix(&prefix, "/")) {
  }
  if (!ValidPrefix(prefix)) {
    return absl::InvalidArgumentError(
        absl::StrCat("the key prefix '", prefix,
                     "' may hold only A-Z a-z 0-9 . _ - / (no '..' or '//')"));
  }
  if (!prefix.empty()) config.prefix = absl::StrCat(prefix, "/");
  return config;
}

absl::Status FillS3ConfigFromEnv(S3Config& config) {
  FillFromEnv(config.endpoint, {"AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL"});
  FillFromEnv(config.region, {"AWS_REGION", "AWS_DEFAULT_REGION"});
  FillFromEnv(config.access_key_id, {"AWS_ACCESS_KEY_ID"});
  FillFromEnv(config.secret_access_key, {"AWS_SECRET_ACCESS_KEY"});
  FillFromEnv(config.session_token, {"AWS_SESSION_TOKEN"});
  if (config.region.empty()) config.region = "us-east-1";
  while (!config.endpoint.empty() && config.endpoint.back() == '/') {
    config.endpoint.pop_back();
  }
  if (config.endpoint.empty()) {
    config.endpoint =
        absl::StrCat("https://s3.", config.region, ".amazonaws.com");
  }
  if (!absl::StartsWith(config.endpoint, "http://") &&
      !absl::StartsWith(config.endpoint, "https://")) {
    return absl::InvalidArgumentError(
        absl::StrCat("the S3 endpoint '", config.endpoint,
                     "' must start with http:// or https://"));
  }
  if (config.access_key_id.empty() || config.secret_access_key.empty()) {
    return absl::InvalidArgumentError(
        "object storage needs credentials: set AWS_ACCESS_KEY_ID and "
        "AWS_SECRET_ACCESS_KEY (or the --s3-* flags)");
  }
  if (config.part_size < (int64_t{5} << 20) ||
      config.multipart_threshold < config.part_size) {
    return absl::InvalidArgumentError(
        "S3 parts must be at least 5 MiB and the multipart threshold at "
        "least one part");
  }
  return absl::OkStatus();
}

std::string DescribeS3(const S3Config& config) {
  return absl::StrCat("s3://", config.bucket, "/", config.prefix, " at ",
                      config.endpoint);
}

}  // namespace quantd
