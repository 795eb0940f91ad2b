// Which evaluation task a job runs: the spec's `evaluation.task`, or one
// inferred from the model's structure and the data (never from names), and
// the DatasetOptions that carry it to every evaluation.
//
//   absl::StatusOr<ResolvedTask> t = ResolveEvaluationTask(
//       spec.evaluation(), graph, ReadDataFacts(data_path));
//   if (!t.ok()) return t.status();
//   ApplyTask(*t, &dataset_options);
//   if (!t->note.empty()) report.add_warnings(t->note);
#ifndef QUANTD_ENGINE_EVALUATION_EVALUATION_TASK_H_
#define QUANTD_ENGINE_EVALUATION_EVALUATION_TASK_H_

#include <map>
#include <string>

#include "absl/status/statusor.h"
#include "engine/data/dataset.h"
#include "engine/ir/graph.h"
#include "quantd/v1/job_spec.pb.h"

namespace quantd {

// What the inference needs to know of the data: labels, and the shape of
// each array (by name; "" for a single .npy).
struct DataFacts {
  bool has_labels = false;
  std::map<std::string, Shape> shapes;
};

// Reads the facts from the dataset at `path` (headers only); an unreadable
// file gives empty facts (Dataset::Open reports it right after).
DataFacts ReadDataFacts(const std::string& path);

struct ResolvedTask {
  OutputTask task = OutputTask::kClassification;
  std::string token_input;  // kLanguageModel
  float mask_threshold = 0.5f;
  // How an unspecified task was inferred, for the report; empty when the
  // spec chose it or the inference is the classic [N, classes] case.
  std::string note;
};

// Fails when the spec's task does not fit the model (a language model
// without one int64 rank-2 input to use as tokens, a token_input that is
// not one).
absl::StatusOr<ResolvedTask> ResolveEvaluationTask(
    const v1::EvaluationConfig& config, const Graph& graph,
    const DataFacts& data);

void ApplyTask(const ResolvedTask& task, DatasetOptions* options);

// "classification", "language_model", "output_fidelity", "segmentation".
const char* OutputTaskName(OutputTask task);

}  // namespace quantd

#endif  // QUANTD_ENGINE_EVALUATION_EVALUATION_TASK_H_
