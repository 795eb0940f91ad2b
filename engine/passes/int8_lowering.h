// Lowering a float graph to quantd's int8 ops: Conv, Gemm and MatMul nodes
// with constant weights become quantd.QuantizedConv / quantd.QuantizedMatMul,
// which run on oneDNN's int8 kernels, given a range for each of their
// activation inputs. A following Relu is fused into the int8 op.
//
//   ActivationRangeRecorder recorder(graph);       // min/max per activation
//   RunOptions opts; opts.tensor_hook = recorder.Hook();
//   executor->Run(feeds, opts);                    // over calibration data
//   Int8LoweringStats stats;
//   absl::Status s = LowerToInt8(graph, recorder.ranges(), {}, &stats);
//
// Chaining (static activations): a QuantizedConv whose output only static
// QuantizedConvs read (as their input 0) writes that output as u8, quantized
// with their x_scale and x_zero_point (attributes y_scale, y_zero_point),
// and the readers take it as it is: no f32 write and no quantize pass
// between consecutive int8 convs, as ONNX Runtime's QDQ graph has one
// QuantizeLinear there. Such values are u8 in the lowered graph; they are
// never graph outputs.
//
// Dynamic activations need no calibration: every eligible node quantizes its
// input per run from the input's own range (DynamicQuantizeLinear's u8
// parameters; see engine/runtime/ops/quantized_ops.cc).
//
//   Int8LoweringOptions dyn;
//   dyn.dynamic_activations = true;
//   absl::Status s = LowerToInt8(graph, /*ranges=*/{}, dyn, &stats);
#ifndef QUANTD_ENGINE_PASSES_INT8_LOWERING_H_
#define QUANTD_ENGINE_PASSES_INT8_LOWERING_H_

#include <limits>
#include <set>
#include <string>

#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/status/status.h"
#include "engine/ir/graph.h"
#include "engine/runtime/executor.h"

namespace quantd {

struct TensorRange {
  float min = std::numeric_limits<float>::infinity();
  float max = -std::numeric_limits<float>::infinity();
  bool valid() const { return min <= max; }
  void Update(const Tensor& t);  // f32 only; NaNs are ignored
};
using RangeMap = absl::flat_hash_map<std::string, TensorRange>;

// Records the running min/max of the activation inputs of every node that
// LowerToInt8 can quantize.
class ActivationRangeRecorder {
 public:
  explicit ActivationRangeRecorder(const Graph& graph);
  TensorHook Hook();
  const RangeMap& ranges() const { return ranges_; }

 private:
  absl::flat_hash_set<std::string> watched_;
  RangeMap ranges_;
};

struct Int8LoweringOptions {
  // Largest |q| of int8 weights; 0 means MaxExactInt8WeightMagnitude(), the
  // largest that this CPU's int8 kernels compute exactly (127 with VNNI,
  // 64 without).
  int32_t weight_qmax = 0;
  bool fuse_relu = true;
  std::set<std::string> excluded_nodes;
  // Every eligible, non-excluded node gets dynamic_x = 1: its activation is
  // quantized per run, as ONNX's DynamicQuantizeLinear does, and `ranges`
  // is not consulted.
  bool dynamic_activations = false;
  // Chain u8 outputs between static QuantizedConvs (see the top).
  bool chain_quantized_outputs = true;
};

struct Int8LoweringStats {
  int convs = 0;
  int matmuls = 0;
  int relus_fused = 0;
  int skipped_without_range = 0;  // never with dynamic_activations
  int outputs_chained = 0;        // QuantizedConvs writing u8
};

// True for nodes LowerToInt8 would quantize (Conv; Gemm with alpha = beta =
// 1, no transA and a 1-D or absent C; MatMul with 2-D weights), provided
// their weights (and bias) are constant f32 initializers.
bool IsInt8Quantizable(const Graph& graph, const Node& node);

absl::Status LowerToInt8(Graph& graph, const RangeMap& ranges,
                         const Int8LoweringOptions& options = {},
                         Int8LoweringStats* stats = nullptr);

// Per-tensor asymmetric u8 parameters covering [min(lo, 0), max(hi, 0)].
void ChooseU8Params(const TensorRange& range, float* scale,
                    int32_t* zero_point);

}  // namespace quantd

#endif  // QUANTD_ENGINE_PASSES_INT8_LOWERING_H_
