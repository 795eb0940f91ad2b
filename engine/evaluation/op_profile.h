// Where a model's time goes, by op type: the executor's tensor hook marks
// the end of every node, and the time since the previous mark is the
// node's. `quantd run-model --profile` prints it for fp32 and quantized.
//
//   absl::StatusOr<std::vector<OpTime>> p = ProfileOps(*executor, feeds, 5);
//   for (const OpTime& t : *p) printf("%s %.3f ms\n", t.op_type, t.ms);
//
// Hooked runs take the executor's plain path (no layout planning, no
// fusion: executor.h), so convolution-heavy models profile slower than
// they run; transformer graphs run the same either way.
#ifndef QUANTD_ENGINE_EVALUATION_OP_PROFILE_H_
#define QUANTD_ENGINE_EVALUATION_OP_PROFILE_H_

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "engine/runtime/executor.h"

namespace quantd {

struct OpTime {
  std::string op_type;  // "MatMul", "quantd.WeightOnlyMatMul", ...
  double ms = 0;        // per run, summed over the type's nodes
  int nodes = 0;
};

// Mean per run over `repeats` runs after one warm-up run, most expensive
// first.
absl::StatusOr<std::vector<OpTime>> ProfileOps(Executor& executor,
                                               const TensorMap& feeds,
                                               int repeats);

}  // namespace quantd

#endif  // QUANTD_ENGINE_EVALUATION_OP_PROFILE_H_
