// benchmark and export: fp32 vs int8 latency and the facts needed to
// reproduce the job, then the QDQ ONNX model, its size and the per-layer
// report.
#include "absl/strings/str_cat.h"
#include "engine/export/qdq_export.h"
#include "engine/pipeline/stages.h"
#include "util/status_macros.h"

#ifndef QUANTD_VERSION
#define QUANTD_VERSION "dev"
#endif

namespace quantd {
namespace {

std::string ActivationPrecision(const v1::JobSpec& spec) {
  switch (spec.mode()) {
    case v1::QUANT_MODE_STATIC:
      return absl::StrCat(
          spec.activations().type() == v1::QUANT_DATA_TYPE_INT8 ? "int8"
                                                                : "uint8",
          spec.activations().symmetric() ? " symmetric" : " asymmetric",
          " per-tensor");
    case v1::QUANT_MODE_DYNAMIC:
      return "uint8 dynamic per-tensor";
    default:
      return "float";
  }
}

// Latency on one batch of up to 64 evaluation samples (the model's own
// batch if it fixes one), at most 10 runs or benchmark.max_seconds per
// precision.
absl::Status MeasureSpeed(JobContext& ctx) {
  QUANTD_ASSIGN_OR_RETURN(std::unique_ptr<Dataset> data,
                          ctx.data->OpenEvaluationSubset(64, 64));
  QUANTD_ASSIGN_OR_RETURN(std::optional<DataBatch> batch, data->Next());
  if (!batch.has_value()) {
    return absl::InternalError("the evaluation data yielded no batch");
  }
  return MeasurePerformance(*ctx.float_executor, *ctx.int8_executor,
                            ctx.int8_kernels, batch->feeds, batch->size, 10,
                            ctx.spec().benchmark().max_seconds(),
                            ctx.report().mutable_performance());
}

}  // namespace

absl::Status ExportStage(JobContext& ctx) {
  ctx.facts.activation_precision = ActivationPrecision(ctx.spec());
  AddLayerReports(
      ctx.graph, ctx.slots, *ctx.quantization, ctx.facts,
      {ctx.spec().exclude_nodes().begin(), ctx.spec().exclude_nodes().end()},
      &ctx.report());
  QdqExportOptions options;
  options.producer_version = QUANTD_VERSION;
  if (ctx.options.allow_external_data) {
    options.external_data_location = kModelDataArtifact;
    // A model that came with its weights beside it goes back the same way.
    options.prefer_external_data = ctx.external_data_bytes > 0;
  }
  options.max_inline_bytes = ctx.options.max_inline_model_bytes;
  if (ctx.options.keep_qdq_graph) {
    QUANTD_ASSIGN_OR_RETURN(QdqGraph qdq,
                            BuildQdqGraph(ctx.graph, *ctx.quantization));
    ctx.result.qdq_graph = std::move(qdq.graph);
  }
  // The last stage: the export takes the graph, and the float model's
  // weights go as their integer initializers replace them, so the model is
  // not held next to its protobuf (the 1.1B decoder's export peaked at
  // model + codes + protobuf). Nothing reads the graphs after this.
  Graph graph = std::move(ctx.graph);
  ctx.float_graph.initializers.clear();
  ctx.segments.clear();
  ctx.rounder.reset();
  QUANTD_ASSIGN_OR_RETURN(
      ExportedModel files,
      ExportQdqModelFiles(std::move(graph), *ctx.quantization, options));
  ctx.result.model_bytes = std::move(files.model_bytes);
  ctx.result.model_external_data = std::move(files.external_data);
  v1::SizeReport* size = ctx.report().mutable_size();
  // External data counts: a 4.4 GB model whose .onnx file is 0.5 MB read
  // "0.00x smaller" before.
  size->set_float_bytes(FileSize(ctx.plan.paths.model) +
                        ctx.external_data_bytes);
  size->set_quantized_bytes(static_cast<int64_t>(
      ctx.result.model_bytes.size() + ctx.result.model_external_data.size()));
  size->set_compression_ratio(size->quantized_bytes() > 0
                                  ? double(size->float_bytes()) /
                                        size->quantized_bytes()
                                  : 0);
  return absl::OkStatus();
}

absl::Status BenchmarkStage(JobContext& ctx) {
  if (ctx.int8_executor != nullptr && !ctx.spec().benchmark().disabled()) {
    QUANTD_RETURN_IF_ERROR(MeasureSpeed(ctx));
  }
  // The last stage that runs the models: export needs only the graph and
  // the plan.
  ctx.int8_executor.reset();
  ctx.float_executor.reset();
  const JobPaths& paths = ctx.plan.paths;
  return FillReproducibility({paths.model, paths.calibration, paths.evaluation},
                             ctx.calibration_samples, ctx.spec().seed(),
                             ctx.report().mutable_reproducibility());
}

}  // namespace quantd
