// Softmax / LogSoftmax and LayerNormalization backward by loops (double
// accumulation per row).
#include <cmath>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "kernels/backward.h"
#include "kernels/binary.h"
#include "util/status_macros.h"

namespace quantd {
namespace {

absl::Status NormalizeAxis(int* axis, int rank, const char* what) {
  if (*axis < 0) *axis += rank;
  if (*axis < 0 || *axis >= rank) {
    return absl::InvalidArgumentError(
        absl::StrCat(what, ": axis out of range for rank ", rank));
  }
  return absl::OkStatus();
}

// `shape` without the leading 1s that make it longer than `rank` (a scale
// [1, 768] for normalized dims [768]).
Shape TrimLeadingOnes(Shape shape, size_t rank) {
  while (shape.size() > rank && shape[0] == 1) shape.erase(shape.begin());
  return shape;
}

// `t` (which broadcasts to `shape` without changing it) tiled to `shape`.
absl::StatusOr<std::vector<double>> Expand(const Tensor& t,
                                           const Shape& shape) {
  const Shape t_shape = TrimLeadingOnes(t.shape(), shape.size());
  QUANTD_ASSIGN_OR_RETURN(Shape b, BroadcastShapes(t_shape, shape));
  if (b != shape) {
    return absl::InvalidArgumentError(
        absl::StrCat("layer norm backward: ", ShapeToString(t.shape()),
                     " does not broadcast to ", ShapeToString(shape)));
  }
  const int rank = static_cast<int>(shape.size());
  const int offset = rank - static_cast<int>(t_shape.size());
  std::vector<int64_t> strides(rank, 0);
  int64_t stride = 1;
  for (int i = rank - 1; i >= offset; --i) {
    strides[i] = t_shape[i - offset] == 1 ? 0 : stride;
    stride *= t_shape[i - offset];
  }
  const int64_t total = NumElements(shape);
  std::vector<double> out(total);
  for (int64_t i = 0; i < total; ++i) {
    int64_t rem = i, off = 0;
    for (int d = rank - 1; d >= 0; --d) {
      off += (rem % shape[d]) * strides[d];
      rem /= shape[d];
    }
    out[i] = t.data<float>()[off];
  }
  return out;
}

}  // namespace

absl::Status SoftmaxBackward(const Tensor& y, const Tensor& dy, int axis,
                             bool log, Tensor* dx) {
  if (y.dtype() != DataType::kFloat32 || dy.dtype() != DataType::kFloat32 ||
      y.shape() != dy.shape()) {
    return absl::InvalidArgumentError(
        absl::StrCat("softmax backward takes f32 y and dy of one shape, got ",
                     y.DebugString(), " and ", dy.DebugString()));
  }
  QUANTD_RETURN_IF_ERROR(NormalizeAxis(&axis, y.rank(), "softmax backward"));
  int64_t outer = 1, inner = 1;
  for (int i = 0; i < axis; ++i) outer *= y.dim(i);
  for (int i = axis + 1; i < y.rank(); ++i) inner *= y.dim(i);
  const int64_t n = y.dim(axis);
  Tensor out(DataType::kFloat32, y.shape());
  const float* py = y.data<float>();
  const float* pdy = dy.data<float>();
  float* pdx = out.mutable_data<float>();
#pragma omp parallel for if (outer * inner * n > 65536)
  for (int64_t o = 0; o < outer; ++o) {
    for (int64_t in = 0; in < inner; ++in) {
      const int64_t base = o * n * inner + in;
      double s = 0;
      for (int64_t j = 0; j < n; ++j) {
        const int64_t i = base + j * inner;
        s += log ? double(pdy[i]) : double(pdy[i]) * py[i];
      }
      for (int64_t j = 0; j < n; ++j) {
        const int64_t i = base + j * inner;
        pdx[i] = log ? static_cast<float>(pdy[i] - std::exp(double(py[i])) * s)
                     : static_cast<float>(py[i] * (pdy[i] - s));
      }
    }
  }
  *dx = out;
  return absl::OkStatus();
}

absl::Status LayerNormBackward(const Tensor& x, const Tensor* scale,
                               const Tensor* bias, const Tensor& dy, int axis,
                               float epsilon, Tensor* dx, Tensor* dscale,
                               Tensor* dbias) {
  if (x.dtype() != DataType::kFloat32 || dy.dtype() != DataType::kFloat32 ||
      x.shape() != dy.shape()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "layer norm backward takes f32 x and dy of one shape, got ",
        x.DebugString(), " and ", dy.DebugString()));
  }
  QUANTD_RETURN_IF_ERROR(NormalizeAxis(&axis, x.rank(), "layer norm backward"));
  const Shape norm_shape(x.shape().begin() + axis, x.shape().end());
  const int64_t d = NumElements(norm_shape);
  const int64_t rows = d == 0 ? 0 : x.num_elements() / d;
  std::vector<double> gamma(d, 1.0);
  if (scale != nullptr) {
    QUANTD_ASSIGN_OR_RETURN(std::vector<double> g, Expand(*scale, norm_shape));
    gamma = std::move(g);
  }
  std::vector<double> dgamma(d, 0.0), dbeta(d, 0.0), xhat(d), g(d);
  Tensor out(DataType::kFloat32, x.shape());
  for (int64_t r = 0; r < rows; ++r) {
    const float* px = x.data<float>() + r * d;
    const float* pdy = dy.data<float>() + r * d;
    double mean = 0, var = 0;
    for (int64_t i = 0; i < d; ++i) mean += px[i];
    mean /= d;
    for (int64_t i = 0; i < d; ++i) var += (px[i] - mean) * (px[i] - mean);
    var /= d;
    const double inv = 1.0 / std::sqrt(var + epsilon);
    double mean_g = 0, mean_gx = 0;
    for (int64_t i = 0; i < d; ++i) {
      xhat[i] = (px[i] - mean) * inv;
      g[i] = pdy[i] * gamma[i];
      mean_g += g[i];
      mean_gx += g[i] * xhat[i];
      dgamma[i] += pdy[i] * xhat[i];
      dbeta[i] += pdy[i];
    }
    mean_g /= d;
    mean_gx /= d;
    float* pdx = out.mutable_data<float>() + r * d;
    for (int64_t i = 0; i < d; ++i) {
      pdx[i] = static_cast<float>(inv * (g[i] - mean_g - xhat[i] * mean_gx));
    }
  }
  if (dx != nullptr) *dx = out;
  auto emit = [&](const std::vector<double>& v, const Shape& shape,
                  Tensor* t) -> absl::Status {
    Tensor full(DataType::kFloat32, norm_shape);
    for (int64_t i = 0; i < d; ++i) {
      full.mutable_data<float>()[i] = static_cast<float>(v[i]);
    }
    Tensor summed;
    absl::Status s =
        SumToShape(full, TrimLeadingOnes(shape, norm_shape.size()), &summed);
    if (!s.ok()) return s;
    QUANTD_ASSIGN_OR_RETURN(Tensor reshaped, summed.Reshaped(shape));
    *t = reshaped;
    return absl::OkStatus();
  };
  if (dscale != nullptr) {
    absl::Status s =
        emit(dgamma, scale != nullptr ? scale->shape() : norm_shape, dscale);
    if (!s.ok()) return s;
  }
  if (dbias != nullptr) {
    absl::Status s =
        emit(dbeta, bias != nullptr ? bias->shape() : norm_shape, dbias);
    if (!s.ok()) return s;
  }
  return absl::OkStatus();
}

}  // namespace quantd
