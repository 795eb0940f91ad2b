// Cuts a graph into consecutive segments at its narrowest points, so that a
// model can be run one segment at a time with only the values that cross a
// cut kept between segments: a decoder's residual stream (plus the masks and
// rotary tables every block reads) between blocks, a ResNet's single
// activation between residual stages. Sequential (block-by-block) GPTQ runs
// calibration this way (engine/pipeline/sequential_rounding.h).
//
//   std::vector<GraphSegment> segments = SplitAtNarrowestCuts(
//       graph, [&](const Node& n) { return layers.contains(n.name); });
//   TensorMap live = feeds;                       // the graph's inputs
//   for (const GraphSegment& s : segments) {
//     ... run s.graph on the `live` values named by s.graph.inputs ...
//     CarryLiveValues(s, run.outputs, &live);     // what the next one needs
//   }
//
// A cut is a position between two nodes (in the graph's topological order);
// the values live there are those produced before it (or graph inputs) and
// read after it (or graph outputs). Cuts are made only where that count is
// the smallest over the stretch between the first and the last marked node,
// and only where a marked node ("layer") lies since the previous cut, so
// every segment holds at least one layer. A graph without such a point (or
// with one layer) is a single segment: the whole graph.
#ifndef QUANTD_ENGINE_PASSES_GRAPH_SEGMENTS_H_
#define QUANTD_ENGINE_PASSES_GRAPH_SEGMENTS_H_

#include <functional>
#include <string>
#include <vector>

#include "engine/ir/graph.h"
#include "engine/runtime/executor.h"

namespace quantd {

struct GraphSegment {
  // The segment's nodes, with as inputs the values they read from earlier
  // segments or the graph's inputs, as outputs the values they produce that
  // later segments read (or that are graph outputs), and the initializers
  // they read (shared tensors, not copies).
  Graph graph;
  // Values live at the cut after this segment (inputs of later segments and
  // graph outputs), whichever segment produced them.
  std::vector<std::string> live_after;
};

std::vector<GraphSegment> SplitAtNarrowestCuts(
    const Graph& graph, const std::function<bool(const Node&)>& is_layer);

// After running `segment` on the values in `*live` (which hold its inputs),
// keeps in `*live` exactly the values live after it: those it carried over
// and its `outputs` (in segment.graph.outputs order).
void CarryLiveValues(const GraphSegment& segment, std::vector<Tensor> outputs,
                     TensorMap* live);

// The feeds of `segment` taken from `live` (shared tensors).
TensorMap SegmentFeeds(const GraphSegment& segment, const TensorMap& live);

}  // namespace quantd

#endif  // QUANTD_ENGINE_PASSES_GRAPH_SEGMENTS_H_
