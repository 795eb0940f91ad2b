// Int8 regions: which activations a static int8 plan quantizes besides the
// inputs of its quantized layers, so that int8 runs from one layer to the
// next without leaving u8 (issue 12's "an int8 graph, not int8 ops"). The
// same rules make the QDQ export's QuantizeLinear nodes and the int8
// lowering's u8 values, so quantd's int8 run computes what ONNX Runtime
// computes on the artifact (which needs a QuantizeLinear after a Conv to
// fuse it into QLinearConv, and around an Add for QLinearAdd).
//
// The "tail" of a node is its output, or the output of a Relu that is the
// output's only reader (the int8 kernels fuse that Relu). The rules:
//   - the tail of a quantized layer is quantized when every reader of it is
//     an int8 reader: a quantized layer (input 0), an Add whose two operands
//     can both be quantized, or a MaxPool;
//   - an Add whose two operands are quantized: its tail, by the same test;
//   - a MaxPool whose input is quantized: its output, with the input's
//     parameters (the max of quantized values is one of them, so this adds
//     no error), replacing any parameters of its own.
// Graph outputs are never added. Tails need calibrated ranges; MaxPool
// outputs do not.
//
//   auto is_layer = [&](const Node& n) { return quantized.contains(n.name); };
//   std::set<std::string> more = Int8RegionCandidates(graph, is_layer);
//   ... calibrate `more` with the layer inputs ...
//   for (const Int8RegionValue& v :
//        ExtendInt8Regions(graph, is_layer, calibrated, quantized_values)) {
//     plan.activations[v.name] = v.same_as.empty() ? params.at(v.name)
//                                                  :
//                                                  plan.activations[v.same_as];
//   }
#ifndef QUANTD_ENGINE_PASSES_INT8_REGIONS_H_
#define QUANTD_ENGINE_PASSES_INT8_REGIONS_H_

#include <functional>
#include <set>
#include <string>
#include <vector>

#include "engine/ir/graph.h"

namespace quantd {

using NodePredicate = std::function<bool(const Node&)>;
using ValuePredicate = std::function<bool(const std::string&)>;

// Values the rules may quantize if `quantized_layer` layers are quantized:
// what calibration should observe besides the layers' inputs (which are not
// included). MaxPool outputs are not included (they need no range).
std::set<std::string> Int8RegionCandidates(
    const Graph& graph, const NodePredicate& quantized_layer);

struct Int8RegionValue {
  std::string name;
  std::string same_as;  // a MaxPool's input; empty: use name's own range
};

// The values to quantize besides `quantized` (the layers' inputs), in graph
// order. `calibrated` says whether a value has a range; tails without one
// are skipped.
std::vector<Int8RegionValue> ExtendInt8Regions(
    const Graph& graph, const NodePredicate& quantized_layer,
    const ValuePredicate& calibrated, const std::set<std::string>& quantized);

}  // namespace quantd

#endif  // QUANTD_ENGINE_PASSES_INT8_REGIONS_H_
