// One typed plan per job: the spec validated once, every default applied
// once, every DataRef resolved through one resolver, and the engine's option
// structs derived once. CreateJob (service), the job runner (service) and
// `quantd run-job` all make a job's plan with PlanJob and nothing else.
//
//   LocalPathResolver files;                        // run-job
//   absl::StatusOr<JobPlan> plan = PlanJob(spec, SpecOrigin::kBatch, files);
//   absl::StatusOr<PipelineResult> r = RunPipeline(*plan, progress, &cancel);
//
// The service passes its own resolver, which maps a blob digest to a file
// only when the calling tenant owns the blob (server/tenant_data_resolver.h).
#ifndef QUANTD_ENGINE_PIPELINE_JOB_PLAN_H_
#define QUANTD_ENGINE_PIPELINE_JOB_PLAN_H_

#include <functional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "engine/calibration/calibrator.h"
#include "engine/pipeline/job_spec.h"
#include "engine/qat/qat_trainer.h"
#include "engine/quantization/weight_quantization.h"
#include "engine/quantization/weight_rounding.h"
#include "quantd/v1/job_spec.pb.h"

namespace quantd {

// Turns a DataRef into a local file the engine may read. `field` is the
// DataRef's path in the spec ("qat.train_data"), for error messages.
class DataRefResolver {
 public:
  virtual ~DataRefResolver() = default;
  virtual absl::StatusOr<std::string> Resolve(
      const v1::DataRef& ref, absl::string_view field) const = 0;
};

// Batch mode: DataRef.path as the operator wrote it in the spec file. Blob
// digests are refused (there is no blob store without a server).
class LocalPathResolver : public DataRefResolver {
 public:
  absl::StatusOr<std::string> Resolve(const v1::DataRef& ref,
                                      absl::string_view field) const override;
};

// Every DataRef set in `spec`, by its field path ("model", "qat.train_data"),
// found by reflection over the message: a DataRef field added to the proto
// later is resolved (and so ownership-checked) without anyone remembering to.
std::vector<std::pair<std::string, const v1::DataRef*>> SetDataRefs(
    const v1::JobSpec& spec);

// Local files for the spec's DataRefs.
struct JobPaths {
  std::string model;
  std::string calibration;  // empty for weight-only jobs without algorithms
  std::string evaluation;   // empty: hold back part of the calibration set
  std::string train;        // QAT: qat.train_data; empty: calibration data
};

struct JobPlan {
  v1::JobSpec spec;  // validated, every default applied
  SpecOrigin origin = SpecOrigin::kBatch;
  JobPaths paths;
  // The spec in the engine's terms.
  WeightSelection selection;
  WeightScheme weights;
  CalibrationOptions calibration;
  RoundingConfig rounding;
  QatOptions qat;  // meaningful when is_qat()

  bool is_qat() const { return spec.method() == v1::METHOD_QAT; }
};

// Validates `spec` for `origin` (enums, ranges, combinations, DataRef forms),
// applies defaults, resolves every set DataRef through `resolver` and derives
// the option structs. Errors are InvalidArgument (or the resolver's own
// code, e.g. NotFound for a blob the tenant does not own) with a message
// that names the field.
absl::StatusOr<JobPlan> PlanJob(const v1::JobSpec& spec, SpecOrigin origin,
                                const DataRefResolver& resolver);

}  // namespace quantd

#endif  // QUANTD_ENGINE_PIPELINE_JOB_PLAN_H_
