#include "engine/evaluation/evaluation_task.h"

#include <cmath>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "engine/data/array_file.h"

namespace quantd {
namespace {

// Inputs that can carry tokens: int64, rank 2 (or undeclared rank).
std::vector<const ValueInfo*> TokenCandidates(const Graph& graph) {
  std::vector<const ValueInfo*> out;
  for (const ValueInfo& in : graph.inputs) {
    if (in.dtype == DataType::kInt64 &&
        (!in.has_shape || in.shape.size() == 2)) {
      out.push_back(&in);
    }
  }
  return out;
}

// The first output's declared rank, or -1.
int OutputRank(const Graph& graph) {
  if (graph.outputs.empty() || !graph.outputs[0].has_shape) return -1;
  return static_cast<int>(graph.outputs[0].shape.size());
}

std::string Names(const std::vector<const ValueInfo*>& inputs) {
  std::vector<std::string> names;
  for (const ValueInfo* in : inputs) names.push_back("'" + in->name + "'");
  return absl::StrJoin(names, ", ");
}

absl::StatusOr<std::string> TokenInput(const v1::EvaluationConfig& config,
                                       const Graph& graph) {
  const std::vector<const ValueInfo*> candidates = TokenCandidates(graph);
  if (!config.token_input().empty()) {
    for (const ValueInfo* in : candidates) {
      if (in->name == config.token_input()) return in->name;
    }
    return absl::InvalidArgumentError(absl::StrCat(
        "evaluation.token_input '", config.token_input(),
        "' is not an int64 rank-2 input of the model; candidates: ",
        candidates.empty() ? "none" : Names(candidates)));
  }
  if (candidates.size() != 1) {
    return absl::InvalidArgumentError(absl::StrCat(
        "a language-model evaluation needs the token input: the model has ",
        candidates.size(), " int64 rank-2 inputs (",
        candidates.empty() ? "none" : Names(candidates),
        "); name one in evaluation.token_input"));
  }
  return candidates[0]->name;
}

// Whether the data's rows for token input `in` can be T+1 tokens: one more
// than a static T, or at least 2 for a dynamic one. (A decoder step fed one
// token per row, [N, 1], is not scored as next-token prediction.)
bool RowsHoldOneMoreToken(const ValueInfo& in, const DataFacts& data,
                          bool single_input) {
  auto it = data.shapes.find(in.name);
  if (it == data.shapes.end() && single_input) it = data.shapes.find("");
  if (it == data.shapes.end() || it->second.size() != 2) return false;
  const int64_t columns = it->second[1];
  const bool static_t = in.has_shape && in.shape.size() == 2 && in.shape[1] > 0;
  return static_t ? columns == in.shape[1] + 1 : columns >= 2;
}

}  // namespace

const char* OutputTaskName(OutputTask task) {
  switch (task) {
    case OutputTask::kClassification:
      return "classification";
    case OutputTask::kLanguageModel:
      return "language_model";
    case OutputTask::kOutputFidelity:
      return "output_fidelity";
    case OutputTask::kSegmentation:
      return "segmentation";
  }
  return "classification";
}

DataFacts ReadDataFacts(const std::string& path) {
  DataFacts facts;
  if (path.empty()) return facts;
  absl::StatusOr<std::unique_ptr<ArrayFile>> file = ArrayFile::Open(path);
  if (!file.ok()) return facts;
  for (const std::string& name : (*file)->names()) {
    absl::StatusOr<std::unique_ptr<ArrayStream>> s = (*file)->OpenStream(name);
    if (s.ok()) facts.shapes[name] = (*s)->header().shape;
  }
  facts.has_labels = facts.shapes.contains(kLabelArray);
  return facts;
}

absl::StatusOr<ResolvedTask> ResolveEvaluationTask(
    const v1::EvaluationConfig& config, const Graph& graph,
    const DataFacts& data) {
  ResolvedTask r;
  if (config.has_mask_threshold()) {
    if (!std::isfinite(config.mask_threshold())) {
      return absl::InvalidArgumentError(
          "evaluation.mask_threshold must be a finite number");
    }
    r.mask_threshold = static_cast<float>(config.mask_threshold());
  }
  switch (config.task()) {
    case v1::EVALUATION_TASK_CLASSIFICATION:
      r.task = OutputTask::kClassification;
      return r;
    case v1::EVALUATION_TASK_LANGUAGE_MODEL: {
      r.task = OutputTask::kLanguageModel;
      absl::StatusOr<std::string> tokens = TokenInput(config, graph);
      if (!tokens.ok()) return tokens.status();
      r.token_input = *tokens;
      return r;
    }
    case v1::EVALUATION_TASK_OUTPUT_FIDELITY:
      r.task = OutputTask::kOutputFidelity;
      return r;
    case v1::EVALUATION_TASK_SEGMENTATION:
      r.task = OutputTask::kSegmentation;
      return r;
    default:
      break;
  }
  const int rank = OutputRank(graph);
  const std::vector<const ValueInfo*> tokens = TokenCandidates(graph);
  const std::string override_hint = "; set evaluation.task to override";
  if (rank == 3 && tokens.size() == 1 && !data.has_labels &&
      RowsHoldOneMoreToken(*tokens[0], data, graph.inputs.size() == 1)) {
    r.task = OutputTask::kLanguageModel;
    r.token_input = tokens[0]->name;
    r.note =
        absl::StrCat("evaluation task inferred: language model (int64 input '",
                     r.token_input,
                     "' of rank 2, a rank-3 first output, no labels; rows "
                     "of '",
                     r.token_input, "' hold T+1 tokens)", override_hint);
  } else if (rank < 0 ||
             ((rank == 2 || rank == 3) && graph.outputs[0].shape.back() != 1)) {
    // [N, C] classes, or [N, T, C] per position (sequence logits).
    r.task = OutputTask::kClassification;
  } else {
    r.task = OutputTask::kOutputFidelity;
    r.note = absl::StrCat(
        "evaluation task inferred: output fidelity (SQNR, cosine; the first "
        "output '",
        graph.outputs[0].name, "' is ", ShapeToString(graph.outputs[0].shape),
        ", not [N, classes] with several classes); for masks or probability "
        "maps use EVALUATION_TASK_SEGMENTATION",
        override_hint);
  }
  return r;
}

void ApplyTask(const ResolvedTask& task, DatasetOptions* options) {
  options->task = task.task;
  options->token_input = task.token_input;
  options->mask_threshold = task.mask_threshold;
}

}  // namespace quantd
