// Reading and checking job specs (proto/quantd/v1/job_spec.proto).
//
//   absl::StatusOr<v1::JobSpec> spec = ParseJobSpecJson(json_text);
//   absl::Status ok = ValidateJobSpec(*spec, SpecOrigin::kBatch);
//   v1::JobSpec resolved = WithDefaults(*spec);
#ifndef QUANTD_ENGINE_PIPELINE_JOB_SPEC_H_
#define QUANTD_ENGINE_PIPELINE_JOB_SPEC_H_

#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "quantd/v1/job_spec.pb.h"

namespace quantd {

// Specs larger than this are refused before parsing.
inline constexpr size_t kMaxJobSpecBytes = 1 << 20;

// Parses protobuf JSON. Unknown fields are errors (a typo should not be
// silently ignored), and the message names the problem.
absl::StatusOr<v1::JobSpec> ParseJobSpecJson(absl::string_view json);
absl::StatusOr<std::string> JobSpecToJson(const v1::JobSpec& spec);

enum class SpecOrigin {
  kBatch,    // quantd run-job: local paths allowed
  kService,  // CreateJob: only uploaded blobs
};

// Checks a spec for everything that can be checked without the model and
// data: required fields, ranges, combinations. Messages say what to fix
// ("calibration.percentile must be in (0, 100], got 120").
absl::Status ValidateJobSpec(const v1::JobSpec& spec, SpecOrigin origin);

// The spec with every unset field given its documented default.
v1::JobSpec WithDefaults(const v1::JobSpec& spec);

}  // namespace quantd

#endif  // QUANTD_ENGINE_PIPELINE_JOB_SPEC_H_
