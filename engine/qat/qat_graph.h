// The training graph of quantization-aware training: the float graph with a
// quantd.FakeQuant node wherever the exported model will quantize (every
// weight and activation of the plan), so that training sees the rounding
// the deployed model does. Its forward pass equals the fake-quant (QDQ)
// simulation of the same plan; its weights and scales are initializers that
// the trainer updates, and ToPlan turns them back into a QuantizationPlan
// for export.
//
//   absl::StatusOr<TrainingGraph> t = BuildTrainingGraph(graph, plan);
//   ... train t->graph's initializers named in t->weights and t->scales ...
//   absl::StatusOr<QuantizationPlan> trained = t->ToPlan(plan);
#ifndef QUANTD_ENGINE_QAT_QAT_GRAPH_H_
#define QUANTD_ENGINE_QAT_QAT_GRAPH_H_

#include <map>
#include <set>
#include <string>

#include "absl/status/statusor.h"
#include "engine/ir/graph.h"
#include "engine/ir/quantization_plan.h"

namespace quantd {

struct TrainingGraph {
  Graph graph;
  // Float weights the optimizer updates (the plan's quantized weights and
  // the biases of their layers), by initializer name.
  std::set<std::string> weights;
  // Step sizes LSQ may learn: initializer name -> the plan entry it came
  // from ("w:<initializer>" or "a:<value>").
  std::map<std::string, std::string> scales;
  // Activations that share another's step (a MaxPool's output, its input):
  // value -> value.
  std::map<std::string, std::string> tied;

  // The plan with the trained weights (as updated_initializers) and scales.
  absl::StatusOr<QuantizationPlan> ToPlan(const QuantizationPlan& base) const;
};

// Dynamic activations are not supported in training (InvalidArgument).
absl::StatusOr<TrainingGraph> BuildTrainingGraph(const Graph& graph,
                                                 const QuantizationPlan& plan);

}  // namespace quantd

#endif  // QUANTD_ENGINE_QAT_QAT_GRAPH_H_
