// CalibrationSession: calibrates a set of tensors while the executor runs the
// calibration dataset, one TensorCalibrator per tensor
// (engine/calibration/calibrator.h).
//
//   absl::StatusOr<std::unique_ptr<CalibrationSession>> session =
//       CalibrationSession::Create({"x", "conv1_out"}, options);
//   RunOptions run;
//   run.tensor_hook = (*session)->Hook();
//   for (const TensorMap& batch : dataset) {
//     absl::StatusOr<RunResult> r = executor->Run(batch, run);  // NaN: error
//   }
//   absl::StatusOr<std::map<std::string, QuantParams>> params =
//       (*session)->Finish();   // -> QuantizationPlan::activations
//
// The hook only reads values; a calibrator error (NaN/Inf, a non-float
// tensor) ends the run with that status. The hook refers to the session,
// which therefore lives behind a unique_ptr and must outlive the runs. Runs
// may happen on several threads at once: the hook serializes observations.
#ifndef QUANTD_ENGINE_CALIBRATION_CALIBRATION_SESSION_H_
#define QUANTD_ENGINE_CALIBRATION_CALIBRATION_SESSION_H_

#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>

#include "absl/status/statusor.h"
#include "engine/calibration/calibrator.h"
#include "engine/ir/quantization_plan.h"
#include "engine/runtime/executor.h"

namespace quantd {

class CalibrationSession {
 public:
  // Fails on invalid options or an empty set of tensors.
  static absl::StatusOr<std::unique_ptr<CalibrationSession>> Create(
      const std::set<std::string>& tensors, const CalibrationOptions& options);

  CalibrationSession(const CalibrationSession&) = delete;
  CalibrationSession& operator=(const CalibrationSession&) = delete;

  // For RunOptions::tensor_hook. Values of unwatched tensors are ignored.
  TensorHook Hook();

  // Parameters for every watched tensor. Fails, naming them, if some tensor
  // was never observed (a wrong name, or a value the graph never produces).
  // May be called again after more runs.
  absl::StatusOr<std::map<std::string, QuantParams>> Finish() const;

  // The calibrator of a watched tensor, or nullptr.
  const TensorCalibrator* calibrator(const std::string& name) const;

 private:
  explicit CalibrationSession(std::map<std::string, TensorCalibrator> c)
      : calibrators_(std::move(c)) {}

  mutable std::mutex mutex_;
  std::map<std::string, TensorCalibrator> calibrators_;
};

}  // namespace quantd

#endif  // QUANTD_ENGINE_CALIBRATION_CALIBRATION_SESSION_H_
