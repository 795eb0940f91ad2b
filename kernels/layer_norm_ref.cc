// Plain-loop reference for layer_norm.h: two-pass statistics in double.
#include <cmath>

#include "absl/strings/str_cat.h"
#include "kernels/layer_norm.h"

namespace quantd {
namespace {

// Element of `param` (broadcast right-aligned to norm_shape) for flat
// position j of the normalized block.
float ParamAt(const Tensor& param, const Shape& norm_shape, int64_t j) {
  int64_t offset = 0, stride = 1;
  for (int k = static_cast<int>(norm_shape.size()) - 1, pk = param.rank() - 1;
       k >= 0; --k, --pk) {
    const int64_t idx = j % norm_shape[k];
    j /= norm_shape[k];
    if (pk < 0) continue;
    if (param.shape()[pk] != 1) offset += idx * stride;
    stride *= param.shape()[pk];
  }
  return param.data<float>()[offset];
}

}  // namespace

absl::Status LayerNormReference(const Tensor& x, const Tensor* scale,
                                const Tensor* bias, int axis, float epsilon,
                                Tensor* y, Tensor* mean, Tensor* inv_std_dev) {
  const int rank = x.rank();
  if (x.dtype() != DataType::kFloat32 || axis < -rank || axis >= rank) {
    return absl::InvalidArgumentError(absl::StrCat(
        "reference layer norm cannot take ", x.DebugString(), " axis ", axis));
  }
  if (axis < 0) axis += rank;
  const Shape norm_shape(x.shape().begin() + axis, x.shape().end());
  int64_t rows = 1;
  for (int i = 0; i < axis; ++i) rows *= x.dim(i);
  const int64_t cols = NumElements(norm_shape);
  Shape stat_shape = x.shape();
  for (int i = axis; i < rank; ++i) stat_shape[i] = 1;
  Tensor out(DataType::kFloat32, x.shape());
  Tensor m(DataType::kFloat32, stat_shape), inv(DataType::kFloat32, stat_shape);
  const float* in = x.data<float>();
  for (int64_t r = 0; r < rows; ++r) {
    const float* row = in + r * cols;
    double sum = 0;
    for (int64_t j = 0; j < cols; ++j) sum += row[j];
    const double mu = sum / cols;
    double sq = 0;
    for (int64_t j = 0; j < cols; ++j) sq += (row[j] - mu) * (row[j] - mu);
    const double inv_std = 1 / std::sqrt(sq / cols + epsilon);
    for (int64_t j = 0; j < cols; ++j) {
      double v = (row[j] - mu) * inv_std;
      if (scale != nullptr) v *= ParamAt(*scale, norm_shape, j);
      if (bias != nullptr) v += ParamAt(*bias, norm_shape, j);
      out.mutable_data<float>()[r * cols + j] = static_cast<float>(v);
    }
    m.mutable_data<float>()[r] = static_cast<float>(mu);
    inv.mutable_data<float>()[r] = static_cast<float>(inv_std);
  }
  *y = out;
  if (mean != nullptr) *mean = m;
  if (inv_std_dev != nullptr) *inv_std_dev = inv;
  return absl::OkStatus();
}

}  // namespace quantd
