// Bytes -> the ONNX loader -> graph preparation, as a job's load and prepare
// stages do with an uploaded model (engine/pipeline/stage_prepare.cc). Every
// input must end in a Status; a crash, a sanitizer report or a leak is a
// bug.
#include <cstddef>
#include <cstdint>

#include "absl/strings/string_view.h"
#include "engine/onnx/model_loader.h"
#include "engine/passes/graph_cleanup.h"
#include "engine/runtime/op_registry.h"
#include "fuzz/fuzz_util.h"

extern "C" int LLVMFuzzerInitialize(int* argc, char*** argv) {
  quantd::fuzz::QuietLogging((*argv)[0]);
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  absl::string_view bytes(reinterpret_cast<const char*>(data), size);
  absl::StatusOr<quantd::LoadedModel> model = quantd::LoadModelFromBytes(bytes);
  if (!model.ok()) return 0;
  // Folding runs the ops' kernels on the model's constants: what a hostile
  // initializer can reach without any data.
  absl::Status prepared =
      quantd::PrepareGraph(model->graph, quantd::DefaultOpRegistry());
  if (!prepared.ok()) return 0;
  return 0;
}
