// Bearer-token authentication: every call carries "authorization: Bearer
// <token>", and the tokens file maps tokens to tenants. Every job, blob and
// artifact belongs to a tenant; the handlers pass the tenant to the core.
//
// Tokens file: one "<tenant> <token>" per line, '#' comments, tokens of at
// least 16 characters, tenants of [A-Za-z0-9._-]. Only sha256 digests of
// the tokens are kept in memory and compared in constant time.
//
//   absl::StatusOr<Authenticator> auth = Authenticator::FromFile("tokens");
//   absl::StatusOr<std::string> tenant = auth->Authenticate("Bearer abc...");
//
// Without a tokens file (Authenticator::SingleTenant()) every call belongs
// to the tenant "default"; `quantd serve` then listens on loopback only.
#ifndef QUANTD_SERVER_AUTH_H_
#define QUANTD_SERVER_AUTH_H_

#include <map>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace quantd {

class Authenticator {
 public:
  static Authenticator SingleTenant();
  static absl::StatusOr<Authenticator> FromFile(const std::string& path);
  static absl::StatusOr<Authenticator> FromText(absl::string_view text);

  bool single_tenant() const { return single_tenant_; }
  size_t tenant_count() const;

  // The tenant of an "authorization" header value; Unauthenticated with
  // what to send when it is missing, malformed or unknown.
  absl::StatusOr<std::string> Authenticate(absl::string_view header) const;

 private:
  bool single_tenant_ = false;
  std::map<std::string, std::string> tenant_by_digest_;  // sha256(token)
};

}  // namespace quantd

#endif  // QUANTD_SERVER_AUTH_H_
