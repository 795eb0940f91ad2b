// Where an S3-compatible object store is and how to sign for it: the bucket
// and key prefix from an `s3://bucket/prefix` URL, the endpoint, region and
// credentials from flags or, as the AWS tools have them, the environment
// (AWS_ENDPOINT_URL_S3 / AWS_ENDPOINT_URL, AWS_REGION / AWS_DEFAULT_REGION,
// AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN).
//
//   absl::StatusOr<S3Config> config = S3ConfigFromUrl("s3://models/quantd");
//   config->endpoint = "http://127.0.0.1:9000";   // a flag, when given
//   QUANTD_RETURN_IF_ERROR(FillS3ConfigFromEnv(*config));
#ifndef QUANTD_SERVER_S3_CONFIG_H_
#define QUANTD_SERVER_S3_CONFIG_H_

#include <cstdint>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace quantd {

struct S3Config {
  std::string bucket;
  // Prepended to every key: empty, or ends with '/'.
  std::string prefix;
  // scheme://host[:port] without a trailing slash. Empty: AWS's regional
  // endpoint https://s3.REGION.amazonaws.com. Requests are path-style
  // (endpoint/bucket/key), which MinIO, Ceph RGW and AWS all accept.
  std::string endpoint;
  std::string region;
  std::string access_key_id;
  std::string secret_access_key;
  std::string session_token;  // temporary credentials (STS), or empty
  // Blobs larger than this go up as a multipart upload in parts of
  // `part_size` bytes (S3 wants parts of at least 5 MiB but the last).
  int64_t multipart_threshold = int64_t{64} << 20;
  int64_t part_size = int64_t{16} << 20;
};

// Parses `s3://bucket[/prefix]`. Bucket names follow S3's rules (3-63 of
// [a-z0-9.-]); the prefix may hold [A-Za-z0-9._/-] only (no "..", "//" or
// leading '/'), so that no key needs escaping and none can climb out of it.
absl::StatusOr<S3Config> S3ConfigFromUrl(absl::string_view url);

// Fills the fields still empty from the AWS environment variables (region
// defaults to us-east-1) and checks the result: credentials present, the
// endpoint an http(s) URL, part sizes within S3's limits.
absl::Status FillS3ConfigFromEnv(S3Config& config);

// "s3://bucket/prefix at endpoint" for logs and messages (no credentials).
std::string DescribeS3(const S3Config& config);

}  // namespace quantd

#endif  // QUANTD_SERVER_S3_CONFIG_H_
