// Export of a float Graph plus its QuantizationPlan as a QDQ ONNX model:
// QuantizeLinear -> DequantizeLinear pairs on activations, and quantized
// integer initializers read through DequantizeLinear for weights. This is
// the format ONNX Runtime, OpenVINO and TensorRT turn into integer kernels.
// Dynamic activations (plan.dynamic_activations) get DynamicQuantizeLinear
// -> DequantizeLinear instead, the three outputs (y, y_scale, y_zero_point)
// feeding the DequantizeLinear: the form ONNX Runtime's quantize_dynamic
// writes in QDQ format. ORT's optimizer fuses it with a following MatMul
// into a dynamically quantized integer kernel (engine/export/qdq_ort_test.cc
// checks both ORT paths against quantd).
//
//   QdqExportOptions options;
//   absl::StatusOr<std::string> bytes =
//       ExportQdqModelBytes(graph, plan, options);   // model.onnx contents
//
// What the export does:
//   - Graph inputs and outputs keep their names. An activation (static or
//     dynamic) that is a graph output keeps its name on the DequantizeLinear
//     output; the float value its producer writes is renamed.
//   - Static activations: scale and zero point are initializers. Dynamic
//     activations: DynamicQuantizeLinear computes them per run (u8,
//     asymmetric, from the batch's min/max; opset 11, so any export opset).
//   - Weights are quantized here (round half to even, clamped to the plan's
//     [qmin, qmax]) from plan.updated_initializers when present, else from
//     the graph's float initializer, which is then dropped. Scales and zero
//     points become initializers (zero points are always written, zeros for
//     symmetric parameters).
//   - int8/uint8 per tensor and per channel use opset 13 DequantizeLinear
//     (`axis`); per-group parameters and int4/uint4 need opset 21 (blocked
//     DequantizeLinear with `block_size`, 4-bit initializers with TensorProto
//     data_type INT4 = 22 / UINT4 = 21, two values per byte, low nibble
//     first). The model's opset is max(graph opset, 13), or 21 (IR 10) when
//     anything needs it. Raising a graph to opset 21 rewrites the ops whose
//     form changed in opset 18: Reduce* `axes` attribute -> input, and Split
//     without a `split` input gets `num_outputs`. (Other changes in opsets
//     18-21 only add attributes or types.)
//   - Biases (input 2 of Conv and Gemm) stay float even when listed in
//     plan.weights: ONNX Runtime fuses QDQ patterns with float biases.
//   - Nodes in plan.float_nodes read their float weights (a weight shared
//     with quantized nodes keeps its float initializer for them).
//   - Every new name comes from Graph::UniqueName; output is deterministic.
//
// ONNX 1.12 (Debian 12's) has no opset-21 schemas, so its checker cannot
// validate int4 exports; int8 exports pass onnx::checker::check_model.
#ifndef QUANTD_ENGINE_EXPORT_QDQ_EXPORT_H_
#define QUANTD_ENGINE_EXPORT_QDQ_EXPORT_H_

#include <map>
#include <set>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "engine/export/external_data.h"
#include "engine/ir/graph.h"
#include "engine/ir/quantization_plan.h"
#include "onnx/onnx_pb.h"

namespace quantd {

// ONNX TensorProto data types that ONNX 1.12's enum lacks.
inline constexpr int32_t kOnnxUInt4 = 21;
inline constexpr int32_t kOnnxInt4 = 22;

// Protobuf refuses to serialize a message of 2 GiB or more.
inline constexpr int64_t kProtobufMaxBytes = (int64_t{2} << 30) - 1;

struct QdqExportOptions {
  std::string producer_name = "quantd";
  std::string producer_version;
  // ExportQdqModelFiles only. With a location (a file name beside the
  // model), the weights go to that file when prefer_external_data is set
  // (the source model kept its weights outside) or when the model would not
  // fit in one protobuf (more than max_inline_bytes); without one, such a
  // model fails to export (ResourceExhausted).
  std::string external_data_location;
  bool prefer_external_data = false;
  int64_t max_inline_bytes = kProtobufMaxBytes;
  ExternalDataOptions external_data;
  // BuildQdqGraph for quantd's own executor only (evaluation's
  // FakeQuantExecutor), never for a file: 4-bit codes the plan holds stay
  // two per byte in their initializer, read by a quantd.DequantizePackedCodes
  // node (engine/ir/weight_codes.h) instead of DequantizeLinear, so the
  // graph holds them at half a byte per weight, not one.
  bool packed_code_nodes = false;
};

// The files of an exported model.
struct ExportedModel {
  std::string model_bytes;  // the .onnx file
  // The file named by QdqExportOptions::external_data_location; empty when
  // the model is self-contained.
  std::string external_data;
};

// The exported graph before it becomes a protobuf: runnable by quantd's own
// executor (4-bit values are held in s8/u8 tensors, which quantd's
// Quantize/DequantizeLinear kernels accept), which is how tests check int4
// exports that the loader's opset range (<= 17) cannot read back. Caveat:
// quantd's Reduce* kernels (other than ReduceSum) read `axes` only from the
// attribute, so an opset-21 graph with rewritten Reduce* nodes does not run
// correctly in quantd (ONNX Runtime runs it).
struct QdqGraph {
  Graph graph;
  // Initializers to write as 4-bit tensors (INT4 for s8 holders, UINT4 for
  // u8 holders).
  std::set<std::string> four_bit_initializers;
  // Output of each weight's DequantizeLinear -> the float weight it stands
  // for (the fake-quant executor shares the plan's on-grid weights).
  std::map<std::string, std::string> dequantized_weights;
  int64_t ir_version = 8;
};

// Checks the plan against the graph without exporting: every name exists
// and has the right kind (activation or float initializer), no value is both
// a static and a dynamic activation, parameters have
// counts matching the tensor's dims, scales are positive and finite, zero
// points lie in [qmin, qmax] within the type's range, group sizes divide the
// grouped dimension. Errors are InvalidArgument naming the tensor.
absl::Status ValidateQuantizationPlan(const Graph& graph,
                                      const QuantizationPlan& plan);

// The export functions take the graph by value (its tensors are shared, so a
// copy is cheap). A caller that moves its graph in, and holds the float
// weights nowhere else, has each quantized layer's float weight freed as its
// integer initializer replaces it: a job's last stage exports that way.
absl::StatusOr<QdqGraph> BuildQdqGraph(Graph graph,
                                       const QuantizationPlan& plan,
                                       const QdqExportOptions& options = {});

absl::StatusOr<onnx::ModelProto> ExportQdqModel(
    Graph graph, const QuantizationPlan& plan,
    const QdqExportOptions& options = {});

// ExportQdqModel serialized, with its weights in an external data file when
// the options say so (see QdqExportOptions). Peak memory is about the model
// once, plus its serialized bytes when it is self-contained: the quantized
// tensors are freed as they become protobuf, and each moves to the data
// buffer as it is written there.
absl::StatusOr<ExportedModel> ExportQdqModelFiles(
    Graph graph, const QuantizationPlan& plan, const QdqExportOptions& options);

// ExportQdqModel serialized as one self-contained .onnx file.
absl::StatusOr<std::string> ExportQdqModelBytes(
    Graph graph, const QuantizationPlan& plan,
    const QdqExportOptions& options = {});

}  // namespace quantd

#endif  // QUANTD_ENGINE_EXPORT_QDQ_EXPORT_H_
