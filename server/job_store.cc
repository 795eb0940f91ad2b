#include "server/job_store.h"

#include "absl/strings/match.h"
#include "server/postgres_job_store.h"
#include "server/sqlite_job_store.h"

namespace quantd {

bool IsTerminal(JobState s) {
  return s == JobState::kSucceeded || s == JobState::kFailed ||
         s == JobState::kCancelled;
}

absl::string_view JobStateName(JobState s) {
  static constexpr absl::string_view kNames[] = {
      "UNKNOWN", "QUEUED",     "RUNNING",  "SUCCEEDED",
      "FAILED",  "CANCELLING", "CANCELLED"};
  int i = static_cast<int>(s);
  return kNames[i >= 1 && i <= 6 ? i : 0];
}

bool IsPostgresUrl(absl::string_view location) {
  return absl::StartsWith(location, "postgres://") ||
         absl::StartsWith(location, "postgresql://");
}

absl::StatusOr<std::unique_ptr<JobStore>> JobStore::Open(
    const std::string& location, const std::string& page_token_key) {
  if (IsPostgresUrl(location)) {
    return PostgresJobStore::Open(location, page_token_key);
  }
  return SqliteJobStore::Open(location, page_token_key);
}

}  // namespace quantd
