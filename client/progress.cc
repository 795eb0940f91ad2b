#include "client/progress.h"

#include <algorithm>
#include <cmath>
#include <cstdio>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"

namespace quantd::client {

std::string FormatEta(absl::Duration d) {
  if (d < absl::ZeroDuration() || d == absl::InfiniteDuration()) return "--";
  const int64_t s = absl::ToInt64Seconds(d + absl::Milliseconds(500));
  if (s < 60) return absl::StrCat(s, "s");
  if (s < 3600) return absl::StrFormat("%dm%02ds", s / 60, s % 60);
  return absl::StrFormat("%dh%02dm", s / 3600, (s % 3600) / 60);
}

std::string ProgressLine::Update(const v1::Progress& progress, absl::Time now) {
  if (progress.stage() != stage_) {
    stage_ = progress.stage();
    stage_start_ = now;
  }
  const double f = std::clamp(progress.fraction(), 0.0, 1.0);
  absl::Duration eta = absl::InfiniteDuration();
  if (f >= 1.0) {
    eta = absl::ZeroDuration();
  } else if (f > 0.0 && now > stage_start_) {
    eta = (now - stage_start_) * ((1.0 - f) / f);
  }
  std::string line =
      absl::StrFormat("%-20s %5.1f%%", progress.stage(), 100.0 * f);
  if (!progress.current_layer().empty()) {
    absl::StrAppend(&line, "  layer ", progress.current_layer());
  }
  absl::StrAppend(&line, "  ETA ", FormatEta(eta));
  return line;
}

}  // namespace quantd::client
