// The live progress line of quantctl: stage, percent, current layer and an
// ETA for the stage, from the job's Progress events.
#ifndef QUANTD_CLIENT_PROGRESS_H_
#define QUANTD_CLIENT_PROGRESS_H_

#include <string>

#include "absl/time/time.h"
#include "quantd/v1/service.pb.h"

namespace quantd::client {

// "7s", "1m05s", "2h03m"; "--" when unknown (negative or infinite).
std::string FormatEta(absl::Duration d);

class ProgressLine {
 public:
  // The line for this event, seen at `now`. The ETA extrapolates the time
  // spent in the current stage linearly over its fraction.
  std::string Update(const v1::Progress& progress, absl::Time now);

 private:
  std::string stage_;
  absl::Time stage_start_ = absl::InfinitePast();
};

}  // namespace quantd::client

#endif  // QUANTD_CLIENT_PROGRESS_H_
