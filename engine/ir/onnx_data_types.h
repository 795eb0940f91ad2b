// ONNX's tensor element-type codes (TensorProto.DataType) and the engine's
// DataType. In ir/ rather than onnx/ because ops need them too (Cast's `to`
// attribute is such a code), and ops must not depend on the ONNX loader.
//
//   DataType t = DataTypeFromOnnx(onnx::TensorProto::FLOAT);  // kFloat32
//   int32_t code = DataTypeToOnnx(DataType::kInt8);           // INT8
#ifndef QUANTD_ENGINE_IR_ONNX_DATA_TYPES_H_
#define QUANTD_ENGINE_IR_ONNX_DATA_TYPES_H_

#include <cstdint>
#include <string>

#include "kernels/tensor.h"

namespace quantd {

// Maps an ONNX TensorProto_DataType to ours; kUndefined if unsupported.
DataType DataTypeFromOnnx(int32_t onnx_type);
int32_t DataTypeToOnnx(DataType type);

// The ONNX name of a type code ("FLOAT", "BFLOAT16"), or "code N" for a
// value ONNX does not define: for error messages.
std::string OnnxDataTypeName(int64_t onnx_type);

}  // namespace quantd

#endif  // QUANTD_ENGINE_IR_ONNX_DATA_TYPES_H_
