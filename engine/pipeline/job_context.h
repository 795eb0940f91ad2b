// What a job's stages share: the plan, progress and cancellation, the report
// being built, and the state each stage leaves for the next (graphs, data,
// quantized layers, executors). Stages (stages.h) read and fill it in order;
// a test can run any prefix of them and inspect what they left.
//
//   JobContext ctx(plan, progress, &cancelled, options);
//   QUANTD_RETURN_IF_ERROR(LoadStage(ctx));
//   QUANTD_RETURN_IF_ERROR(PrepareStage(ctx));
//   ctx.slots.size();  // the layers that will be quantized
#ifndef QUANTD_ENGINE_PIPELINE_JOB_CONTEXT_H_
#define QUANTD_ENGINE_PIPELINE_JOB_CONTEXT_H_

#include <atomic>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "engine/calibration/layer_input_statistics.h"
#include "engine/evaluation/pipeline_evaluation.h"
#include "engine/export/qdq_export.h"
#include "engine/ir/graph.h"
#include "engine/ir/quantization_plan.h"
#include "engine/passes/graph_segments.h"
#include "engine/pipeline/artifacts.h"
#include "engine/pipeline/job_data.h"
#include "engine/pipeline/job_plan.h"
#include "engine/pipeline/pipeline_report.h"
#include "engine/quantization/weight_rounding.h"
#include "engine/runtime/executor.h"

namespace quantd {

struct PipelineOptions {
  bool keep_qdq_graph = false;  // fill PipelineResult::qdq_graph
  // QAT: where training checkpoints go (and are resumed from); empty: none.
  std::string checkpoint_path;
  std::function<void(const std::string& path)> on_checkpoint;  // after each
  // Export: whether the model may be written with an external data file
  // (PipelineResult::model_external_data). It is when the source model had
  // one or the model would pass max_inline_model_bytes (protobuf's 2 GiB
  // limit; tests lower it). The server stores one blob per model and sets
  // this false: such a model then fails to export with a message.
  bool allow_external_data = true;
  int64_t max_inline_model_bytes = kProtobufMaxBytes;
  // Record each stage's peak RSS in the report (StageTiming.peak_rss_bytes).
  // The figure is the whole process's, so only a process running one job at
  // a time (quantd run-job) sets it.
  bool measure_stage_memory = false;
};

struct JobContext {
  JobContext(const JobPlan& plan, ProgressCallback progress,
             const std::atomic<bool>* cancelled, PipelineOptions options);
  JobContext(const JobContext&) = delete;
  JobContext& operator=(const JobContext&) = delete;

  const v1::JobSpec& spec() const { return plan.spec; }
  v1::QuantizationReport& report() { return result.report; }
  // Reports progress (no-op without a callback).
  void Progress(const std::string& stage, double fraction,
                const std::string& current_layer = "",
                const std::string& message = "") const;
  // Frees the calibration statistics (GPTQ's Hessians) once no layer will
  // be rounded again; the rounder keeps what it already rounded.
  void DropStatistics();

  const JobPlan& plan;
  const ProgressCallback progress;
  const std::atomic<bool>* const cancelled;
  const PipelineOptions options;
  PipelineResult result;  // the report is filled as stages go

  // load, prepare: the float model, prepared; the reference throughout.
  Graph float_graph;
  int64_t external_data_bytes = 0;  // load: the model's size beyond its file
  // prepare (a copy), smooth (rescaled): the graph that gets quantized.
  Graph graph;
  std::optional<JobData> data;    // prepare
  std::vector<WeightSlot> slots;  // prepare; smooth re-finds them
  // smooth: nodes a pass inserted that must stay float (the online
  // rotation's MatMuls); FindLayers excludes them like the plan's.
  std::set<std::string> inserted_float_nodes;
  LayerFacts facts;  // every stage adds to it
  // calibrate
  // Freed (DropStatistics) once no layer will be rounded again.
  std::unique_ptr<InputStatisticsCollector> statistics;
  std::map<std::string, QuantParams> activation_params;  // by value name
  int64_t calibration_samples = 0;
  // Sequential GPTQ (sequential_rounding.h): the graph cut between blocks;
  // empty when calibrate gathered every layer's statistics in one pass.
  std::vector<GraphSegment> segments;
  // quantize (plan), train and fallback (replace it)
  std::unique_ptr<LayerRounder> rounder;
  std::optional<QuantizationPlan> quantization;
  // sensitivity onwards
  std::unique_ptr<Executor> float_executor;
  std::map<std::string, std::string> layer_values;  // layer output -> node
  std::optional<Evaluated> fake_quant;              // evaluate_fake_quant
  std::unique_ptr<Executor> int8_executor;          // evaluate_int8, if any
  std::string int8_kernels;  // what int8_executor runs on, for the report
};

// The layers of `graph` to quantize (Conv, Gemm, MatMul with constant
// weights, minus the plan's exclusions); InvalidArgument when none is left.
absl::StatusOr<std::vector<WeightSlot>> FindLayers(const JobContext& ctx,
                                                   const Graph& graph);

// One pass of `graph` over `data` with `hook`, reporting progress as `stage`;
// the number of samples seen.
absl::StatusOr<int64_t> RunHookedPass(const JobContext& ctx, const Graph& graph,
                                      Dataset& data, TensorHook hook,
                                      const std::string& stage);

}  // namespace quantd

#endif  // QUANTD_ENGINE_PIPELINE_JOB_CONTEXT_H_
