// The service's names and identifiers, checked in one place: job resource
// names ("jobs/{id}"), client-chosen identifiers (request ids, upload ids)
// and blob digests. Every string here may come from a client.
//
//   std::string name = JobName("job-0123456789abcdef");  // "jobs/job-..."
//   absl::StatusOr<std::string> id = JobIdFromName(request.name());
//   if (!IsIdentifier(request.request_id(), kMaxRequestIdBytes)) ...
#ifndef QUANTD_SERVER_RESOURCE_NAMES_H_
#define QUANTD_SERVER_RESOURCE_NAMES_H_

#include <cstddef>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace quantd {

inline constexpr size_t kMaxJobIdBytes = 128;
inline constexpr size_t kMaxRequestIdBytes = 128;
inline constexpr size_t kMaxUploadIdBytes = 64;

// The job's resource name, "jobs/{id}".
std::string JobName(absl::string_view id);
// "jobs/{id}" -> id; InvalidArgument for anything else.
absl::StatusOr<std::string> JobIdFromName(absl::string_view name);
// The id part of a name this server made (events' `job` field); no checks.
absl::string_view JobIdOfOwnName(absl::string_view name);

// 1 to `max` characters of [A-Za-z0-9._-]: safe in logs, SQL parameters and
// (hashed) file names.
bool IsIdentifier(absl::string_view s, size_t max);
// 64 lowercase hex characters.
bool IsSha256Hex(absl::string_view s);

}  // namespace quantd

#endif  // QUANTD_SERVER_RESOURCE_NAMES_H_
