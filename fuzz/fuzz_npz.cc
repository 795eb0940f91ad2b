// Bytes -> the .npy header parser, the .npy/.npz reader (whole arrays and
// row streams) and Dataset::Open/Next against two small models: one float
// image input, one language model (int64 input_ids), as calibration and
// evaluation data are read. ArrayFile reads files only, so each input is
// written to one scratch file.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <memory>
#include <optional>
#include <string>

#include "absl/strings/string_view.h"
#include "engine/data/array_file.h"
#include "engine/data/dataset.h"
#include "engine/data/npy.h"
#include "fuzz/fuzz_util.h"

namespace quantd {
namespace {

// Bounds that keep one input's work small: a header may declare a huge
// array; the reader must refuse it or fail at the end of the file.
constexpr int64_t kMaxElements = int64_t{1} << 20;
constexpr int kMaxArrays = 8;
constexpr int kMaxBatches = 64;

Graph ImageModel() {
  Graph g;
  ValueInfo x{.name = "x", .dtype = DataType::kFloat32, .has_shape = true};
  x.shape = {-1, 2, 3};
  g.inputs.push_back(x);
  return g;
}

constexpr char kTokens[] = "input_ids";

Graph LanguageModel() {
  Graph g;
  ValueInfo ids{.name = kTokens, .dtype = DataType::kInt64, .has_shape = true};
  ids.shape = {-1, -1};
  g.inputs.push_back(ids);
  return g;
}

void ReadArrays(const std::string& path) {
  absl::StatusOr<std::unique_ptr<ArrayFile>> file = ArrayFile::Open(path);
  if (!file.ok()) return;
  int arrays = 0;
  for (const std::string& name : (*file)->names()) {
    if (++arrays > kMaxArrays) break;
    if (!(*file)->ReadArray(name, kMaxElements).ok()) continue;
    absl::StatusOr<std::unique_ptr<ArrayStream>> s = (*file)->OpenStream(name);
    if (!s.ok()) continue;
    for (int i = 0; i < kMaxBatches; ++i) {
      absl::StatusOr<Tensor> rows = (*s)->ReadRows(3);
      if (!rows.ok() || rows->dim(0) == 0) break;
    }
    if ((*s)->Rewind().ok() && !(*s)->ReadRows(1).ok()) continue;
  }
}

void ReadDataset(const std::string& path, const Graph& graph, OutputTask task) {
  DatasetOptions options{.batch_size = 3, .first_sample = 1};
  options.task = task;
  if (task == OutputTask::kLanguageModel) options.token_input = kTokens;
  absl::StatusOr<std::unique_ptr<Dataset>> d =
      Dataset::Open(path, graph, options);
  if (!d.ok()) return;
  for (int i = 0; i < kMaxBatches; ++i) {
    absl::StatusOr<std::optional<DataBatch>> b = (*d)->Next();
    if (!b.ok() || !b->has_value()) break;
  }
}

}  // namespace
}  // namespace quantd

extern "C" int LLVMFuzzerInitialize(int* argc, char*** argv) {
  quantd::fuzz::QuietLogging((*argv)[0]);
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  absl::string_view bytes(reinterpret_cast<const char*>(data), size);
  int64_t needed = 0;
  absl::StatusOr<quantd::NpyHeader> h = quantd::ParseNpyHeader(bytes, &needed);
  // A header the parser accepts lies within the bytes it was given and
  // declares no negative dimension; the reader relies on both.
  if (h.ok()) {
    if (h->header_bytes <= 0 || h->header_bytes > static_cast<int64_t>(size)) {
      std::abort();
    }
    for (int64_t d : h->shape) {
      if (d < 0) std::abort();
    }
  }
  static const std::string path = quantd::fuzz::ScratchDir() + "/input";
  quantd::fuzz::WriteFileOrDie(path, data, size);
  quantd::ReadArrays(path);
  static const quantd::Graph image = quantd::ImageModel();
  static const quantd::Graph lm = quantd::LanguageModel();
  quantd::ReadDataset(path, image, quantd::OutputTask::kClassification);
  quantd::ReadDataset(path, lm, quantd::OutputTask::kLanguageModel);
  return 0;
}
