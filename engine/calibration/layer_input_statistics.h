// Statistics of the inputs of quantized layers, gathered in one pass over
// the calibration set through the executor's tensor hook. The algorithms
// that look at activations need them:
//   SmoothQuant  per-channel max |x|
//   AWQ          a bounded sample of input rows (mean |x| and output error)
//   GPTQ         the Hessian sum_x x x^T (for a Conv, over its input
//                patches: engine/calibration/conv_patch_hessian.h)
//   bias corr.   per-channel mean of x
//
//   InputStatisticsOptions o{.hessian = true};
//   auto c = InputStatisticsCollector::Create(
//       {{"ln1_out", ChannelLayout::kLastDim}}, o);
//   RunOptions run; run.tensor_hook = (*c)->Hook();
//   ... executor.Run(batch, run) for each batch ...
//   const LayerInputStatistics* s = (*c)->Find("ln1_out");
//
// Memory is bounded by the number of channels, never by the dataset: K
// floats per statistic, K*K floats for a Hessian, and at most
// `max_sample_rows` rows (reservoir-sampled with a fixed seed, so runs
// repeat). Hessians are bounded per layer (kMaxLayerHessianFloats) and
// across the layers held at once (max_live_hessian_floats); a layer past
// either gets none, and WhyNoHessian says so.
#ifndef QUANTD_ENGINE_CALIBRATION_LAYER_INPUT_STATISTICS_H_
#define QUANTD_ENGINE_CALIBRATION_LAYER_INPUT_STATISTICS_H_

#include <cstdint>
#include <map>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "engine/calibration/conv_patch_hessian.h"
#include "engine/runtime/executor.h"
#include "engine/runtime/ops/conv_attributes.h"
#include "kernels/tensor.h"

namespace quantd {

// Where the channels of an input are: the last dim (MatMul, Gemm inputs
// [..., K]) or dim 1 (Conv inputs [N, C, ...]). Rows are all other indices.
enum class ChannelLayout { kLastDim, kDim1 };

// Hessians held at once across layers, 2 GiB. One-pass GPTQ gathers every
// layer's in one calibration pass (GPT-2-small's 49 take 0.54 GB; a hostile
// model of many 8192-wide MatMuls would ask for 256 MB each); sequential
// GPTQ, the default, holds one block's.
inline constexpr int64_t kMaxLiveHessianFloats = int64_t{512} << 20;

struct InputStatisticsOptions {
  bool hessian = false;  // only for kLastDim inputs
  int64_t max_live_hessian_floats = kMaxLiveHessianFloats;
  int64_t max_sample_rows = 0;
  uint64_t seed = 0;
};

struct LayerInputStatistics {
  int64_t channels = 0;
  int64_t rows = 0;  // rows observed
  std::vector<float> abs_max;
  std::vector<double> sum;      // of x per channel
  std::vector<double> sum_abs;  // of |x| per channel
  // channels x channels, sum of x x^T. Float, as GPTQ's reference keeps
  // it: every batch's X^T X comes from an f32 GEMM anyway, and doubles
  // would take GPT-2-small's 49 Hessians from 0.54 to 1.08 GB.
  std::vector<float> hessian;
  // Sampled rows, [sample_rows, channels] once Finish()ed (kLastDim only).
  std::vector<float> sample;
  int64_t sample_rows = 0;

  double Mean(int64_t c) const { return rows > 0 ? sum[c] / rows : 0; }
  Tensor SampleTensor() const;
};

// A Conv layer whose patch Hessian is gathered: the value it reads, its
// attributes and its weights' shape.
struct ConvPatchLayer {
  std::string input;
  ConvAttributes attributes;
  Shape weight_shape;
};

class InputStatisticsCollector {
 public:
  // `conv_layers` (by node name) also get a patch Hessian each; layers
  // ConvPatchHessianSupported (conv_patch_hessian.h) rejects are left out
  // (FindConvPatches then returns nullptr for them).
  static absl::StatusOr<std::unique_ptr<InputStatisticsCollector>> Create(
      const std::map<std::string, ChannelLayout>& values,
      const InputStatisticsOptions& options,
      const std::map<std::string, ConvPatchLayer>& conv_layers = {});

  // For RunOptions::tensor_hook; other values pass through untouched.
  TensorHook Hook();

  // Statistics of a watched value, or nullptr if it was never observed.
  const LayerInputStatistics* Find(const std::string& value) const;

  // Frees a value's statistics (Find returns nullptr afterwards): the
  // quantize stage drops each Hessian once every layer reading that value
  // is rounded, instead of holding all of them to the end.
  void Release(const std::string& value);

  // A Conv layer's patch Hessian, or nullptr if it was not gathered or
  // never observed; ReleaseConvPatches frees it.
  const ConvPatchHessian* FindConvPatches(const std::string& node) const;
  void ReleaseConvPatches(const std::string& node);

  // Why a watched value (MatMul/Gemm input) or a Conv node got no Hessian
  // though one was asked for: over the per-layer bound, the Hessians held
  // at once would pass max_live_hessian_floats, or (Convs) a 3-D Conv.
  // Empty if it has one or none was skipped.
  std::string WhyNoHessian(const std::string& value) const;
  std::string WhyNoConvPatches(const std::string& node) const;

 private:
  struct Entry {
    ChannelLayout layout;
    LayerInputStatistics stats;
    int64_t seen_rows = 0;  // for reservoir sampling
  };
  InputStatisticsCollector(std::map<std::string, Entry> entries,
                           InputStatisticsOptions options,
                           std::map<std::string, ConvPatchLayer> conv_layers)
      : entries_(std::move(entries)),
        conv_layers_(std::move(conv_layers)),
        options_(options),
        rng_(options.seed) {
    for (const auto& [node, layer] : conv_layers_) {
      conv_readers_[layer.input].push_back(node);
    }
  }
  absl::Status Observe(const std::string& value, Entry& e, const Tensor& x);
  absl::Status ObserveConvInput(const std::string& value, const Tensor& x);
  // Takes `floats` from the live budget, or returns why it cannot.
  std::string ReserveHessian(int64_t floats);

  std::map<std::string, Entry> entries_;
  std::map<std::string, ConvPatchLayer> conv_layers_;     // by node
  std::map<std::string, ConvPatchHessian> conv_patches_;  // by node
  // Input value -> the Conv nodes above reading it: the hook sees every
  // value of the graph.
  std::map<std::string, std::vector<std::string>> conv_readers_;
  std::map<std::string, std::string> no_hessian_;       // by value
  std::map<std::string, std::string> no_conv_patches_;  // by node
  int64_t live_hessian_floats_ = 0;
  InputStatisticsOptions options_;
  std::mt19937_64 rng_;
};

}  // namespace quantd

#endif  // QUANTD_ENGINE_CALIBRATION_LAYER_INPUT_STATISTICS_H_
