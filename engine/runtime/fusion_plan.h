// Which consumers the executor may fold into a node in planned inference
// runs (executor.h): a node whose single output is read only by
//   Relu                       -> output = relu(op(x))
//   Add(output, other)         -> output = op(x) + other
//   Add(output, other) -> Relu -> output = relu(op(x) + other)
// (ResNet's block tail is the last one). The plan is structural; whether a
// node's kernel can do it for a run's shapes is asked at run time
// (OpKernel::SupportsTail), and a refused fusion runs the nodes unfused.
//
//   std::vector<std::optional<Fusion>> plan = PlanFusions(sorted_graph);
//   if (plan[i]) { ... plan[i]->folded are the nodes it replaces ... }
#ifndef QUANTD_ENGINE_RUNTIME_FUSION_PLAN_H_
#define QUANTD_ENGINE_RUNTIME_FUSION_PLAN_H_

#include <optional>
#include <string>
#include <vector>

#include "engine/ir/graph.h"

namespace quantd {

struct Fusion {
  std::string addend;               // the Add's other input; "" without an Add
  bool relu = false;                // a Relu follows (the node, or its Add)
  bool steal_addend = false;        // no node after this one reads the addend
                                    // but the Add: its buffer may be written
  std::vector<size_t> folded;       // the Add and/or Relu nodes replaced
  std::vector<std::string> hidden;  // values the fused node never writes
  std::string output;               // the last folded node's output
};

// One entry per node of `graph` (topologically sorted); nullopt where
// nothing can be folded. Only nodes whose op is in `fusable_ops` (OpKey
// form) are considered.
std::vector<std::optional<Fusion>> PlanFusions(
    const Graph& graph, const std::vector<std::string>& fusable_ops);

}  // namespace quantd

#endif  // QUANTD_ENGINE_RUNTIME_FUSION_PLAN_H_
