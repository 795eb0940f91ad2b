// Logging for errors that cannot be returned: a failure inside a
// destructor, a clean-up after the real error, a background loop with no
// caller to tell. Everything else returns an absl::Status.
//
// The library is glog (Debian's libgoogle-glog-dev 0.6): Abseil's own
// logging arrived after the Abseil Debian 12 ships (20220623), and glog has
// the same LOG(ERROR) << ... spelling, so moving to absl/log later is a
// change of include. Logs go to stderr (containers collect stderr; nothing
// writes log files under the data folder).
//
//   InitLogging(argv[0]);                        // once, in main
//   LogIfError(blobs->Remove(digest), "removing an orphaned artifact");
//   LOG(WARNING) << "job " << id << " re-queued after a crash";
#ifndef QUANTD_UTIL_LOGGING_H_
#define QUANTD_UTIL_LOGGING_H_

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "glog/logging.h"

namespace quantd {

// Sends every severity to stderr and names the program in each line.
// Idempotent.
void InitLogging(const char* argv0);

// Logs `status` at ERROR with what was being done when it is not OK;
// returns whether it was OK.
bool LogIfError(const absl::Status& status, absl::string_view doing);

}  // namespace quantd

#endif  // QUANTD_UTIL_LOGGING_H_
