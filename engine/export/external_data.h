// ONNX external data on export: moves a model's large initializers out of
// the protobuf into one data file, as onnx.save(..., save_as_external_data=
// True) and ONNX Runtime's converters do. Protobuf cannot serialize a
// message past 2 GiB, so a model whose weights exceed that must be written
// this way; a model loaded with external data is written back the same way.
//
//   std::string data;
//   MoveToExternalData(&model, "model.quant.onnx.data", {}, &data);
//   // write model.SerializeAsString() and `data` side by side
//
// Each moved tensor's TensorProto keeps its name, type and dims and gets
// data_location = EXTERNAL with "location", "offset" and "length" entries.
// Offsets are multiples of ExternalDataOptions::alignment (a page by
// default, so a reader may mmap each tensor). Only tensors stored in
// raw_data move (quantd's exporter writes every tensor that way); a tensor in
// typed fields (float_data, ...) stays inline.
#ifndef QUANTD_ENGINE_EXPORT_EXTERNAL_DATA_H_
#define QUANTD_ENGINE_EXPORT_EXTERNAL_DATA_H_

#include <cstdint>
#include <string>

#include "absl/status/status.h"
#include "onnx/onnx_pb.h"

namespace quantd {

struct ExternalDataOptions {
  // Tensors smaller than this stay inline (scales, zero points, shapes):
  // ONNX's own default threshold.
  int64_t min_tensor_bytes = 1024;
  int64_t alignment = 4096;
};

// Appends the bytes of every initializer of `model` with at least
// options.min_tensor_bytes to `*data` and points the initializer at them.
// `location` is the data file's name relative to the model file; it must be
// a plain file name (no '/', not "." or ".."): the loaders of ONNX Runtime
// and quantd resolve it in the model's folder. Fails (InvalidArgument) on a
// bad location or an initializer that already has external data, and then
// leaves `model` and `*data` as they were.
absl::Status MoveToExternalData(onnx::ModelProto* model,
                                const std::string& location,
                                const ExternalDataOptions& options,
                                std::string* data);

}  // namespace quantd

#endif  // QUANTD_ENGINE_EXPORT_EXTERNAL_DATA_H_
