// Process exit codes shared by quantd's commands, so that scripts and
// Kubernetes Job policies can tell bad input from failures worth retrying.
#ifndef QUANTD_SERVER_EXIT_CODES_H_
#define QUANTD_SERVER_EXIT_CODES_H_

#include "absl/status/status.h"

namespace quantd {

inline constexpr int kExitOk = 0;
// Something failed that may succeed on retry (I/O, resources, internal).
inline constexpr int kExitFailure = 1;
// The command line or the input (model, data, spec) is wrong: do not retry.
inline constexpr int kExitBadInput = 2;
// Stopped by SIGTERM/SIGINT before finishing (run-job): retry.
inline constexpr int kExitInterrupted = 3;

inline int ExitCodeFor(const absl::Status& s) {
  switch (s.code()) {
    case absl::StatusCode::kOk:
      return kExitOk;
    case absl::StatusCode::kInvalidArgument:
    case absl::StatusCode::kNotFound:
    case absl::StatusCode::kUnimplemented:
    case absl::StatusCode::kPermissionDenied:
    case absl::StatusCode::kFailedPrecondition:
    case absl::StatusCode::kOutOfRange:
      return kExitBadInput;
    default:
      return kExitFailure;
  }
}

}  // namespace quantd

#endif  // QUANTD_SERVER_EXIT_CODES_H_
