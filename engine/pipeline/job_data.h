// The datasets of a job: calibration, and evaluation (given, or the last
// 20% of the calibration set held back from calibration).
//
//   absl::StatusOr<JobData> data = OpenJobData(spec, paths, graph);
//   data->calibration->Next() ...; data->evaluation->Next() ...
//   auto subset = data->OpenEvaluationSubset(256);   // sensitivity
#ifndef QUANTD_ENGINE_PIPELINE_JOB_DATA_H_
#define QUANTD_ENGINE_PIPELINE_JOB_DATA_H_

#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "engine/data/dataset.h"
#include "engine/evaluation/evaluation_task.h"
#include "engine/ir/graph.h"
#include "quantd/v1/job_spec.pb.h"

namespace quantd {

// Fraction of the calibration set held back for evaluation when the job
// gives no evaluation set.
inline constexpr double kHeldBackFraction = 0.2;

struct JobData {
  std::unique_ptr<Dataset> calibration;  // null when none was given
  std::unique_ptr<Dataset> evaluation;   // never null
  std::vector<std::string> warnings;

  // The first `max_samples` evaluation samples as a separate dataset.
  absl::StatusOr<std::unique_ptr<Dataset>> OpenEvaluationSubset(
      int64_t max_samples, int64_t batch_size) const;

  const Graph* graph = nullptr;
  // The evaluation task; every dataset above carries it.
  ResolvedTask task;
  std::string evaluation_path;
  DatasetOptions evaluation_options;
};

// `spec` has defaults filled in (WithDefaults). Fails when neither set is
// given, or when a calibration set without an evaluation set is too small
// to hold samples back.
absl::StatusOr<JobData> OpenJobData(const v1::JobSpec& spec,
                                    const std::string& calibration_path,
                                    const std::string& evaluation_path,
                                    const Graph& graph);

}  // namespace quantd

#endif  // QUANTD_ENGINE_PIPELINE_JOB_DATA_H_
