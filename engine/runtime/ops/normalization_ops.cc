// Softmax, LogSoftmax, LayerNormalization, BatchNormalization (inference)
// and the Reduce* family.
#include <cmath>
#include <map>
#include <memory>

#include "absl/strings/str_cat.h"
#include "engine/runtime/ops/op_util.h"
#include "engine/runtime/ops/register_ops.h"
#include "kernels/layer_norm.h"
#include "kernels/reduction.h"
#include "kernels/softmax.h"
#include "util/status_macros.h"

namespace quantd {
namespace {

// Softmax / LogSoftmax. Since opset 13 they normalize along one axis
// (default -1). Before, the input was coerced to 2-D at `axis` (default 1)
// and normalized over the whole flattened trailing block.
class SoftmaxKernel : public OpKernel {
 public:
  SoftmaxKernel(const OpKernelInfo& info, bool log)
      : legacy_(info.opset < 13),
        axis_(info.node.attributes.GetInt("axis", legacy_ ? 1 : -1)),
        log_(log),
        softmax_(legacy_ ? 1 : static_cast<int>(axis_), log) {}

  absl::Status Compute(OpKernelContext& ctx) override {
    QUANTD_ASSIGN_OR_RETURN(const Tensor* x, ctx.required_input(0));
    QUANTD_RETURN_IF_ERROR(ExpectDtype(*x, DataType::kFloat32, "input"));
    QUANTD_ASSIGN_OR_RETURN(
        int axis, NormalizeAxis(axis_, std::max(1, (x)->rank()), "axis"));
    if (!legacy_) {
      if ((x)->rank() == 0) {
        return absl::InvalidArgumentError("Softmax needs at least 1 dim");
      }
      return softmax_.Forward(*x, ctx.output(0));
    }
    int64_t outer = 1, inner = 1;
    for (int d = 0; d < (x)->rank(); ++d) {
      (d < axis ? outer : inner) *= (x)->dim(d);
    }
    absl::StatusOr<Tensor> flat = (x)->Reshaped({outer, inner});
    if (!flat.ok()) return flat.status();
    Tensor y;
    QUANTD_RETURN_IF_ERROR(softmax_.Forward(*flat, &y));
    QUANTD_ASSIGN_OR_RETURN(Tensor back, y.Reshaped((x)->shape()));
    ctx.set_output(0, std::move(back));
    return absl::OkStatus();
  }

 private:
  bool legacy_;
  int64_t axis_;
  bool log_;
  SoftmaxForward softmax_;
};

class LayerNormKernel : public OpKernel {
 public:
  explicit LayerNormKernel(const OpKernelInfo& info)
      : ln_(static_cast<int>(info.node.attributes.GetInt("axis", -1)),
            info.node.attributes.GetFloat("epsilon", 1e-5f)) {}

  absl::Status Compute(OpKernelContext& ctx) override {
    QUANTD_ASSIGN_OR_RETURN(const Tensor* x, ctx.required_input(0));
    QUANTD_ASSIGN_OR_RETURN(const Tensor* scale, ctx.required_input(1));
    const Tensor* bias = ctx.input(2);
    if (bias != nullptr && !bias->defined()) bias = nullptr;
    Tensor* mean = ctx.num_outputs() > 1 && !ctx.node().outputs[1].empty()
                       ? ctx.output(1)
                       : nullptr;
    Tensor* inv = ctx.num_outputs() > 2 && !ctx.node().outputs[2].empty()
                      ? ctx.output(2)
                      : nullptr;
    return ln_.Forward(*x, scale, bias, ctx.output(0), mean, inv);
  }

 private:
  LayerNormForward ln_;
};

// BatchNormalization in inference form: y = (x - mean) / sqrt(var + eps) *
// scale + B, per channel (dim 1). Normally folded into the Conv before it;
// this kernel runs the ones that are not.
class BatchNormKernel : public OpKernel {
 public:
  explicit BatchNormKernel(const OpKernelInfo& info)
      : epsilon_(info.node.attributes.GetFloat("epsilon", 1e-5f)) {}

  static absl::StatusOr<std::unique_ptr<OpKernel>> Create(
      const OpKernelInfo& info) {
    if (info.node.attributes.GetInt("training_mode", 0) != 0 ||
        (info.node.outputs.size() > 1 && !info.node.outputs[1].empty())) {
      return absl::UnimplementedError(
          "BatchNormalization in training mode is not supported; export the "
          "model in eval mode");
    }
    return std::make_unique<BatchNormKernel>(info);
  }

  absl::Status Compute(OpKernelContext& ctx) override {
    const Tensor* in[5];
    for (int i = 0; i < 5; ++i) {
      QUANTD_ASSIGN_OR_RETURN(const Tensor* t, ctx.required_input(i));
      QUANTD_RETURN_IF_ERROR(
          ExpectDtype(*t, DataType::kFloat32, absl::StrCat("input #", i)));
      in[i] = t;
    }
    const Tensor& x = *in[0];
    if (x.rank() < 2) {
      return absl::InvalidArgumentError(absl::StrCat(
          "input must be [N, C, ...], got ", ShapeToString(x.shape())));
    }
    const int64_t n = x.dim(0), c = x.dim(1);
    for (int i = 1; i < 5; ++i) {
      if (in[i]->num_elements() != c) {
        return absl::InvalidArgumentError(
            absl::StrCat("input #", i, " has ", in[i]->num_elements(),
                         " elements; the input has ", c, " channels"));
      }
    }
    const int64_t inner = c == 0 || n == 0 ? 0 : x.num_elements() / (n * c);
    std::vector<float> k(c), b(c);
    for (int64_t ch = 0; ch < c; ++ch) {
      k[ch] = in[1]->data<float>()[ch] /
              std::sqrt(in[4]->data<float>()[ch] + epsilon_);
      b[ch] = in[2]->data<float>()[ch] - in[3]->data<float>()[ch] * k[ch];
    }
    Tensor y(DataType::kFloat32, x.shape());
    const float* src = x.data<float>();
    float* dst = y.mutable_data<float>();
#pragma omp parallel for collapse(2)
    for (int64_t i = 0; i < n; ++i) {
      for (int64_t ch = 0; ch < c; ++ch) {
        const int64_t base = (i * c + ch) * inner;
        for (int64_t j = 0; j < inner; ++j) {
          dst[base + j] = src[base + j] * k[ch] + b[ch];
        }
      }
    }
    ctx.set_output(0, std::move(y));
    return absl::OkStatus();
  }

 private:
  float epsilon_;
};

// Reduce*: axes from the attribute, or from an optional input (ReduceSum
// since opset 13, every other Reduce op since opset 18, which quantd's
// opset-21 int4 exports use); empty axes reduce everything unless
// noop_with_empty_axes.
class ReduceKernel : public OpKernel {
 public:
  ReduceKernel(const OpKernelInfo& info, ReduceOp op, bool axes_from_input)
      : op_(op),
        axes_from_input_(axes_from_input),
        attr_axes_(info.node.attributes.GetInts("axes")),
        keepdims_(info.node.attributes.GetInt("keepdims", 1) != 0),
        noop_(info.node.attributes.GetInt("noop_with_empty_axes", 0) != 0) {}

  absl::Status Compute(OpKernelContext& ctx) override {
    QUANTD_ASSIGN_OR_RETURN(const Tensor* x, ctx.required_input(0));
    std::vector<int64_t> axes = attr_axes_;
    if (axes_from_input_) {
      axes.clear();
      if (const Tensor* t = ctx.input(1); t != nullptr && t->defined()) {
        QUANTD_ASSIGN_OR_RETURN(std::vector<int64_t> v, ReadInt64s(*t, "axes"));
        axes = v;
      }
    }
    if (axes.empty() && noop_) {
      ctx.set_output(0, *x);
      return absl::OkStatus();
    }
    if (axes.empty()) {
      for (int d = 0; d < (x)->rank(); ++d) axes.push_back(d);
    }
    std::unique_ptr<ReductionForward>& kernel = kernels_[axes];
    if (kernel == nullptr) {
      kernel = std::make_unique<ReductionForward>(op_, axes, keepdims_);
    }
    return kernel->Forward(*x, ctx.output(0));
  }

 private:
  ReduceOp op_;
  bool axes_from_input_;
  std::vector<int64_t> attr_axes_;
  bool keepdims_;
  bool noop_;
  std::map<std::vector<int64_t>, std::unique_ptr<ReductionForward>> kernels_;
};

OpKernelFactory Reduce(ReduceOp op, bool axes_input_since_13 = false) {
  return [op, axes_input_since_13](const OpKernelInfo& info)
             -> absl::StatusOr<std::unique_ptr<OpKernel>> {
    const int64_t since = axes_input_since_13 ? 13 : 18;
    return std::make_unique<ReduceKernel>(info, op, info.opset >= since);
  };
}

}  // namespace

void RegisterNormalizationOps(OpRegistry& r) {
  r.Register("Softmax",
             [](const OpKernelInfo& info)
                 -> absl::StatusOr<std::unique_ptr<OpKernel>> {
               return std::make_unique<SoftmaxKernel>(info, /*log=*/false);
             });
  r.Register("LogSoftmax",
             [](const OpKernelInfo& info)
                 -> absl::StatusOr<std::unique_ptr<OpKernel>> {
               return std::make_unique<SoftmaxKernel>(info, /*log=*/true);
             });
  r.Register("LayerNormalization", MakeFactory<LayerNormKernel>());
  r.Register("BatchNormalization", BatchNormKernel::Create);
  r.Register("ReduceSum", Reduce(ReduceOp::kSum, /*axes_input_since_13=*/true));
  r.Register("ReduceMean", Reduce(ReduceOp::kMean));
  r.Register("ReduceMax", Reduce(ReduceOp::kMax));
  r.Register("ReduceMin", Reduce(ReduceOp::kMin));
  r.Register("ReduceProd", Reduce(ReduceOp::kProd));
  r.Register("ReduceL1", Reduce(ReduceOp::kL1));
  r.Register("ReduceL2", Reduce(ReduceOp::kL2));
  r.Register("ReduceSumSquare", Reduce(ReduceOp::kSumSquare));
  r.Register("ReduceLogSum", Reduce(ReduceOp::kLogSum));
  r.Register("ReduceLogSumExp", Reduce(ReduceOp::kLogSumExp));
}

}  // namespace quantd
