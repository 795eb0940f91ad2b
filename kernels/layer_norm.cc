#include "kernels/layer_norm.h"

#include <cmath>
#include <limits>
#include <new>
#include <unordered_map>
#include <vector>

#include "absl/strings/str_cat.h"
#include "kernels/binary.h"
#include "kernels/dnnl_context.h"
#include "util/status_macros.h"

namespace quantd {
namespace {

absl::Status Allocate(Tensor* t, const Shape& shape) {
  if (t->defined() && t->dtype() == DataType::kFloat32 && t->shape() == shape) {
    return absl::OkStatus();
  }
  try {
    *t = Tensor(DataType::kFloat32, shape);
  } catch (const std::bad_alloc&) {
    return absl::ResourceExhaustedError(absl::StrCat(
        "cannot allocate a layer norm output of shape ", ShapeToString(shape)));
  }
  return absl::OkStatus();
}

// Checks that `param` broadcasts to the normalized dims without growing
// them, and returns it as exactly norm_size floats: the tensor itself when
// it already has that many elements, a tiled copy otherwise.
absl::StatusOr<Tensor> ExpandParam(const char* what, const Tensor& param,
                                   const Shape& norm_shape) {
  if (param.dtype() != DataType::kFloat32) {
    return absl::InvalidArgumentError(
        absl::StrCat("layer norm ", what, " must be f32, got ",
                     param.defined() ? param.DebugString() : "undefined"));
  }
  // Leading 1s beyond the normalized rank line up with x's leading dims,
  // which ONNX's broadcasting allows.
  Shape shape = param.shape();
  while (shape.size() > norm_shape.size() && shape[0] == 1) {
    shape.erase(shape.begin());
  }
  absl::StatusOr<Shape> b = BroadcastShapes(shape, norm_shape);
  if (!b.ok() || *b != norm_shape) {
    return absl::InvalidArgumentError(absl::StrCat(
        "layer norm ", what, " of shape ", ShapeToString(param.shape()),
        " does not broadcast to the normalized dims ",
        ShapeToString(norm_shape)));
  }
  const int64_t n = NumElements(norm_shape);
  if (param.num_elements() == n) return param;
  Tensor out(DataType::kFloat32, {n});
  const int r = static_cast<int>(norm_shape.size());
  const int pr = static_cast<int>(shape.size());
  for (int64_t j = 0; j < n; ++j) {
    int64_t rem = j, offset = 0, stride = 1;
    for (int k = r - 1; k >= 0; --k) {
      const int64_t idx = rem % norm_shape[k];
      rem /= norm_shape[k];
      const int pk = k - (r - pr);
      if (pk >= 0) {
        if (shape[pk] != 1) offset += idx * stride;
        stride *= shape[pk];
      }
    }
    out.mutable_data<float>()[j] = param.data<float>()[offset];
  }
  return out;
}

absl::Status CheckLayerNormArgs(const Tensor& x, int axis, float epsilon) {
  const int rank = x.rank();
  if (x.dtype() != DataType::kFloat32 || rank == 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("layer norm takes an f32 tensor of rank >= 1, got ",
                     x.defined() ? x.DebugString() : "an undefined tensor"));
  }
  if (axis < -rank || axis >= rank) {
    return absl::InvalidArgumentError(
        absl::StrCat("layer norm axis ", axis, " is out of range for ",
                     x.DebugString(), "; use -", rank, "..", rank - 1));
  }
  if (!(epsilon >= 0) || std::isinf(epsilon)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "layer norm epsilon must be finite and >= 0, got ", epsilon));
  }
  return absl::OkStatus();
}

// gamma and beta stay undefined when scale or bias is null.
absl::Status ExpandParams(const Tensor* scale, const Tensor* bias,
                          const Shape& norm_shape, Tensor* gamma,
                          Tensor* beta) {
  if (scale != nullptr) {
    QUANTD_ASSIGN_OR_RETURN(Tensor g, ExpandParam("scale", *scale, norm_shape));
    *gamma = g;
  }
  if (bias != nullptr) {
    QUANTD_ASSIGN_OR_RETURN(Tensor b, ExpandParam("bias", *bias, norm_shape));
    *beta = b;
  }
  return absl::OkStatus();
}

// y has x's shape; mean and inv_std_dev (when wanted) x's shape with the
// normalized dims set to 1.
absl::Status AllocateOutputs(const Tensor& x, int axis, Tensor* y, Tensor* mean,
                             Tensor* inv_std_dev) {
  QUANTD_RETURN_IF_ERROR(Allocate(y, x.shape()));
  Shape stat_shape = x.shape();
  for (int i = axis; i < x.rank(); ++i) stat_shape[i] = 1;
  if (mean != nullptr) QUANTD_RETURN_IF_ERROR(Allocate(mean, stat_shape));
  if (inv_std_dev != nullptr) {
    QUANTD_RETURN_IF_ERROR(Allocate(inv_std_dev, stat_shape));
  }
  return absl::OkStatus();
}

// The statistics of zero elements.
void FillStatsWithNan(Tensor* mean, Tensor* inv_std_dev) {
  const float nan = std::numeric_limits<float>::quiet_NaN();
  for (Tensor* t : {mean, inv_std_dev}) {
    if (t != nullptr) {
      for (float& v : t->mutable_span<float>()) v = nan;
    }
  }
}

// oneDNN reports the variance; ONNX's third output is 1 / sqrt(var + eps).
void InvStdDevFromVariance(const Tensor& variance, float epsilon,
                           Tensor* inv_std_dev) {
  const float* var = variance.data<float>();
  float* inv = inv_std_dev->mutable_data<float>();
  const int64_t rows = variance.num_elements();
  for (int64_t i = 0; i < rows; ++i) inv[i] = 1.f / std::sqrt(var[i] + epsilon);
}

}  // namespace

LayerNormForward::LayerNormForward(int axis, float epsilon)
    : axis_(axis), epsilon_(epsilon) {}

absl::Status LayerNormForward::Forward(const Tensor& x, const Tensor* scale,
                                       const Tensor* bias, Tensor* y,
                                       Tensor* mean, Tensor* inv_std_dev) {
  if (y == nullptr) return absl::InvalidArgumentError("output is null");
  QUANTD_RETURN_IF_ERROR(CheckLayerNormArgs(x, axis_, epsilon_));
  const int axis = axis_ < 0 ? axis_ + x.rank() : axis_;
  const Shape norm_shape(x.shape().begin() + axis, x.shape().end());
  const int64_t rows =
      NumElements(Shape(x.shape().begin(), x.shape().begin() + axis));
  const int64_t cols = NumElements(norm_shape);
  Tensor gamma, beta;
  QUANTD_RETURN_IF_ERROR(ExpandParams(scale, bias, norm_shape, &gamma, &beta));
  QUANTD_RETURN_IF_ERROR(AllocateOutputs(x, axis, y, mean, inv_std_dev));
  if (rows == 0) return absl::OkStatus();
  if (cols == 0) {
    FillStatsWithNan(mean, inv_std_dev);
    return absl::OkStatus();
  }

  const bool want_stats = mean != nullptr || inv_std_dev != nullptr;
  const std::string key = absl::StrCat(rows, "x", cols, gamma.defined(),
                                       beta.defined(), want_stats);
  absl::StatusOr<std::shared_ptr<Entry>> entry =
      cache_.GetOrCreate(key, [&]() -> absl::StatusOr<Entry> {
        Entry e;
        absl::Status st = CatchDnnl("layer norm creation", [&] {
          e.data_md = PlainDesc(DataType::kFloat32, {rows, cols});
          auto flags = dnnl::normalization_flags::none;
          if (gamma.defined()) flags |= dnnl::normalization_flags::use_scale;
          if (beta.defined()) flags |= dnnl::normalization_flags::use_shift;
          dnnl::layer_normalization_forward::primitive_desc pd(
              dnnl::layer_normalization_forward::desc(
                  want_stats ? dnnl::prop_kind::forward_training
                             : dnnl::prop_kind::forward_inference,
                  e.data_md, epsilon_, flags),
              CpuEngine());
          e.scale_md = PlainDesc(DataType::kFloat32, {cols});
          e.stat_md = pd.mean_desc();
          e.prim = dnnl::layer_normalization_forward(pd);
        });
        if (!st.ok()) return st;
        return e;
      });
  if (!entry.ok()) return entry.status();
  std::shared_ptr<Entry> e = *entry;
  Tensor mean_buf = mean != nullptr ? *mean : Tensor();
  Tensor var_buf;
  if (want_stats) {
    if (!mean_buf.defined()) mean_buf = Tensor(DataType::kFloat32, {rows});
    var_buf = Tensor(DataType::kFloat32, {rows});
  }
  SerialIfSmall serial(x.num_elements());
  absl::Status s = CatchDnnl("layer norm", [&] {
    std::unordered_map<int, dnnl::memory> args = {
        {DNNL_ARG_SRC, WrapTensor(x, e->data_md)},
        {DNNL_ARG_DST, WrapTensor(*y, e->data_md)}};
    if (gamma.defined()) args[DNNL_ARG_SCALE] = WrapTensor(gamma, e->scale_md);
    if (beta.defined()) args[DNNL_ARG_SHIFT] = WrapTensor(beta, e->scale_md);
    if (want_stats) {
      args[DNNL_ARG_MEAN] = WrapTensor(mean_buf, e->stat_md);
      args[DNNL_ARG_VARIANCE] = WrapTensor(var_buf, e->stat_md);
    }
    e->prim.execute(ThreadStream(), args);
    ThreadStream().wait();
  });
  if (!s.ok() || inv_std_dev == nullptr) return s;
  InvStdDevFromVariance(var_buf, epsilon_, inv_std_dev);
  return absl::OkStatus();
}

}  // namespace quantd
