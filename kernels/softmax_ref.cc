// Plain-loop reference for softmax.h.
#include <algorithm>
#include <cmath>
#include <limits>

#include "absl/strings/str_cat.h"
#include "kernels/softmax.h"

namespace quantd {

absl::Status SoftmaxReference(const Tensor& x, int axis, bool log, Tensor* y) {
  const int rank = x.rank();
  if (x.dtype() != DataType::kFloat32 || axis < -rank || axis >= rank) {
    return absl::InvalidArgumentError(
        absl::StrCat("reference softmax cannot take ", x.DebugString(),
                     " with axis ", axis));
  }
  if (axis < 0) axis += rank;
  int64_t outer = 1, inner = 1;
  for (int i = 0; i < axis; ++i) outer *= x.dim(i);
  for (int i = axis + 1; i < rank; ++i) inner *= x.dim(i);
  const int64_t len = x.dim(axis);
  Tensor out(DataType::kFloat32, x.shape());
  const float* in = x.data<float>();
  float* o = out.mutable_data<float>();
  for (int64_t a = 0; a < outer; ++a) {
    for (int64_t b = 0; b < inner; ++b) {
      const int64_t base = a * len * inner + b;
      double max = -std::numeric_limits<double>::infinity();
      for (int64_t k = 0; k < len; ++k) {
        max = std::max<double>(max, in[base + k * inner]);
      }
      double sum = 0;
      for (int64_t k = 0; k < len; ++k) {
        sum += std::exp(in[base + k * inner] - max);
      }
      for (int64_t k = 0; k < len; ++k) {
        const double shifted = in[base + k * inner] - max;
        o[base + k * inner] = static_cast<float>(log ? shifted - std::log(sum)
                                                     : std::exp(shifted) / sum);
      }
    }
  }
  *y = out;
  return absl::OkStatus();
}

}  // namespace quantd
