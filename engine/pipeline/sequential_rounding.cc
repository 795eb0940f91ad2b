#include "engine/pipeline/sequential_rounding.h"

#include <map>
#include <set>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "engine/passes/graph_cleanup.h"
#include "engine/pipeline/block_reconstruction.h"
#include "engine/quantization/weight_quantization.h"
#include "kernels/buffer_pool.h"
#include "util/status_macros.h"

namespace quantd {
namespace {

// The weight a layer computes with once rounded: GPTQ's on-grid weights, or
// round-to-nearest of the float ones.
absl::StatusOr<Tensor> ComputedWeight(const Graph& graph,
                                      const WeightSlot& slot,
                                      const RoundedLayer& rounded) {
  if (rounded.codes.has_value()) {
    return DequantizeWeightCodes(*rounded.codes, rounded.params);
  }
  const Tensor* w = graph.FindInitializer(slot.initializer);
  if (w == nullptr) {
    return absl::InternalError(absl::StrCat(
        "layer '", slot.node, "' has no weight '", slot.initializer, "'"));
  }
  return FakeQuantizeWeights(*w, rounded.params);
}

// Runs `executor` on every batch of `live`, as `segment` reads it; the
// outputs of every batch if `keep_outputs`. (A hooked run needs none: an
// LM head's logits for 32 calibration rows of GPT-2-small are 823 MB.)
absl::StatusOr<std::vector<std::vector<Tensor>>> RunOnAll(
    const JobContext& ctx, Executor& executor, const GraphSegment& segment,
    const std::vector<TensorMap>& live, const RunOptions& options,
    bool keep_outputs) {
  std::vector<std::vector<Tensor>> outputs;
  outputs.reserve(live.size());
  for (const TensorMap& batch : live) {
    QUANTD_RETURN_IF_ERROR(CheckCancelled(ctx.cancelled));
    QUANTD_ASSIGN_OR_RETURN(
        RunResult r, executor.Run(SegmentFeeds(segment, batch), options));
    if (keep_outputs) outputs.push_back(std::move(r.outputs));
  }
  return outputs;
}

}  // namespace

std::vector<GraphSegment> PlanSequentialRounding(const JobContext& ctx) {
  const v1::Algorithms& alg = ctx.spec().algorithms();
  if (!(alg.gptq().enabled() || alg.learned_rounding().enabled()) ||
      alg.gptq().one_pass() || alg.bias_correction()) {
    return {};
  }
  std::set<std::string> layers;
  for (const WeightSlot& s : ctx.slots) layers.insert(s.node);
  std::vector<GraphSegment> segments = SplitAtNarrowestCuts(
      ctx.graph, [&](const Node& n) { return layers.contains(n.name); });
  if (segments.size() < 2) return {};
  return segments;
}

namespace {

// The state of one sequential run across segments.
class SequentialRun {
 public:
  SequentialRun(JobContext& ctx, const RoundLayerFn& round_layer)
      : ctx_(ctx), round_layer_(round_layer) {
    for (const WeightSlot& s : ctx.slots) {
      slot_of_[s.node] = &s;
      ++layers_per_weight_[s.initializer];
    }
    TensorHook collect = ctx.statistics->Hook();
    hooked_.tensor_hook = [this, collect](const Node* producer,
                                          const std::string& name,
                                          Tensor& value) -> absl::Status {
      if (!watched_.contains(name)) return absl::OkStatus();
      return collect(producer, name, value);
    };
    hooked_.cancelled = plain_.cancelled = ctx.cancelled;
  }

  // The calibration batches: the first segment's inputs.
  absl::Status ReadCalibrationData() {
    QUANTD_ASSIGN_OR_RETURN(
        ctx_.calibration_samples,
        ForEachBatch(*ctx_.data->calibration, "calibrate", ctx_.progress,
                     ctx_.cancelled, [&](const DataBatch& batch) {
                       live_.push_back(batch.feeds);
                       if (Reconstructs()) float_live_.push_back(batch.feeds);
                       return absl::OkStatus();
                     }));
    return absl::OkStatus();
  }

  absl::Status RunSegment(size_t k) {
    const GraphSegment& segment = ctx_.segments[k];
    Graph graph = segment.graph;  // tensors are shared, not copied
    for (auto& [name, t] : graph.initializers) {
      auto it = shared_rounded_.find(name);
      if (it != shared_rounded_.end()) t = it->second;
    }
    // 1. This segment's layer inputs, on the quantized prefix's outputs.
    // Each is observed in one segment only (the first whose run produces
    // or receives it), or its rows would count twice in the Hessian.
    watched_.clear();
    for (const WeightSlot* s : LayersOf(segment)) {
      const std::string& input = ctx_.rounder->InputOf(*s);
      if (observed_.insert(input).second) watched_.insert(input);
    }
    if (!watched_.empty()) {
      QUANTD_ASSIGN_OR_RETURN(std::unique_ptr<Executor> observer,
                              Executor::Create(UpToWatched(graph)));
      QUANTD_RETURN_IF_ERROR(
          RunOnAll(ctx_, *observer, segment, live_, hooked_, false).status());
    }
    // The run's activations sit in the buffer pool's cache, and GPTQ's
    // Hessian copies and working sets are not pool buffers: without this,
    // both are resident at once (the 4-block decoder's quantize peak).
    BufferPool::Default().Release();
    // 2. Round its layers; later runs compute with the rounded weights.
    // The last segment feeds no other: no executor, no dequantized weights
    // (an LM head's would be 262 MB at 32000 x 2048).
    const bool last = k + 1 == ctx_.segments.size();
    std::unique_ptr<Executor> executor;
    if (!last) {
      QUANTD_ASSIGN_OR_RETURN(executor, Executor::Create(std::move(graph)));
    }
    for (const WeightSlot* s : LayersOf(segment)) {
      QUANTD_RETURN_IF_ERROR(RoundLayer(*s, k, executor.get()));
    }
    if (Reconstructs()) QUANTD_RETURN_IF_ERROR(Reconstruct(k, executor.get()));
    if (last) return absl::OkStatus();
    // 3. The next segment's inputs, computed with the rounded weights.
    QUANTD_ASSIGN_OR_RETURN(
        std::vector<std::vector<Tensor>> outputs,
        RunOnAll(ctx_, *executor, segment, live_, plain_, true));
    for (size_t b = 0; b < live_.size(); ++b) {
      CarryLiveValues(segment, std::move(outputs[b]), &live_[b]);
    }
    return absl::OkStatus();
  }

  size_t rounded_layers() const { return rounded_layers_; }

 private:
  // The segment cut back to the nodes the watched values need: observing
  // runs nothing past the last layer input (an LM head's logits for one
  // calibration batch of GPT-2-small were 823 MB at the quantize peak).
  Graph UpToWatched(const Graph& segment) const {
    Graph g = segment;
    std::set<std::string> produced;
    for (const Node& n : g.nodes)
      produced.insert(n.outputs.begin(), n.outputs.end());
    g.outputs.clear();
    for (const std::string& v : watched_) {
      if (!produced.contains(v)) continue;  // a segment input: fed, hooked
      ValueInfo info;
      info.name = v;
      info.dtype = DataType::kFloat32;
      g.outputs.push_back(info);
    }
    RemoveDeadNodes(g);
    return g;
  }

  std::vector<const WeightSlot*> LayersOf(const GraphSegment& segment) const {
    std::vector<const WeightSlot*> out;
    for (const Node& node : segment.graph.nodes) {
      auto it = slot_of_.find(node.name);
      if (it != slot_of_.end()) out.push_back(it->second);
    }
    return out;
  }

  // `executor` runs the segment on; null for the last segment.
  absl::Status RoundLayer(const WeightSlot& s, size_t k, Executor* executor) {
    QUANTD_ASSIGN_OR_RETURN(const RoundedLayer* r, round_layer_(s));
    ++rounded_layers_;
    if (r->codes.has_value()) {
      ctx_.facts.algorithms[s.node].push_back(absl::StrCat(
          ctx_.spec().algorithms().gptq().enabled() ? "gptq"
                                                    : "learned rounding",
          ": sequential, block ", k + 1, " of ", ctx_.segments.size(),
          " (Hessian from the quantized blocks before it)"));
    }
    if (executor == nullptr || shared_rounded_.contains(s.initializer)) {
      return absl::OkStatus();
    }
    QUANTD_ASSIGN_OR_RETURN(Tensor w, ComputedWeight(ctx_.graph, s, *r));
    // A weight that layers in several segments read (tied weights) must
    // not be float in the later ones.
    if (layers_per_weight_[s.initializer] > 1)
      shared_rounded_[s.initializer] = w;
    return executor->ReplaceInitializer(s.initializer, std::move(w));
  }

  // Tunes segment k's layers together (block_reconstruction.h); its
  // rounding replaces theirs in the rounder and in the executor. A segment
  // the autograd cannot differentiate keeps its layers' rounding, and the
  // report says why.
  bool Reconstructs() const {
    const v1::LearnedRoundingConfig& lr =
        ctx_.spec().algorithms().learned_rounding();
    return lr.enabled() && !lr.layer_only();
  }

  // Block reconstruction of segment k against the float model's outputs of
  // it, on the float model's own inputs, which then become the next
  // segment's float inputs. The last segment's outputs are the model's (an
  // LM's logits): tuned only while they fit kMaxLastTargetBytes.
  absl::Status Reconstruct(size_t k, Executor* executor) {
    static constexpr int64_t kMaxLastTargetBytes = int64_t{256} << 20;
    const GraphSegment& segment = ctx_.segments[k];
    const bool last = k + 1 == ctx_.segments.size();
    QUANTD_ASSIGN_OR_RETURN(std::unique_ptr<Executor> float_executor,
                            Executor::Create(segment.graph));
    if (last) {
      QUANTD_ASSIGN_OR_RETURN(
          RunResult first,
          float_executor->Run(SegmentFeeds(segment, float_live_[0]), plain_));
      int64_t bytes = 0;
      for (const Tensor& t : first.outputs) bytes += t.num_elements() * 4;
      if (bytes * static_cast<int64_t>(float_live_.size()) >
          kMaxLastTargetBytes) {
        for (const WeightSlot* s : LayersOf(segment)) {
          ctx_.facts.algorithms[s->node].push_back(absl::StrCat(
              "block reconstruction: not run on the last block, whose "
              "outputs (the model's) take ",
              bytes * float_live_.size() >> 20,
              " MB over the calibration set; per-layer rounding only"));
        }
        return absl::OkStatus();
      }
    }
    QUANTD_ASSIGN_OR_RETURN(
        std::vector<std::vector<Tensor>> targets,
        RunOnAll(ctx_, *float_executor, segment, float_live_, plain_, true));
    QUANTD_RETURN_IF_ERROR(ReconstructSegment(k, executor, targets));
    if (last) return absl::OkStatus();
    for (size_t b = 0; b < float_live_.size(); ++b) {
      CarryLiveValues(segment, std::move(targets[b]), &float_live_[b]);
    }
    return absl::OkStatus();
  }

  // `executor` (null for the last segment) gets the tuned weights.
  absl::Status ReconstructSegment(
      size_t k, Executor* executor,
      const std::vector<std::vector<Tensor>>& targets) {
    const GraphSegment& segment = ctx_.segments[k];
    const WeightScheme& scheme = ctx_.plan.rounding.scheme;
    const LayerPrecision precision = RequestedPrecision(scheme);
    std::vector<BlockLayer> layers;
    for (const WeightSlot* s : LayersOf(segment)) {
      if (layers_per_weight_[s->initializer] > 1) continue;  // tied: as is
      QUANTD_ASSIGN_OR_RETURN(const RoundedLayer* r,
                              ctx_.rounder->Round(*s, precision));  // cached
      QUANTD_ASSIGN_OR_RETURN(Tensor w, ComputedWeight(ctx_.graph, *s, *r));
      layers.push_back({s, r->params, std::move(w)});
    }
    if (layers.empty()) return absl::OkStatus();
    std::vector<TensorMap> batches;
    for (const TensorMap& live : live_) {
      batches.push_back(SegmentFeeds(segment, live));
    }
    const v1::LearnedRoundingConfig& lr =
        ctx_.spec().algorithms().learned_rounding();
    BlockReconstructionOptions options;
    options.iterations = lr.iterations();
    options.learning_rate = lr.learning_rate();
    options.learn_clipping = !lr.no_clipping();
    options.cancelled = ctx_.cancelled;
    // Static jobs: the block runs with its inputs quantized as deployed.
    if (!ctx_.activation_params.empty()) {
      options.activations = &ctx_.activation_params;
    }
    // Steps run long on big blocks: the job's progress says where they are.
    options.on_score = [&](int step, double relative) {
      ctx_.Progress(
          "quantize", double(rounded_layers_) / ctx_.slots.size(), "",
          absl::StrFormat("block reconstruction %d of %d: step %d of %d, "
                          "output error %.3gx of the layers' own rounding",
                          k + 1, ctx_.segments.size(), step, options.iterations,
                          relative));
    };
    absl::StatusOr<BlockReconstructionResult> r = ReconstructBlock(
        segment.graph, batches, &targets, scheme, options, layers);
    if (r.status().code() == absl::StatusCode::kFailedPrecondition) {
      for (const BlockLayer& l : layers) {
        ctx_.facts.algorithms[l.slot->node].push_back(absl::StrCat(
            "block reconstruction: skipped, ", r.status().message()));
      }
      return absl::OkStatus();
    }
    QUANTD_RETURN_IF_ERROR(r.status());
    const std::string note = absl::StrFormat(
        "block reconstruction: block %d of %d, output error %.3gx of the "
        "layers' own rounding (%d steps%s)",
        k + 1, ctx_.segments.size(),
        r->start_loss > 0 ? r->loss / r->start_loss : 1.0, options.iterations,
        options.activations != nullptr ? ", int8 inputs simulated" : "");
    for (BlockLayer& l : layers) {
      QUANTD_ASSIGN_OR_RETURN(const RoundedLayer* cached,
                              ctx_.rounder->Round(*l.slot, precision));
      RoundedLayer updated = *cached;
      QUANTD_ASSIGN_OR_RETURN(updated.codes,
                              QuantizeWeightCodes(l.weights, l.params));
      updated.params = std::move(l.params);
      updated.notes.push_back(note);
      ctx_.rounder->Replace(*l.slot, precision, std::move(updated));
      ctx_.facts.algorithms[l.slot->node].push_back(note);
      if (executor != nullptr) {
        QUANTD_RETURN_IF_ERROR(
            executor->ReplaceInitializer(l.slot->initializer, l.weights));
      }
    }
    return absl::OkStatus();
  }

  JobContext& ctx_;
  const RoundLayerFn& round_layer_;
  std::map<std::string, const WeightSlot*> slot_of_;  // by node name
  std::map<std::string, int> layers_per_weight_;
  std::map<std::string, Tensor> shared_rounded_;
  std::set<std::string> observed_, watched_;
  RunOptions hooked_, plain_;
  // Per calibration batch, the values live at the current cut; and, for
  // block reconstruction, the float model's.
  std::vector<TensorMap> live_, float_live_;
  size_t rounded_layers_ = 0;
};

}  // namespace

absl::Status RoundSequentially(JobContext& ctx,
                               const RoundLayerFn& round_layer) {
  if (ctx.statistics == nullptr || ctx.data->calibration == nullptr) {
    return absl::InternalError(
        "sequential rounding needs the statistics collector and the "
        "calibration data");
  }
  SequentialRun run(ctx, round_layer);
  QUANTD_RETURN_IF_ERROR(run.ReadCalibrationData());
  for (size_t k = 0; k < ctx.segments.size(); ++k) {
    QUANTD_RETURN_IF_ERROR(run.RunSegment(k));
  }
  if (run.rounded_layers() != ctx.slots.size()) {
    return absl::InternalError(absl::StrCat("sequential rounding reached ",
                                            run.rounded_layers(), " of ",
                                            ctx.slots.size(), " layers"));
  }
  return absl::OkStatus();
}

}  // namespace quantd
