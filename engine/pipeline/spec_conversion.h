// From the job spec's protobuf enums to the engine's option structs.
//
//   v1::JobSpec spec = WithDefaults(raw);   // these read defaulted specs
//   WeightScheme w = WeightSchemeFromSpec(spec);
//   CalibrationOptions c = CalibrationOptionsFromSpec(spec);
#ifndef QUANTD_ENGINE_PIPELINE_SPEC_CONVERSION_H_
#define QUANTD_ENGINE_PIPELINE_SPEC_CONVERSION_H_

#include "engine/calibration/calibrator.h"
#include "engine/qat/qat_trainer.h"
#include "engine/quantization/weight_quantization.h"
#include "engine/quantization/weight_rounding.h"
#include "quantd/v1/job_spec.pb.h"

namespace quantd {

CalibrationOptions CalibrationOptionsFromSpec(const v1::JobSpec& spec);
WeightScheme WeightSchemeFromSpec(const v1::JobSpec& spec);
WeightSelection WeightSelectionFromSpec(const v1::JobSpec& spec);
RoundingConfig RoundingConfigFromSpec(const v1::JobSpec& spec);
// qat.distillation_weight left at 0 becomes 1 here; the train stage lowers
// it to 0.5 when the training data has labels.
QatOptions QatOptionsFromSpec(const v1::JobSpec& spec);

}  // namespace quantd

#endif  // QUANTD_ENGINE_PIPELINE_SPEC_CONVERSION_H_
