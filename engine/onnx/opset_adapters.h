// quantd's own adaptations between ONNX opsets, for what ONNX 1.12 (Debian
// 12's) cannot do: its version converter fails on some old models, and it
// knows no opset past 17. The loader (model_loader.cc) applies them to the
// ModelProto before ONNX's checker, converter and shape inference, so all of
// those, and everything after them, see opset <= 17.
//
//   // Opset 9..12 model whose converter run threw:
//   int rewritten = RewriteOldSoftmax(model);   // then convert again
//
//   // Opset 18..23 model:
//   absl::StatusOr<std::string> note = LowerToOpset17(model);
//   // note: "lowered opset 18 to 17: ReduceMean x12 (axes input -> ...)"
#ifndef QUANTD_ENGINE_ONNX_OPSET_ADAPTERS_H_
#define QUANTD_ENGINE_ONNX_OPSET_ADAPTERS_H_

#include <string>

#include "absl/status/statusor.h"
#include "onnx/onnx_pb.h"

namespace quantd {

// The newest opset LowerToOpset17 reads.
inline constexpr int64_t kMaxLowerableOpset = 23;

// Before opset 13, Softmax, LogSoftmax and Hardmax (axis a, default 1)
// normalize over the input flattened to 2-D at a. ONNX's 12->13 adapter
// needs the input's shape to express that and throws on dynamic exports
// (onnx/onnx#4101); it also writes symbolic dims as -1 into a Reshape,
// which breaks with two of them. This rewrites each such node of the main
// graph as Flatten(axis=a) -> op(axis=1) -> Reshape(Shape(x)), declaring
// the Flatten output as rank 2, which the adapter handles (axis 1 is the
// last). Returns the number of nodes rewritten. Negative axes need
// opset >= 11 Flatten; nodes with one at older opsets are left alone.
int RewriteOldSoftmax(onnx::ModelProto& model);

// Rewrites a model of opset 18..kMaxLowerableOpset into opset 17 with the
// same meaning: axes inputs of the Reduce ops back to attributes (they must
// be constants), Split's num_outputs to explicit sizes where it divides
// evenly, attributes of later versions that keep their opset-17 meaning at
// their default values dropped (Resize antialias, AveragePool dilations,
// Cast saturate, ...), Gelu (20) and RMSNormalization (23) decomposed into
// opset-17 ops. Ops whose new meaning opset 17 cannot express are refused
// with the node and the reason. On success the model imports opset 17 and
// the returned note says what was done, for the job report.
absl::StatusOr<std::string> LowerToOpset17(onnx::ModelProto& model);

}  // namespace quantd

#endif  // QUANTD_ENGINE_ONNX_OPSET_ADAPTERS_H_
