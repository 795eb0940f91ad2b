// What every JobStore backend (SQLite, PostgreSQL) must decide the same way,
// kept in one place so the backends differ only in their SQL: input limits,
// new job ids, page tokens, the bookkeeping of a state change, start-up
// recovery's verdicts and the error messages clients see.
//
//   QUANTD_RETURN_IF_ERROR(CheckNewJob(job));
//   QUANTD_RETURN_IF_ERROR(ResetNewJob(job));    // id, state, times
//   PageTokens tokens(key);
//   absl::StatusOr<int64_t> position = tokens.Position(tenant, state, token);
#ifndef QUANTD_SERVER_JOB_STORE_RULES_H_
#define QUANTD_SERVER_JOB_STORE_RULES_H_

#include <cstdint>
#include <initializer_list>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "server/job_labels.h"
#include "server/job_store.h"

namespace quantd {

int64_t NowUs();
// `n` bytes from OpenSSL's CSPRNG (ids, keys).
absl::StatusOr<std::string> RandomBytes(size_t n);

// Non-empty and at most kMaxKeyBytes.
absl::Status CheckKey(absl::string_view what, absl::string_view value);
absl::Status CheckSize(absl::string_view what, size_t size, size_t limit);
absl::Status JobNotFound(absl::string_view id);

// Create's input limits (tenant, request id, spec, display name, labels).
absl::Status CheckNewJob(const JobRecord& job);
// Assigns a new random id ("job-" + 16 hex chars from a CSPRNG), QUEUED,
// zero attempts, no error or artifacts, create/update time now.
absl::Status ResetNewJob(JobRecord& job);
// A retried Create with the same request_id: the existing job when spec and
// priority match, else AlreadyExists.
absl::StatusOr<std::pair<JobRecord, bool>> RetriedCreate(JobRecord existing,
                                                         const JobRecord& job);
absl::Status QueueFull(int64_t mine, int64_t queued);
// Whether one more QUEUED job of the tenant fits `limits`.
absl::Status CheckQueueRoom(int64_t mine, int64_t queued,
                            const QueueLimits& limits);

// FailedPrecondition naming the job's state unless it is one of `from`.
absl::Status CheckMoveAllowed(const JobRecord& job,
                              std::initializer_list<JobState> from,
                              JobState to);
// Events a committed transaction appended, moved to the caller's
// `appended` (if any) for live watchers.
void HandOver(std::vector<JobEvent>& added, std::vector<JobEvent>* appended);

// FailedPrecondition unless `owner` is empty or holds the job's lease.
absl::Status CheckLease(const JobRecord& job, const std::string& owner);
// The in-memory part of a claim: ApplyMove to RUNNING and a lease to
// `owner` until now + `lease`.
void ApplyClaim(JobRecord& job, const std::string& owner, absl::Duration lease);
// The in-memory part of a move: state, update time, start time and attempt
// count on entering RUNNING, end time on entering a terminal state, and
// `error` if non-empty; the lease ends when the job leaves RUNNING and
// CANCELLING.
void ApplyMove(JobRecord& job, JobState to, absl::string_view error);
// Start-up recovery's verdict for a RUNNING or CANCELLING job: the state it
// moves to and the error to record (empty: keep the job's).
std::pair<JobState, std::string> RecoveryMove(const JobRecord& job,
                                              int32_t max_attempts);
absl::Status CheckRecoverAttempts(int32_t max_attempts);
// SetArtifacts' digests and sizes, and the report's size.
absl::Status CheckArtifacts(const std::string& model_sha256, int64_t model_size,
                            const std::string& report_sha256,
                            int64_t report_size, const std::string& report);
absl::Status CheckEventsLimit(int32_t limit);
absl::Status CheckDeletable(const JobRecord& job);
// page_size 0 becomes 50; outside [0, 1000] is InvalidArgument.
absl::StatusOr<int32_t> PageSize(int32_t page_size);

// ListJobs page tokens: base64url(HMAC-SHA256(tenant, filter, position) +
// position in decimal). The tenant and filter are bound to the MAC, not
// written in the token, so a token used with any other tenant or filter
// fails the check.
class PageTokens {
 public:
  explicit PageTokens(std::string key) : key_(std::move(key)) {}
  // The position a token stands for; INT64_MAX for an empty token (start
  // from the newest job); InvalidArgument for anything not issued for this
  // tenant and filter.
  absl::StatusOr<int64_t> Position(absl::string_view tenant,
                                   std::optional<JobState> state,
                                   const std::string& token) const;
  std::string Token(absl::string_view tenant, std::optional<JobState> state,
                    int64_t position) const;

 private:
  std::string Mac(absl::string_view tenant, std::optional<JobState> state,
                  int64_t position) const;
  const std::string key_;
};

// Fills `job` from one row of JOB_COLUMNS (job_store_schema.h; column 0,
// seq, is the caller's) read through int_at(column) and str_at(column).
// DataLoss on an unknown state or corrupt labels.
template <typename IntAt, typename StrAt>
absl::Status DecodeJobRow(const IntAt& int_at, const StrAt& str_at,
                          JobRecord& job) {
  job.id = str_at(1);
  job.tenant = str_at(2);
  job.request_id = str_at(3);
  const int64_t state = int_at(4);
  if (state < 1 || state > 6) {
    return absl::DataLossError(absl::StrCat(
        "job ", job.id, " has an unknown state ", state, " in the database"));
  }
  job.state = static_cast<JobState>(state);
  job.priority = static_cast<int32_t>(int_at(5));
  job.spec = str_at(6);
  job.display_name = str_at(7);
  if (!DecodeLabels(str_at(8), job.labels)) {
    return absl::DataLossError(
        absl::StrCat("job ", job.id, " has corrupt labels in the database"));
  }
  job.attempts = static_cast<int32_t>(int_at(9));
  job.error = str_at(10);
  job.create_time_us = int_at(11);
  job.update_time_us = int_at(12);
  job.start_time_us = int_at(13);
  job.end_time_us = int_at(14);
  job.model_artifact_sha256 = str_at(15);
  job.model_artifact_size = int_at(16);
  job.report_artifact_sha256 = str_at(17);
  job.report_artifact_size = int_at(18);
  job.progress = str_at(19);
  job.report = str_at(20);
  job.lease_owner = str_at(21);
  job.lease_expiry_us = int_at(22);
  return absl::OkStatus();
}

// At least 16 bytes, so that tokens cannot be forged.
absl::Status CheckPageTokenKey(const std::string& key);

}  // namespace quantd

#endif  // QUANTD_SERVER_JOB_STORE_RULES_H_
