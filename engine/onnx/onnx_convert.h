// Conversion between ONNX protobufs and the engine's Graph, with bounds on
// everything a hostile file could inflate.
//
//   ModelLimits limits;
//   absl::StatusOr<Tensor> t = TensorFromProto(proto, limits);
//   onnx::TensorProto back = TensorToProto(*t, "weight");
#ifndef QUANTD_ENGINE_ONNX_ONNX_CONVERT_H_
#define QUANTD_ENGINE_ONNX_ONNX_CONVERT_H_

#include <cstdint>
#include <string>

#include "absl/status/statusor.h"
#include "engine/ir/graph.h"
#include "engine/ir/onnx_data_types.h"
#include "kernels/tensor.h"
#include "onnx/onnx_pb.h"

namespace quantd {

struct ModelLimits {
  // Protobuf cannot parse messages of 2 GiB or more anyway.
  int64_t max_model_bytes = (int64_t{2} << 30) - 1;
  int64_t max_tensor_elements = int64_t{1} << 31;
  int64_t max_total_constant_bytes = int64_t{8} << 30;
  int64_t max_nodes = 200000;
  int64_t max_rank = 8;
};

// `what` names the tensor in error messages ("initializer 'fc.weight'").
// Float tensors containing NaN are refused (a NaN weight poisons every
// output); +-Inf is allowed, since attention masks legitimately use it.
absl::StatusOr<Tensor> TensorFromProto(const onnx::TensorProto& proto,
                                       const ModelLimits& limits,
                                       const std::string& what);
// The checks TensorFromProto makes (type, size, declared vs stored length,
// NaN), without copying the data: run on every initializer before handing
// the model to ONNX's checker, so errors name the tensor precisely.
absl::Status ValidateTensorProto(const onnx::TensorProto& proto,
                                 const ModelLimits& limits,
                                 const std::string& what);

onnx::TensorProto TensorToProto(const Tensor& tensor, const std::string& name);

// The tensor a graph holds as a constant under `name`: an initializer, or
// the `value` (or `value_ints`) of a Constant node; NOT_FOUND otherwise.
// For rewrites that read constant operands before the model is converted
// (Resize scales, Reduce axes). Bounded by the default ModelLimits.
absl::StatusOr<Tensor> ConstantTensor(const onnx::GraphProto& graph,
                                      const std::string& name);

ValueInfo ValueInfoFromProto(const onnx::ValueInfoProto& proto);
onnx::ValueInfoProto ValueInfoToProto(const ValueInfo& info);

// Builds a Graph from a model whose external data is already inlined.
// Attributes missing from a node are filled from the ONNX op schema's
// defaults for the model's opset.
//
// The rvalue overload frees each initializer's data in `model` as soon as it
// is converted, so that loading holds the weights once, not twice (a 649 MB
// model peaked at 1.8 GB before).
absl::StatusOr<Graph> GraphFromModelProto(onnx::ModelProto&& model,
                                          const ModelLimits& limits);
absl::StatusOr<Graph> GraphFromModelProto(const onnx::ModelProto& model,
                                          const ModelLimits& limits);

// Writes a graph as a model in the given opset; `producer` goes into
// producer_name.
onnx::ModelProto GraphToModelProto(const Graph& graph, int64_t ir_version,
                                   const std::string& producer);

}  // namespace quantd

#endif  // QUANTD_ENGINE_ONNX_ONNX_CONVERT_H_
