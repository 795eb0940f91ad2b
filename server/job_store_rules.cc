#include "server/job_store_rules.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>

#include <algorithm>
#include <climits>
#include <tuple>

#include "absl/strings/escaping.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "server/job_labels.h"
#include "server/resource_names.h"

namespace quantd {

int64_t NowUs() { return absl::ToUnixMicros(absl::Now()); }

absl::StatusOr<std::string> RandomBytes(size_t n) {
  std::string bytes(n, '\0');
  if (RAND_bytes(reinterpret_cast<unsigned char*>(bytes.data()),
                 static_cast<int>(n)) != 1) {
    return absl::InternalError("the random number generator failed");
  }
  return bytes;
}

absl::Status CheckKey(absl::string_view what, absl::string_view value) {
  if (value.empty()) {
    return absl::InvalidArgumentError(absl::StrCat(what, " is empty"));
  }
  if (value.size() > kMaxKeyBytes) {
    return absl::InvalidArgumentError(absl::StrCat(
        what, " is ", value.size(), " bytes; the limit is ", kMaxKeyBytes));
  }
  return absl::OkStatus();
}

absl::Status CheckSize(absl::string_view what, size_t size, size_t limit) {
  if (size <= limit) return absl::OkStatus();
  return absl::InvalidArgumentError(
      absl::StrCat(what, " is ", size, " bytes; the limit is ", limit));
}

absl::Status JobNotFound(absl::string_view id) {
  return absl::NotFoundError(absl::StrCat(
      "job ", id, " not found; check the job id (ListJobs shows yours)"));
}

absl::Status CheckNewJob(const JobRecord& job) {
  if (absl::Status s = CheckKey("tenant", job.tenant); !s.ok()) return s;
  for (const auto& [what, size, limit] :
       {std::make_tuple("request_id", job.request_id.size(), kMaxKeyBytes),
        std::make_tuple("the job spec", job.spec.size(), kMaxSpecBytes),
        std::make_tuple("display_name", job.display_name.size(),
                        kMaxDisplayNameBytes)}) {
    if (absl::Status s = CheckSize(what, size, limit); !s.ok()) return s;
  }
  if (job.labels.size() > kMaxLabels) {
    return absl::InvalidArgumentError(
        absl::StrCat("the job has ", job.labels.size(),
                     " labels; the limit is ", kMaxLabels));
  }
  for (const auto& [key, value] : job.labels) {
    if (key.empty() || key.size() > kMaxLabelKeyBytes ||
        value.size() > kMaxLabelValueBytes) {
      return absl::InvalidArgumentError(absl::StrCat(
          "label \"", absl::CHexEscape(key.substr(0, kMaxLabelKeyBytes)),
          "\": keys must be 1 to ", kMaxLabelKeyBytes,
          " bytes and values at most ", kMaxLabelValueBytes, " bytes"));
    }
  }
  return absl::OkStatus();
}

absl::Status ResetNewJob(JobRecord& job) {
  // 64 random bits from a CSPRNG, so ids cannot be guessed. A collision
  // (astronomically rare) fails the UNIQUE constraint; nothing is
  // overwritten.
  absl::StatusOr<std::string> bytes = RandomBytes(8);
  if (!bytes.ok()) return bytes.status();
  job.id = absl::StrCat("job-", absl::BytesToHexString(*bytes));
  job.state = JobState::kQueued;
  job.attempts = 0;
  job.error.clear();
  job.create_time_us = job.update_time_us = NowUs();
  job.start_time_us = job.end_time_us = 0;
  job.model_artifact_sha256.clear();
  job.report_artifact_sha256.clear();
  job.model_artifact_size = job.report_artifact_size = 0;
  return absl::OkStatus();
}

absl::StatusOr<std::pair<JobRecord, bool>> RetriedCreate(JobRecord existing,
                                                         const JobRecord& job) {
  if (existing.spec != job.spec || existing.priority != job.priority) {
    return absl::AlreadyExistsError(absl::StrCat(
        "request_id \"", job.request_id, "\" was already used for job ",
        existing.id,
        " with a different spec or priority; use a new request_id for a new "
        "job"));
  }
  return std::make_pair(std::move(existing), false);
}

absl::Status QueueFull(int64_t mine, int64_t queued) {
  return absl::ResourceExhaustedError(
      absl::StrCat("the queue is full (", mine, " of your jobs and ", queued,
                   " in all are queued); retry after some finish"));
}

absl::Status CheckQueueRoom(int64_t mine, int64_t queued,
                            const QueueLimits& limits) {
  if (queued < limits.max_queued && mine < limits.max_queued_per_tenant) {
    return absl::OkStatus();
  }
  return QueueFull(mine, queued);
}

absl::Status CheckMoveAllowed(const JobRecord& job,
                              std::initializer_list<JobState> from,
                              JobState to) {
  if (std::find(from.begin(), from.end(), job.state) != from.end()) {
    return absl::OkStatus();
  }
  std::string allowed;
  for (JobState s : from) {
    absl::StrAppend(&allowed, allowed.empty() ? "" : " or ", JobStateName(s));
  }
  return absl::FailedPreconditionError(
      absl::StrCat("job ", job.id, " is ", JobStateName(job.state),
                   "; it can become ", JobStateName(to), " only from ",
                   allowed.empty() ? "(no state given)" : allowed));
}

void ApplyMove(JobRecord& job, JobState to, absl::string_view error) {
  const int64_t now = NowUs();
  job.state = to;
  job.update_time_us = now;
  if (to == JobState::kRunning) {
    job.start_time_us = now;
    ++job.attempts;
  }
  if (IsTerminal(to)) job.end_time_us = now;
  if (!error.empty()) job.error = std::string(error);
  if (to != JobState::kRunning && to != JobState::kCancelling) {
    job.lease_owner.clear();
    job.lease_expiry_us = 0;
  }
}

void HandOver(std::vector<JobEvent>& added, std::vector<JobEvent>* appended) {
  if (appended == nullptr) return;
  for (JobEvent& e : added) appended->push_back(std::move(e));
}

absl::Status CheckLease(const JobRecord& job, const std::string& owner) {
  if (owner.empty() || job.lease_owner == owner) return absl::OkStatus();
  return absl::FailedPreconditionError(absl::StrCat(
      "job ", job.id, " is ", JobStateName(job.state), " and leased to '",
      job.lease_owner, "', not to '", owner,
      "': this replica's lease expired and the job was re-queued or taken "
      "over; its work here is dropped"));
}

void ApplyClaim(JobRecord& job, const std::string& owner,
                absl::Duration lease) {
  ApplyMove(job, JobState::kRunning, "");
  job.lease_owner = owner;
  job.lease_expiry_us = job.update_time_us + absl::ToInt64Microseconds(lease);
}

std::pair<JobState, std::string> RecoveryMove(const JobRecord& job,
                                              int32_t max_attempts) {
  if (job.state == JobState::kCancelling) {
    return {JobState::kCancelled,
            job.error.empty() ? "the server restarted while cancelling" : ""};
  }
  if (job.attempts < max_attempts) return {JobState::kQueued, ""};
  return {JobState::kFailed,
          absl::StrCat("the server stopped ",
                       job.attempts == 1 ? std::string("once")
                                         : absl::StrCat(job.attempts, " times"),
                       " while running this job (--max-attempts ", max_attempts,
                       ")")};
}

absl::Status CheckRecoverAttempts(int32_t max_attempts) {
  if (max_attempts >= 1) return absl::OkStatus();
  return absl::InvalidArgumentError(absl::StrCat(
      "max_attempts is ", max_attempts, "; it must be at least 1"));
}

absl::Status CheckArtifacts(const std::string& model_sha256, int64_t model_size,
                            const std::string& report_sha256,
                            int64_t report_size, const std::string& report) {
  if (absl::Status s = CheckSize("the report summary", report.size(),
                                 kMaxReportSummaryBytes);
      !s.ok()) {
    return s;
  }
  if (!IsSha256Hex(model_sha256) || !IsSha256Hex(report_sha256) ||
      model_size < 0 || report_size < 0) {
    return absl::InvalidArgumentError(
        "artifact digests must be 64 lowercase hex characters (SHA-256) and "
        "sizes must not be negative");
  }
  return absl::OkStatus();
}

absl::Status CheckEventsLimit(int32_t limit) {
  if (limit >= 1 && limit <= kMaxEventsPerCall) return absl::OkStatus();
  return absl::InvalidArgumentError(
      absl::StrCat("limit is ", limit, "; use 1 to ", kMaxEventsPerCall));
}

absl::Status CheckDeletable(const JobRecord& job) {
  if (IsTerminal(job.state)) return absl::OkStatus();
  return absl::FailedPreconditionError(
      absl::StrCat("job ", job.id, " is ", JobStateName(job.state),
                   "; cancel it and wait until it is CANCELLED (or let it "
                   "finish) before deleting it"));
}

absl::StatusOr<int32_t> PageSize(int32_t page_size) {
  if (page_size < 0 || page_size > 1000) {
    return absl::InvalidArgumentError(
        absl::StrCat("page_size is ", page_size,
                     "; use 1 to 1000, or 0 for the default of 50"));
  }
  return page_size == 0 ? 50 : page_size;
}

std::string PageTokens::Mac(absl::string_view tenant,
                            std::optional<JobState> state,
                            int64_t position) const {
  // The tenant is length-prefixed, so that no two (tenant, state, position)
  // triples share an encoding.
  std::string msg = "quantd.ListJobs.v1/";
  PutLength(msg, tenant.size());
  absl::StrAppend(&msg, tenant, "/", state ? static_cast<int>(*state) : 0, "/",
                  position);
  unsigned char mac[EVP_MAX_MD_SIZE];
  unsigned int mac_len = 0;
  HMAC(EVP_sha256(), key_.data(), static_cast<int>(key_.size()),
       reinterpret_cast<const unsigned char*>(msg.data()), msg.size(), mac,
       &mac_len);
  return std::string(reinterpret_cast<const char*>(mac), mac_len);
}

absl::StatusOr<int64_t> PageTokens::Position(absl::string_view tenant,
                                             std::optional<JobState> state,
                                             const std::string& token) const {
  if (token.empty()) return INT64_MAX;
  int64_t position = 0;
  std::string raw;
  bool valid = absl::WebSafeBase64Unescape(token, &raw) && raw.size() > 32 &&
               absl::SimpleAtoi(absl::string_view(raw).substr(32), &position);
  if (valid) {  // canonical digits only, then the MAC
    const std::string mac = Mac(tenant, state, position);
    valid = raw.substr(32) == absl::StrCat(position) &&
            CRYPTO_memcmp(mac.data(), raw.data(), 32) == 0;
  }
  if (!valid) {
    return absl::InvalidArgumentError(
        "page_token is not valid for this request: pass the next_page_token "
        "of the previous ListJobs response unchanged, with the same state "
        "filter, or an empty page_token to start from the newest job");
  }
  return position;
}

std::string PageTokens::Token(absl::string_view tenant,
                              std::optional<JobState> state,
                              int64_t position) const {
  return absl::WebSafeBase64Escape(
      absl::StrCat(Mac(tenant, state, position), position));
}

absl::Status CheckPageTokenKey(const std::string& key) {
  if (key.size() >= 16) return absl::OkStatus();
  return absl::InvalidArgumentError(absl::StrCat(
      "the page token key is ", key.size(),
      " bytes; use at least 16 random bytes so tokens cannot be forged"));
}

}  // namespace quantd
