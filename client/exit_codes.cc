#include "client/exit_codes.h"

namespace quantd::client {

int ExitCodeFor(absl::StatusCode code) {
  switch (code) {
    case absl::StatusCode::kOk:
      return kExitOk;
    case absl::StatusCode::kInvalidArgument:
    case absl::StatusCode::kNotFound:
    case absl::StatusCode::kFailedPrecondition:
    case absl::StatusCode::kAlreadyExists:
    case absl::StatusCode::kOutOfRange:
    case absl::StatusCode::kUnauthenticated:
    case absl::StatusCode::kPermissionDenied:
      return kExitBadRequest;
    case absl::StatusCode::kUnavailable:
    case absl::StatusCode::kDeadlineExceeded:
      return kExitUnavailable;
    case absl::StatusCode::kResourceExhausted:
      return kExitResourceExhausted;
    default:
      return kExitOther;
  }
}

int ExitCodeForJob(v1::JobState state) {
  switch (state) {
    case v1::JOB_STATE_SUCCEEDED:
      return kExitOk;
    case v1::JOB_STATE_FAILED:
    case v1::JOB_STATE_CANCELLED:
      return kExitJobFailed;
    default:
      return kExitOther;
  }
}

const char* ExitCodesHelp() {
  return R"(Exit codes:
  0  success
  1  the job ended FAILED or CANCELLED
  2  bad request or usage (INVALID_ARGUMENT, NOT_FOUND, FAILED_PRECONDITION,
     ALREADY_EXISTS, OUT_OF_RANGE, UNAUTHENTICATED, PERMISSION_DENIED)
  3  server unreachable or unavailable (UNAVAILABLE, DEADLINE_EXCEEDED)
  4  RESOURCE_EXHAUSTED (queue full, size or storage limit)
  5  any other error)";
}

}  // namespace quantd::client
