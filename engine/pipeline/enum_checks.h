// Refuses enum values a message's schema does not define. proto3 enums are
// open: a client can send `mode: 99` and the generated code keeps it, so
// without this check a job silently falls into whatever branch a switch's
// default takes (mode 99 once left activations in float).
//
//   absl::Status s = CheckEnumFields(request.spec());
//   // InvalidArgument: "mode is 99; allowed: QUANT_MODE_UNSPECIFIED (0),
//   //  QUANT_MODE_STATIC (1), ..."
#ifndef QUANTD_ENGINE_PIPELINE_ENUM_CHECKS_H_
#define QUANTD_ENGINE_PIPELINE_ENUM_CHECKS_H_

#include "absl/status/status.h"
#include "google/protobuf/message.h"

namespace quantd {

// Walks every set field of `message`, nested messages and repeated fields
// included; the first enum value that is not defined fails, naming the field
// path ("weights.granularity") and the allowed values.
absl::Status CheckEnumFields(const google::protobuf::Message& message);

}  // namespace quantd

#endif  // QUANTD_ENGINE_PIPELINE_ENUM_CHECKS_H_
