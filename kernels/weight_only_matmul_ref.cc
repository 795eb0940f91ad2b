// The plain reference of weight_only_matmul.h: dequantize every weight from
// the unpacked codes and accumulate in double.
#include <vector>

#include "absl/strings/str_cat.h"
#include "kernels/weight_only_matmul.h"

namespace quantd {

absl::Status WeightOnlyMatMulReference(const Tensor& x, const Tensor& codes,
                                       const Tensor& scales,
                                       const Tensor& zero_points,
                                       int64_t group_size, const Tensor* bias,
                                       Tensor* y) {
  if (codes.rank() != 2 || codes.dtype() != DataType::kUInt8 ||
      x.dtype() != DataType::kFloat32 || x.rank() < 1 ||
      x.dim(-1) != codes.dim(0)) {
    return absl::InvalidArgumentError(
        absl::StrCat("reference weight-only MatMul: x ", x.DebugString(),
                     ", codes ", codes.DebugString()));
  }
  const int64_t k = codes.dim(0);
  const int64_t n = codes.dim(1);
  const int64_t gs = group_size > 0 ? group_size : k;
  std::vector<float> w(k * n);
  for (int64_t r = 0; r < k; ++r) {
    for (int64_t c = 0; c < n; ++c) {
      const int64_t p = (r / gs) * n + c;
      w[r * n + c] =
          scales.data<float>()[p] *
          static_cast<float>(int32_t{codes.data<uint8_t>()[r * n + c]} -
                             zero_points.data<int32_t>()[p]);
    }
  }
  Shape out = x.shape();
  out.back() = n;
  *y = Tensor(DataType::kFloat32, out);
  const int64_t m = x.num_elements() / k;
  for (int64_t i = 0; i < m; ++i) {
    for (int64_t c = 0; c < n; ++c) {
      double acc = bias != nullptr ? bias->data<float>()[c] : 0.0;
      for (int64_t r = 0; r < k; ++r) {
        acc += double{x.data<float>()[i * k + r]} * w[r * n + c];
      }
      y->mutable_data<float>()[i * n + c] = static_cast<float>(acc);
    }
  }
  return absl::OkStatus();
}

}  // namespace quantd
