#include "util/logging.h"

#include <atomic>

namespace quantd {

void InitLogging(const char* argv0) {
  static std::atomic<bool> done{false};
  if (done.exchange(true)) return;
  FLAGS_logtostderr = true;
  google::InitGoogleLogging(argv0);
}

bool LogIfError(const absl::Status& status, absl::string_view doing) {
  if (status.ok()) return true;
  LOG(ERROR) << doing << ": " << status;
  return false;
}

}  // namespace quantd
