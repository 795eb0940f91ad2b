// Helpers shared by the QDQ export and its plan validation; not part of the
// export room's interface.
#ifndef QUANTD_ENGINE_EXPORT_QDQ_INTERNAL_H_
#define QUANTD_ENGINE_EXPORT_QDQ_INTERNAL_H_

#include "engine/ir/quantization_plan.h"

namespace quantd {

inline bool IsFourBit(QuantType t) {
  return t == QuantType::kInt4 || t == QuantType::kUInt4;
}

}  // namespace quantd

#endif  // QUANTD_ENGINE_EXPORT_QDQ_INTERNAL_H_
