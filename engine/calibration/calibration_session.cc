#include "engine/calibration/calibration_session.h"

#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "util/status_macros.h"

namespace quantd {

absl::StatusOr<std::unique_ptr<CalibrationSession>> CalibrationSession::Create(
    const std::set<std::string>& tensors, const CalibrationOptions& options) {
  QUANTD_RETURN_IF_ERROR(options.Validate());
  if (tensors.empty()) {
    return absl::InvalidArgumentError(
        "calibration needs at least one tensor to observe; pass the names of "
        "the activations to quantize");
  }
  std::map<std::string, TensorCalibrator> calibrators;
  for (const std::string& name : tensors) {
    QUANTD_ASSIGN_OR_RETURN(TensorCalibrator c,
                            TensorCalibrator::Create(name, options));
    calibrators.emplace(name, std::move(c));
  }
  return std::unique_ptr<CalibrationSession>(
      new CalibrationSession(std::move(calibrators)));
}

TensorHook CalibrationSession::Hook() {
  return [this](const Node*, const std::string& name, Tensor& value) {
    auto it = calibrators_.find(name);  // the map itself never changes
    if (it == calibrators_.end()) return absl::OkStatus();
    std::lock_guard<std::mutex> lock(mutex_);
    return it->second.Observe(value);
  };
}

absl::StatusOr<std::map<std::string, QuantParams>> CalibrationSession::Finish()
    const {
  std::lock_guard<std::mutex> lock(mutex_);
  std::vector<std::string> unseen;
  for (const auto& [name, c] : calibrators_) {
    if (c.num_batches() == 0) unseen.push_back(name);
  }
  if (!unseen.empty()) {
    return absl::FailedPreconditionError(absl::StrCat(
        "no calibration data was observed for tensor(s) ", "'",
        absl::StrJoin(unseen, "', '"), "'",
        "; check the names against the graph's values, and that the "
        "calibration dataset is not empty"));
  }
  std::map<std::string, QuantParams> params;
  for (const auto& [name, c] : calibrators_) {
    QUANTD_ASSIGN_OR_RETURN(QuantParams p, c.ComputeParams());
    params.emplace(name, std::move(p));
  }
  return params;
}

const TensorCalibrator* CalibrationSession::calibrator(
    const std::string& name) const {
  auto it = calibrators_.find(name);
  return it == calibrators_.end() ? nullptr : &it->second;
}

}  // namespace quantd
