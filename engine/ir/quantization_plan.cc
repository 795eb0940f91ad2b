#include "engine/ir/quantization_plan.h"

namespace quantd {

int32_t QuantTypeMin(QuantType type) {
  switch (type) {
    case QuantType::kInt8:
      return -128;
    case QuantType::kUInt8:
      return 0;
    case QuantType::kInt4:
      return -8;
    case QuantType::kUInt4:
      return 0;
  }
  return 0;
}

int32_t QuantTypeMax(QuantType type) {
  switch (type) {
    case QuantType::kInt8:
      return 127;
    case QuantType::kUInt8:
      return 255;
    case QuantType::kInt4:
      return 7;
    case QuantType::kUInt4:
      return 15;
  }
  return 0;
}

const char* QuantTypeName(QuantType type) {
  switch (type) {
    case QuantType::kInt8:
      return "int8";
    case QuantType::kUInt8:
      return "uint8";
    case QuantType::kInt4:
      return "int4";
    case QuantType::kUInt4:
      return "uint4";
  }
  return "invalid";
}

DataType QuantHolderType(QuantType type) {
  return type == QuantType::kInt8 || type == QuantType::kInt4
             ? DataType::kInt8
             : DataType::kUInt8;
}

int CodeBits(QuantType type) {
  return type == QuantType::kInt4 || type == QuantType::kUInt4 ? 4 : 8;
}

}  // namespace quantd
