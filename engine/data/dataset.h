// Datasets for calibration and evaluation: an .npz (or .npy for a
// single-input model) with one array per model input, keyed by the input's
// name, leading axis = samples, and an optional `label` array of class ids.
// Batches are streamed from the file, so memory does not depend on the
// dataset's length.
//
// The task (what the model's first output means, chosen by the job:
// engine/evaluation/evaluation_task.h) travels with the dataset, so every
// evaluation over it computes the task's metrics. Language models: the
// rows of the token input (an int64 rank-2 input named by the options, never
// guessed from a name) hold T+1 tokens; each batch feeds the first T and
// carries the last T as next-token targets (perplexity).
//
// Fixed batch: a model whose inputs fix dim 0 (exports for streaming often
// take exactly one sample) gets batches of exactly that size, whatever
// batch_size asks, so every stage (calibration, evaluation, the latency
// benchmark, QAT) can run it; a tail that does not fill a batch is dropped
// and counted in dropped_samples().
//
//   absl::StatusOr<std::unique_ptr<Dataset>> d =
//       Dataset::Open("calib.npz", graph, {.batch_size = 32});
//   while (true) {
//     absl::StatusOr<std::optional<DataBatch>> b = (*d)->Next();
//     if (!b.ok()) return b.status();
//     if (!b->has_value()) break;
//     executor->Run((*b)->feeds);
//   }
#ifndef QUANTD_ENGINE_DATA_DATASET_H_
#define QUANTD_ENGINE_DATA_DATASET_H_

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "engine/data/array_file.h"
#include "engine/ir/graph.h"
#include "engine/runtime/executor.h"

namespace quantd {

inline constexpr char kLabelArray[] = "label";

// What a model's first output means (v1::EvaluationTask without the proto).
enum class OutputTask {
  kClassification,
  kLanguageModel,
  kOutputFidelity,
  kSegmentation,
};

struct DatasetOptions {
  int64_t batch_size = 32;
  // Use only samples [first_sample, first_sample + max_samples); 0 = all.
  int64_t first_sample = 0;
  int64_t max_samples = 0;
  // Refuse NaN and Inf in float inputs (calibration data must be finite).
  bool require_finite = true;
  OutputTask task = OutputTask::kClassification;
  // kLanguageModel: the int64 [N, T] input whose rows hold T+1 tokens.
  std::string token_input;
  // kSegmentation: output elements above it are in the mask.
  float mask_threshold = 0.5f;
};

struct DataBatch {
  TensorMap feeds;    // one tensor per model input
  Tensor labels;      // int64 [n] when the dataset has labels
  Tensor targets;     // int64 [n, T] next-token ids for language models
  int64_t size = 0;   // samples in this batch
  int64_t first = 0;  // index of its first sample in the dataset
};

class Dataset {
 public:
  // Checks every array against the model's inputs: names, element types,
  // ranks, static dims, equal sample counts, label shape and type.
  static absl::StatusOr<std::unique_ptr<Dataset>> Open(
      const std::string& path, const Graph& graph,
      const DatasetOptions& options = {});

  int64_t num_samples() const { return end_ - begin_; }
  bool has_labels() const { return label_stream_ != nullptr; }
  bool is_language_model() const { return language_model_; }
  OutputTask task() const { return options_.task; }
  float mask_threshold() const { return options_.mask_threshold; }
  // The model's fixed dim 0 (the batch every Next() returns), or 0.
  int64_t fixed_batch() const { return fixed_batch_; }
  // Samples after the last full batch of a fixed-batch model, not served.
  int64_t dropped_samples() const { return dropped_samples_; }
  int64_t batch_size() const { return options_.batch_size; }

  // The next batch, or nullopt after the last one.
  absl::StatusOr<std::optional<DataBatch>> Next();
  absl::Status Rewind();

 private:
  struct Input {
    std::string name;
    std::unique_ptr<ArrayStream> stream;
  };
  Dataset() = default;
  absl::Status SkipTo(int64_t sample);

  std::string path_;
  DatasetOptions options_;
  std::unique_ptr<ArrayFile> file_;
  std::vector<Input> inputs_;
  std::unique_ptr<ArrayStream> label_stream_;
  bool language_model_ = false;
  int64_t fixed_batch_ = 0;
  int64_t dropped_samples_ = 0;
  int64_t begin_ = 0, end_ = 0, next_ = 0;
};

}  // namespace quantd

#endif  // QUANTD_ENGINE_DATA_DATASET_H_
