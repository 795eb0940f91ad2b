#include "engine/ir/onnx_data_types.h"

#include "absl/strings/str_cat.h"
#include "onnx/onnx_pb.h"

namespace quantd {

DataType DataTypeFromOnnx(int32_t onnx_type) {
  switch (onnx_type) {
    case onnx::TensorProto::FLOAT:
      return DataType::kFloat32;
    case onnx::TensorProto::FLOAT16:
      return DataType::kFloat16;
    case onnx::TensorProto::INT8:
      return DataType::kInt8;
    case onnx::TensorProto::UINT8:
      return DataType::kUInt8;
    case onnx::TensorProto::INT32:
      return DataType::kInt32;
    case onnx::TensorProto::INT64:
      return DataType::kInt64;
    case onnx::TensorProto::BOOL:
      return DataType::kBool;
    default:
      return DataType::kUndefined;
  }
}

int32_t DataTypeToOnnx(DataType type) {
  switch (type) {
    case DataType::kFloat32:
      return onnx::TensorProto::FLOAT;
    case DataType::kFloat16:
      return onnx::TensorProto::FLOAT16;
    case DataType::kInt8:
      return onnx::TensorProto::INT8;
    case DataType::kUInt8:
      return onnx::TensorProto::UINT8;
    case DataType::kInt32:
      return onnx::TensorProto::INT32;
    case DataType::kInt64:
      return onnx::TensorProto::INT64;
    case DataType::kBool:
      return onnx::TensorProto::BOOL;
    case DataType::kUndefined:
      break;
  }
  return onnx::TensorProto::UNDEFINED;
}

std::string OnnxDataTypeName(int64_t onnx_type) {
  if (onnx_type < INT32_MIN || onnx_type > INT32_MAX ||
      !onnx::TensorProto_DataType_IsValid(static_cast<int>(onnx_type))) {
    return absl::StrCat("code ", onnx_type);
  }
  return onnx::TensorProto_DataType_Name(
      static_cast<onnx::TensorProto_DataType>(onnx_type));
}

}  // namespace quantd
