// quantctl's exit codes, one per kind of outcome a script must tell apart.
#ifndef QUANTD_CLIENT_EXIT_CODES_H_
#define QUANTD_CLIENT_EXIT_CODES_H_

#include "absl/status/status.h"
#include "quantd/v1/service.pb.h"

namespace quantd::client {

inline constexpr int kExitOk = 0;
// The job ended FAILED or CANCELLED.
inline constexpr int kExitJobFailed = 1;
// Bad request or usage: INVALID_ARGUMENT, NOT_FOUND, FAILED_PRECONDITION,
// ALREADY_EXISTS, OUT_OF_RANGE, UNAUTHENTICATED, PERMISSION_DENIED.
inline constexpr int kExitBadRequest = 2;
// The server is unreachable or unavailable: UNAVAILABLE, DEADLINE_EXCEEDED.
inline constexpr int kExitUnavailable = 3;
// RESOURCE_EXHAUSTED (a full queue, a storage or size limit).
inline constexpr int kExitResourceExhausted = 4;
// Anything else.
inline constexpr int kExitOther = 5;

int ExitCodeFor(absl::StatusCode code);
// 0 for SUCCEEDED, 1 for FAILED and CANCELLED, 5 for a job that is not
// terminal.
int ExitCodeForJob(v1::JobState state);

// The text for --help.
const char* ExitCodesHelp();

}  // namespace quantd::client

#endif  // QUANTD_CLIENT_EXIT_CODES_H_
