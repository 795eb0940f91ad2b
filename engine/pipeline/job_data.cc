#include "engine/pipeline/job_data.h"

#include "absl/strings/str_cat.h"
#include "util/status_macros.h"

namespace quantd {

absl::StatusOr<std::unique_ptr<Dataset>> JobData::OpenEvaluationSubset(
    int64_t max_samples, int64_t batch_size) const {
  DatasetOptions o = evaluation_options;
  o.batch_size = batch_size;
  o.max_samples =
      o.max_samples > 0 ? std::min(o.max_samples, max_samples) : max_samples;
  return Dataset::Open(evaluation_path, *graph, o);
}

absl::StatusOr<JobData> OpenJobData(const v1::JobSpec& spec,
                                    const std::string& calibration_path,
                                    const std::string& evaluation_path,
                                    const Graph& graph) {
  JobData data;
  data.graph = &graph;
  QUANTD_ASSIGN_OR_RETURN(
      data.task, ResolveEvaluationTask(spec.evaluation(), graph,
                                       ReadDataFacts(!evaluation_path.empty()
                                                         ? evaluation_path
                                                         : calibration_path)));
  if (!data.task.note.empty()) data.warnings.push_back(data.task.note);
  DatasetOptions calib_opts;
  ApplyTask(data.task, &calib_opts);
  calib_opts.batch_size = spec.calibration().batch_size();
  if (!calibration_path.empty()) {
    QUANTD_ASSIGN_OR_RETURN(std::unique_ptr<Dataset> probe,
                            Dataset::Open(calibration_path, graph, calib_opts));
    int64_t total = (probe)->num_samples();
    if (evaluation_path.empty()) {
      const int64_t held = static_cast<int64_t>(total * kHeldBackFraction);
      if (held < 1 || total - held < 1) {
        return absl::InvalidArgumentError(absl::StrCat(
            "the calibration set has ", total,
            " samples: too few to hold some back for evaluation; give an "
            "evaluation set"));
      }
      calib_opts.max_samples = total - held;
      data.evaluation_path = calibration_path;
      data.evaluation_options = calib_opts;
      data.evaluation_options.first_sample = total - held;
      data.evaluation_options.max_samples = held;
      data.warnings.push_back(
          absl::StrCat("no evaluation set given: evaluated on the last ", held,
                       " calibration samples, held back from calibration"));
      total -= held;
    }
    if (spec.calibration().max_samples() > 0) {
      calib_opts.max_samples =
          std::min<int64_t>(total, spec.calibration().max_samples());
    }
    QUANTD_ASSIGN_OR_RETURN(std::unique_ptr<Dataset> c,
                            Dataset::Open(calibration_path, graph, calib_opts));
    data.calibration = std::move(c);
  }
  if (!evaluation_path.empty()) {
    data.evaluation_path = evaluation_path;
    ApplyTask(data.task, &data.evaluation_options);
    data.evaluation_options.batch_size = spec.calibration().batch_size();
  }
  if (data.evaluation_path.empty()) {
    return absl::InvalidArgumentError(
        "give calibration_data or evaluation_data: quantd evaluates every "
        "quantized model against the float model");
  }
  QUANTD_ASSIGN_OR_RETURN(
      std::unique_ptr<Dataset> e,
      Dataset::Open(data.evaluation_path, graph, data.evaluation_options));
  data.evaluation = std::move(e);
  const Dataset& eval = *data.evaluation;
  if (eval.fixed_batch() > 0 &&
      eval.fixed_batch() != spec.calibration().batch_size()) {
    data.warnings.push_back(absl::StrCat(
        "the model fixes its batch (dim 0) at ", eval.fixed_batch(),
        ": every stage runs ", eval.fixed_batch(),
        " sample(s) at a time, not calibration.batch_size ",
        spec.calibration().batch_size()));
  }
  for (const Dataset* d : {data.calibration.get(), data.evaluation.get()}) {
    if (d != nullptr && d->dropped_samples() > 0) {
      data.warnings.push_back(absl::StrCat(
          d == data.evaluation.get() ? "evaluation" : "calibration",
          ": the last ", d->dropped_samples(),
          " sample(s) do not fill a batch of ", d->fixed_batch(),
          " (the model's fixed batch) and were not used"));
    }
  }
  return data;
}

}  // namespace quantd
