// Loading ONNX models: from bytes (an upload) or from a file (which may keep
// large weights in external-data files beside it). Everything is bounded and
// checked; a corrupt, truncated or hostile model yields a Status, never a
// crash.
//
//   absl::StatusOr<LoadedModel> m = LoadModelFromFile("model.onnx");
//   if (!m.ok()) return m.status();   // e.g. "unsupported ops: Loop (x1)"
//   Graph& g = m->graph;              // checked, converted, sorted
#ifndef QUANTD_ENGINE_ONNX_MODEL_LOADER_H_
#define QUANTD_ENGINE_ONNX_MODEL_LOADER_H_

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "engine/ir/graph.h"
#include "engine/onnx/onnx_convert.h"
#include "engine/runtime/op_registry.h"

namespace quantd {

// The opset the executor implements. Older models are converted up to it
// (ONNX's version converter, helped by RewriteOldSoftmax); opsets 18 to
// kMaxLowerableOpset are lowered to it by quantd (opset_adapters.h), because
// ONNX 1.12, Debian 12's, knows opsets up to 17.
inline constexpr int64_t kTargetOpset = 17;
inline constexpr int64_t kMinSupportedOpset = 7;

struct LoadOptions {
  ModelLimits limits;
  // Convert older opsets up to kTargetOpset with ONNX's version converter.
  // A model it cannot convert is refused (the QDQ export needs opset >= 13).
  // Off: the model keeps its opset and the op kernels implement the older
  // semantics (run-model and tests of old op versions).
  bool convert_opset = true;
  // Fail when the model uses ops the registry lacks.
  bool check_ops = true;
  const OpRegistry* registry = nullptr;  // nullptr: DefaultOpRegistry()
};

struct LoadedModel {
  Graph graph;
  int64_t source_opset = 0;  // the opset the file declared
  int64_t ir_version = 0;
  std::string producer;  // e.g. "pytorch 1.13.1"
  // What quantd did to the model's opset beyond ONNX's converter (lowered
  // opset 18+, rewrote old Softmax), for the job report; empty otherwise.
  std::string conversion_note;
  // Bytes read from external data files (weights kept beside the .onnx
  // file, as exporters write models over 2 GB): with the file's own size,
  // the model's size on disk.
  int64_t external_data_bytes = 0;
};

// Loads a model from memory. External data is refused: there is no folder to
// resolve it against.
absl::StatusOr<LoadedModel> LoadModelFromBytes(absl::string_view bytes,
                                               const LoadOptions& options = {});

// Loads a model file. External-data references must name regular files
// inside the model's own folder; paths that leave it (absolute, "..",
// symlinks pointing out) are refused.
absl::StatusOr<LoadedModel> LoadModelFromFile(const std::string& path,
                                              const LoadOptions& options = {});

// Reads a whole file of at most `max_bytes`.
absl::StatusOr<std::string> ReadFileBounded(const std::string& path,
                                            int64_t max_bytes);

}  // namespace quantd

#endif  // QUANTD_ENGINE_ONNX_MODEL_LOADER_H_
