// Which object-storage credentials each tenant's s3:// references use.
// A job spec may name its model and data as s3://bucket/key and ask for its
// artifacts at an s3:// output URI; those requests go out with the tenant's
// own key pair, configured by the operator, never with the server's (whose
// key can read and write the service's own bucket) unless the operator
// allows it for tenants without a line of their own.
//
// File (--tenant-s3-credentials): one line per tenant, '#' comments,
//   <tenant> <access-key-id> <secret-access-key> [<endpoint> [<region>]]
// Endpoint and region default to the server's (--s3-endpoint, AWS_*).
// The endpoint is the operator's choice, never a tenant's: a job spec only
// names bucket and key, so it cannot point the server at another host.
//
//   absl::StatusOr<TenantS3> t = TenantS3::FromFile(path, server_defaults,
//                                                    /*server_fallback=*/false);
//   absl::StatusOr<S3Location> loc = ParseS3ObjectUri("s3://b/models/m.onnx");
//   absl::StatusOr<S3Config> config = t->ConfigFor("team-a", loc->bucket);
#ifndef QUANTD_SERVER_TENANT_S3_H_
#define QUANTD_SERVER_TENANT_S3_H_

#include <map>
#include <optional>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "server/s3_config.h"

namespace quantd {

// s3://bucket/key, checked as S3ConfigFromUrl checks a prefix: a valid
// bucket name and a key of at most 512 characters of [A-Za-z0-9._/-] with
// no ".." or "//" (keys need no escaping in a URL or a signature then).
struct S3Location {
  std::string bucket;
  std::string key;
};
absl::StatusOr<S3Location> ParseS3ObjectUri(absl::string_view uri);
// The same for an output location: the key is a prefix ("" allowed),
// returned without a trailing '/'.
absl::StatusOr<S3Location> ParseS3PrefixUri(absl::string_view uri);

class TenantS3 {
 public:
  // No tenant has credentials: every s3:// reference is refused.
  TenantS3() = default;
  // `defaults`: the server's endpoint and region (and, when
  // `server_fallback`, its keys for tenants without a line).
  static absl::StatusOr<TenantS3> FromText(absl::string_view text,
                                           const S3Config& defaults,
                                           bool server_fallback);
  static absl::StatusOr<TenantS3> FromFile(const std::string& path,
                                           const S3Config& defaults,
                                           bool server_fallback);

  // Keys under s3://bucket/prefix (quantd's own --blob-store) are never a
  // tenant's to read or write, whatever its credentials could reach: a
  // tenant reading there would bypass blob ownership, one writing there
  // would damage other tenants' blobs.
  void ReserveForService(const std::string& bucket, const std::string& prefix);

  // The config for `tenant`'s requests to `key` in `bucket`;
  // FailedPrecondition saying whom to ask when the tenant has no
  // credentials, PermissionDenied for the service's own storage.
  absl::StatusOr<S3Config> ConfigFor(const std::string& tenant,
                                     const std::string& bucket,
                                     const std::string& key) const;

 private:
  std::map<std::string, S3Config> by_tenant_;
  std::optional<S3Config> fallback_;
  std::optional<S3Location> reserved_;
};

}  // namespace quantd

#endif  // QUANTD_SERVER_TENANT_S3_H_
