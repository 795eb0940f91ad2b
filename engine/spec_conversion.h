// From the job spec's protobuf enums to the engine's option structs.
//
//   v1::JobSpec spec = WithDefaults(raw);
//   WeightScheme w = WeightSchemeFromSpec(spec);
//   CalibrationOptions c = CalibrationOptionsFromSpec(spec);
#ifndef QUANTD_ENGINE_SPEC_CONVERSION_H_
#define QUANTD_ENGINE_SPEC_CONVERSION_H_

#include "engine/calibrator.h"
#include "engine/weight_quantization.h"
#include "quantd/v1/job_spec.pb.h"

namespace quantd {

CalibrationOptions CalibrationOptionsFromSpec(const v1::JobSpec& spec);
WeightScheme WeightSchemeFromSpec(const v1::JobSpec& spec);

}  // namespace quantd

#endif  // QUANTD_ENGINE_SPEC_CONVERSION_H_
