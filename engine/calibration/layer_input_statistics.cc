#include "engine/calibration/layer_input_statistics.h"

#include <cmath>
#include <limits>

#include "absl/strings/str_cat.h"
#include "kernels/matmul.h"
#include "util/status_macros.h"

namespace quantd {

Tensor LayerInputStatistics::SampleTensor() const {
  Tensor t(DataType::kFloat32, {sample_rows, channels});
  std::copy(sample.begin(), sample.begin() + sample_rows * channels,
            t.mutable_data<float>());
  return t;
}

absl::StatusOr<std::unique_ptr<InputStatisticsCollector>>
InputStatisticsCollector::Create(
    const std::map<std::string, ChannelLayout>& values,
    const InputStatisticsOptions& options,
    const std::map<std::string, ConvPatchLayer>& conv_layers) {
  if (values.empty()) {
    return absl::InvalidArgumentError("no layer inputs to collect");
  }
  if (options.max_sample_rows < 0) {
    return absl::InvalidArgumentError("max_sample_rows must be >= 0");
  }
  std::map<std::string, Entry> entries;
  for (const auto& [name, layout] : values) entries[name].layout = layout;
  if (options.max_live_hessian_floats < 0) {
    return absl::InvalidArgumentError("max_live_hessian_floats must be >= 0");
  }
  std::map<std::string, ConvPatchLayer> convs;
  std::map<std::string, std::string> rejected;
  for (const auto& [node, layer] : conv_layers) {
    if (ConvPatchHessianSupported(layer.weight_shape, layer.attributes.group)) {
      convs[node] = layer;
    } else {
      const size_t rank = layer.weight_shape.size();
      rejected[node] =
          rank == 3 || rank == 4
              ? absl::StrCat("its ", layer.attributes.group,
                             " patch Hessians (groups x K^2 floats) would "
                             "pass ",
                             kMaxLayerHessianFloats * 4 >> 20, " MB per layer")
              : absl::StrCat("a ", rank < 2 ? 0 : rank - 2,
                             "-D Conv: patch Hessians cover 1-D and 2-D");
    }
  }
  std::unique_ptr<InputStatisticsCollector> c(new InputStatisticsCollector(
      std::move(entries), options, std::move(convs)));
  c->no_conv_patches_ = std::move(rejected);
  return c;
}

std::string InputStatisticsCollector::ReserveHessian(int64_t floats) {
  if (floats > kMaxLayerHessianFloats) {
    return absl::StrCat("its Hessian would take ", floats * 4 >> 20,
                        " MB, over the ", kMaxLayerHessianFloats * 4 >> 20,
                        " MB per layer");
  }
  if (floats > options_.max_live_hessian_floats - live_hessian_floats_) {
    return absl::StrCat(
        "its Hessian (", floats * 4 >> 20,
        " MB) would take the Hessians "
        "held at once past ",
        options_.max_live_hessian_floats * 4 >> 20,
        " MB (one-pass GPTQ holds every layer's; sequential holds one "
        "block's)");
  }
  live_hessian_floats_ += floats;
  return "";
}

std::string InputStatisticsCollector::WhyNoHessian(
    const std::string& value) const {
  auto it = no_hessian_.find(value);
  return it == no_hessian_.end() ? "" : it->second;
}

std::string InputStatisticsCollector::WhyNoConvPatches(
    const std::string& node) const {
  auto it = no_conv_patches_.find(node);
  return it == no_conv_patches_.end() ? "" : it->second;
}

TensorHook InputStatisticsCollector::Hook() {
  return [this](const Node*, const std::string& name,
                Tensor& value) -> absl::Status {
    QUANTD_RETURN_IF_ERROR(ObserveConvInput(name, value));
    auto it = entries_.find(name);
    if (it == entries_.end()) return absl::OkStatus();
    return Observe(name, it->second, value);
  };
}

absl::Status InputStatisticsCollector::ObserveConvInput(
    const std::string& value, const Tensor& x) {
  auto readers = conv_readers_.find(value);
  if (readers == conv_readers_.end()) return absl::OkStatus();
  for (const std::string& node : readers->second) {
    auto it = conv_layers_.find(node);
    if (it == conv_layers_.end()) continue;  // released
    const ConvPatchLayer& layer = it->second;
    if (!conv_patches_.contains(node)) {
      std::string why = ReserveHessian(
          ConvPatchHessianFloats(layer.weight_shape, layer.attributes.group));
      if (!why.empty()) {
        no_conv_patches_[node] = std::move(why);
        conv_layers_.erase(it);
        continue;
      }
    }
    QUANTD_ASSIGN_OR_RETURN(
        const ConvParams params,
        ResolveConvParams(layer.attributes, x.shape(), layer.weight_shape,
                          /*transposed=*/false));
    absl::Status st = AccumulateConvPatchHessian(x, params, layer.weight_shape,
                                                 conv_patches_[node]);
    if (!st.ok()) {
      return absl::InvalidArgumentError(
          absl::StrCat("Conv '", node, "': ", st.message()));
    }
  }
  return absl::OkStatus();
}

void InputStatisticsCollector::Release(const std::string& value) {
  auto it = entries_.find(value);
  if (it == entries_.end()) return;
  live_hessian_floats_ -= static_cast<int64_t>(it->second.stats.hessian.size());
  entries_.erase(it);
}

const ConvPatchHessian* InputStatisticsCollector::FindConvPatches(
    const std::string& node) const {
  auto it = conv_patches_.find(node);
  if (it == conv_patches_.end() || it->second.patches == 0) return nullptr;
  return &it->second;
}

void InputStatisticsCollector::ReleaseConvPatches(const std::string& node) {
  conv_layers_.erase(node);
  auto it = conv_patches_.find(node);
  if (it == conv_patches_.end()) return;
  live_hessian_floats_ -= static_cast<int64_t>(it->second.hessian.size());
  conv_patches_.erase(it);
}

const LayerInputStatistics* InputStatisticsCollector::Find(
    const std::string& value) const {
  auto it = entries_.find(value);
  if (it == entries_.end() || it->second.stats.rows == 0) return nullptr;
  return &it->second.stats;
}

namespace {

// Per-channel sums of `rows` rows of `c` channels each, and the reservoir
// sample: every row seen so far is kept with equal probability, whatever
// the dataset's length.
void AccumulateRows(const float* data, int64_t rows, int64_t c,
                    int64_t max_sample_rows, int64_t& seen_rows,
                    std::mt19937_64& rng, LayerInputStatistics& s) {
  for (int64_t r = 0; r < rows; ++r) {
    const float* row = data + r * c;
    for (int64_t j = 0; j < c; ++j) {
      s.abs_max[j] = std::max(s.abs_max[j], std::fabs(row[j]));
      s.sum[j] += row[j];
      s.sum_abs[j] += std::fabs(row[j]);
    }
    if (!s.sample.empty()) {
      const int64_t seen = seen_rows++;
      int64_t slot = -1;
      if (seen < max_sample_rows) {
        slot = seen;
        s.sample_rows = seen + 1;
      } else {
        std::uniform_int_distribution<int64_t> pick(0, seen);
        const int64_t k = pick(rng);
        if (k < max_sample_rows) slot = k;
      }
      if (slot >= 0) std::copy(row, row + c, s.sample.begin() + slot * c);
    }
  }
}

// Per-channel sums of `x` [N, C, ...] (channels in dim 1).
void AccumulateChannelsFirst(const Tensor& x, int64_t c,
                             LayerInputStatistics& s) {
  const float* data = x.data<float>();
  const int64_t inner = x.num_elements() / (x.dim(0) * c);
  for (int64_t n = 0; n < x.dim(0); ++n) {
    for (int64_t j = 0; j < c; ++j) {
      const float* p = data + (n * c + j) * inner;
      for (int64_t i = 0; i < inner; ++i) {
        s.abs_max[j] = std::max(s.abs_max[j], std::fabs(p[i]));
        s.sum[j] += p[i];
        s.sum_abs[j] += std::fabs(p[i]);
      }
    }
  }
}

// X^T X for this batch on oneDNN's f32 GEMM (rows x K^2 flops would take
// seconds in plain loops), summed across batches.
absl::Status AccumulateHessian(const Tensor& x, int64_t rows, int64_t c,
                               LayerInputStatistics& s) {
  const float* data = x.data<float>();
  Tensor xt(DataType::kFloat32, {c, rows});
  float* t = xt.mutable_data<float>();
  for (int64_t r = 0; r < rows; ++r) {
    for (int64_t j = 0; j < c; ++j) t[j * rows + r] = data[r * c + j];
  }
  QUANTD_ASSIGN_OR_RETURN(const Tensor x2, x.Reshaped({rows, c}));
  MatMulKernel gemm;
  Tensor h;
  QUANTD_RETURN_IF_ERROR(gemm.Forward(xt, x2, nullptr, &h));
  const float* hv = h.data<float>();
  for (int64_t i = 0; i < c * c; ++i) s.hessian[i] += hv[i];
  return absl::OkStatus();
}

}  // namespace

absl::Status InputStatisticsCollector::Observe(const std::string& value,
                                               Entry& e, const Tensor& x) {
  if (x.dtype() != DataType::kFloat32 || x.rank() < 1 ||
      (e.layout == ChannelLayout::kDim1 && x.rank() < 2)) {
    return absl::InvalidArgumentError(
        absl::StrCat("layer input statistics need a float tensor with "
                     "channels; got ",
                     x.DebugString()));
  }
  const int64_t c = e.layout == ChannelLayout::kLastDim ? x.dim(-1) : x.dim(1);
  LayerInputStatistics& s = e.stats;
  if (s.channels == 0) {
    s.channels = c;
    s.abs_max.assign(c, 0.f);
    s.sum.assign(c, 0.0);
    s.sum_abs.assign(c, 0.0);
    if (options_.hessian && e.layout == ChannelLayout::kLastDim) {
      const int64_t floats =
          c > (int64_t{1} << 31) ? std::numeric_limits<int64_t>::max() : c * c;
      std::string why = ReserveHessian(floats);
      if (why.empty()) {
        s.hessian.assign(c * c, 0.0f);
      } else {
        no_hessian_[value] = absl::StrCat("input of ", c, " channels: ", why);
      }
    }
    if (options_.max_sample_rows > 0 && e.layout == ChannelLayout::kLastDim) {
      s.sample.assign(options_.max_sample_rows * c, 0.f);
    }
  } else if (s.channels != c) {
    return absl::InvalidArgumentError(
        absl::StrCat("a layer input changed its channel count from ",
                     s.channels, " to ", c, " between batches"));
  }
  if (c == 0) return absl::OkStatus();
  const int64_t rows = x.num_elements() / c;
  if (e.layout == ChannelLayout::kLastDim) {
    AccumulateRows(x.data<float>(), rows, c, options_.max_sample_rows,
                   e.seen_rows, rng_, s);
  } else {
    AccumulateChannelsFirst(x, c, s);
  }
  if (!s.hessian.empty()) {
    QUANTD_RETURN_IF_ERROR(AccumulateHessian(x, rows, c, s));
  }
  s.rows += rows;
  return absl::OkStatus();
}

}  // namespace quantd
