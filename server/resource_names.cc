#include "server/resource_names.h"

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"

namespace quantd {
namespace {

constexpr absl::string_view kJobsPrefix = "jobs/";

}  // namespace

std::string JobName(absl::string_view id) {
  return absl::StrCat(kJobsPrefix, id);
}

absl::StatusOr<std::string> JobIdFromName(absl::string_view name) {
  if (!absl::StartsWith(name, kJobsPrefix) ||
      !IsIdentifier(name.substr(kJobsPrefix.size()), kMaxJobIdBytes)) {
    return absl::InvalidArgumentError(
        absl::StrCat("a job name looks like 'jobs/job-0123456789abcdef'; got '",
                     name.substr(0, 200), "'"));
  }
  return std::string(name.substr(kJobsPrefix.size()));
}

absl::string_view JobIdOfOwnName(absl::string_view name) {
  return absl::StartsWith(name, kJobsPrefix) ? name.substr(kJobsPrefix.size())
                                             : name;
}

bool IsIdentifier(absl::string_view s, size_t max) {
  if (s.empty() || s.size() > max) return false;
  for (char c : s) {
    const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
                    (c >= '0' && c <= '9') || c == '.' || c == '_' || c == '-';
    if (!ok) return false;
  }
  return true;
}

bool IsSha256Hex(absl::string_view s) {
  if (s.size() != 64) return false;
  for (char c : s) {
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return false;
  }
  return true;
}

}  // namespace quantd
