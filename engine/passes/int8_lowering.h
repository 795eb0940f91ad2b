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
// Chaining (static activations): a value with a range that an int8 op
// produces stays u8 (engine/passes/int8_chaining.h): a QuantizedConv or
// QuantizedMatMul writes
// it requantized (attributes y_scale, y_zero_point), an Add of two u8
// values becomes quantd.QuantizedAdd, a MaxPool runs on u8, and int8
// readers take it as it is; other readers get it through one
// DequantizeLinear, as the QDQ graph's readers do. So the ranges decide
// where int8 regions begin and end: a static plan's activations, which
// engine/passes/int8_regions.h extends past the layers' inputs. Such values
// are never graph outputs.
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

#include <functional>
#include <limits>
#include <map>
#include <set>
#include <string>

#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/status/status.h"
#include "engine/ir/graph.h"
#include "engine/ir/quantization_plan.h"
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
// LowerToInt8 can quantize, and of the values that may extend int8 regions
// past them (engine/passes/int8_regions.h).
class ActivationRangeRecorder {
 public:
  explicit ActivationRangeRecorder(const Graph& graph);
  TensorHook Hook();
  // The layers' input ranges plus the int8 regions' values, as a static plan
  // over every quantizable layer would quantize them.
  RangeMap ranges() const;

 private:
  std::function<bool(const Node&)> IsLayer() const;

  Graph graph_;
  absl::flat_hash_set<std::string> layers_;  // quantizable nodes, by name
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
  // Keep values u8 between int8 ops (see the top); off, every int8 op
  // reads and writes f32.
  bool chain_quantized_outputs = true;
};

struct Int8LoweringStats {
  int convs = 0;
  int matmuls = 0;
  int relus_fused = 0;
  int skipped_without_range = 0;  // never with dynamic_activations
  int outputs_chained = 0;        // QuantizedConvs/MatMuls writing u8
  int adds_quantized = 0;         // Adds of two u8 values (QuantizedAdd)
  int pools_u8 = 0;               // MaxPools running on u8
  int dequantized = 0;            // u8 values some reader needs in f32
  int regions_started = 0;        // QuantizeLinears where a region begins
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

// The ranges a plan's static activations represent ([qmin - zp, qmax - zp]
// times the scale), for lowering the plan: ChooseU8Params gives back the
// plan's u8 parameters.
RangeMap PlanRanges(const std::map<std::string, QuantParams>& activations);

}  // namespace quantd

#endif  // QUANTD_ENGINE_PASSES_INT8_LOWERING_H_
