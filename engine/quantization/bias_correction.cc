#include "engine/quantization/bias_correction.h"

#include "absl/strings/str_cat.h"

namespace quantd {
namespace {

const Node* FindNode(const Graph& graph, const std::string& name) {
  for (const Node& n : graph.nodes) {
    if (n.name == name) return &n;
  }
  return nullptr;
}

int64_t OutputChannels(const Tensor& w, const WeightSlot& slot) {
  return w.dim(static_cast<int>(slot.channel_axis));
}

}  // namespace

std::string FindBiasInitializer(const Graph& graph, const WeightSlot& slot) {
  const Node* node = FindNode(graph, slot.node);
  const Tensor* w = graph.FindInitializer(slot.initializer);
  if (node == nullptr || w == nullptr) return "";
  const int64_t channels = OutputChannels(*w, slot);
  auto per_channel = [&](const std::string& name) {
    const Tensor* b = graph.FindInitializer(name);
    return b != nullptr && b->dtype() == DataType::kFloat32 &&
           b->num_elements() == channels && b->dim(-1) == channels;
  };
  if (node->op_type == "Conv" || node->op_type == "Gemm") {
    if (node->op_type == "Gemm" &&
        node->attributes.GetFloat("beta", 1.f) == 0.f) {
      return "";
    }
    return node->has_input(2) && per_channel(node->input(2)) ? node->input(2)
                                                             : "";
  }
  // MatMul: the bias is a separate Add that only this MatMul feeds.
  const auto uses = ConsumerCounts(graph);
  auto u = uses.find(node->outputs[0]);
  if (u == uses.end() || u->second != 1) return "";
  for (const Node& n : graph.nodes) {
    if (n.op_type != "Add" || !n.domain.empty() || n.inputs.size() != 2) {
      continue;
    }
    for (int i = 0; i < 2; ++i) {
      if (n.inputs[i] == node->outputs[0] && per_channel(n.inputs[1 - i])) {
        // A bias shared with another reader cannot be changed for one.
        auto b = uses.find(n.inputs[1 - i]);
        return b != uses.end() && b->second == 1 ? n.inputs[1 - i] : "";
      }
    }
  }
  return "";
}

absl::StatusOr<Tensor> CorrectedBias(const Graph& graph, const WeightSlot& slot,
                                     const Tensor& quantized_weight,
                                     const std::vector<double>& input_mean) {
  const std::string bias_name = FindBiasInitializer(graph, slot);
  const Tensor* w = graph.FindInitializer(slot.initializer);
  const Node* node = FindNode(graph, slot.node);
  if (bias_name.empty() || w == nullptr || node == nullptr) {
    return absl::FailedPreconditionError(
        absl::StrCat("layer '", slot.node, "' has no bias to correct"));
  }
  if (quantized_weight.shape() != w->shape()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "quantized weight of '", slot.node, "' has shape ",
        quantized_weight.DebugString(), ", not ", w->DebugString()));
  }
  const int64_t out_channels = OutputChannels(*w, slot);
  std::vector<double> shift(out_channels, 0.0);
  const float* fw = w->data<float>();
  const float* qw = quantized_weight.data<float>();
  if (node->op_type == "Conv") {
    // [OC, C/groups, k...]: output channel o reads input channels of its
    // group.
    const int64_t groups = node->attributes.GetInt("group", 1);
    const int64_t cg = w->dim(1);
    const int64_t spatial = w->num_elements() / (out_channels * cg);
    if (static_cast<int64_t>(input_mean.size()) != cg * groups) {
      return absl::InvalidArgumentError(
          absl::StrCat("'", slot.node, "' reads ", cg * groups,
                       " channels; got ", input_mean.size(), " means"));
    }
    const int64_t per_group = out_channels / groups;
    for (int64_t o = 0; o < out_channels; ++o) {
      for (int64_t c = 0; c < cg; ++c) {
        const double m = input_mean[(o / per_group) * cg + c];
        for (int64_t s = 0; s < spatial; ++s) {
          const int64_t i = (o * cg + c) * spatial + s;
          shift[o] += (double{qw[i]} - fw[i]) * m;
        }
      }
    }
  } else {
    const int64_t k = w->dim(static_cast<int>(slot.input_axis));
    if (static_cast<int64_t>(input_mean.size()) != k) {
      return absl::InvalidArgumentError(
          absl::StrCat("'", slot.node, "' reads ", k, " channels; got ",
                       input_mean.size(), " means"));
    }
    const int64_t cols = w->dim(1);
    for (int64_t i = 0; i < w->num_elements(); ++i) {
      const int64_t r = i / cols, c = i % cols;
      const int64_t in = slot.input_axis == 0 ? r : c;
      const int64_t out = slot.input_axis == 0 ? c : r;
      shift[out] += (double{qw[i]} - fw[i]) * input_mean[in];
    }
    if (node->op_type == "Gemm") {
      // y = alpha A B + beta C: the shift is alpha-scaled, C beta-scaled.
      const double ratio = double{node->attributes.GetFloat("alpha", 1.f)} /
                           node->attributes.GetFloat("beta", 1.f);
      for (double& s : shift) s *= ratio;
    }
  }
  Tensor bias = graph.FindInitializer(bias_name)->Clone();
  float* b = bias.mutable_data<float>();
  for (int64_t o = 0; o < out_channels; ++o) {
    b[o] = static_cast<float>(b[o] - shift[o]);
  }
  return bias;
}

}  // namespace quantd
