// Reduction backward by loops: dy is broadcast back over the reduced axes
// (divided by the count for Mean; for Max/Min only the first extreme element
// of each slice receives it; L1, L2, SumSquare, LogSum and LogSumExp scale it
// by their derivative, recomputing the reduced values they need).
#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "kernels/backward.h"
#include "kernels/reduction.h"

namespace quantd {

absl::Status ReductionBackward(ReduceOp op, const Tensor& x,
                               absl::Span<const int64_t> axes, bool keepdims,
                               bool noop_with_empty_axes, const Tensor& dy,
                               Tensor* dx) {
  if (op == ReduceOp::kProd) {
    return absl::UnimplementedError(
        absl::StrCat("no backward for reduction ", ReduceOpName(op)));
  }
  if (x.dtype() != DataType::kFloat32 || dy.dtype() != DataType::kFloat32) {
    return absl::InvalidArgumentError(
        absl::StrCat("reduction backward takes f32, got ", x.DebugString(),
                     " and ", dy.DebugString()));
  }
  absl::StatusOr<Shape> out_shape =
      ReduceOutputShape(x.shape(), axes, keepdims, noop_with_empty_axes);
  if (!out_shape.ok()) return out_shape.status();
  if (*out_shape != dy.shape()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "reduction backward: dy has shape ", ShapeToString(dy.shape()),
        ", the forward output is ", ShapeToString(*out_shape)));
  }
  const int rank = x.rank();
  if (axes.empty() && noop_with_empty_axes) {
    *dx = dy.Clone();
    return absl::OkStatus();
  }
  std::vector<bool> reduced(rank, axes.empty());
  for (int64_t a : axes) reduced[a < 0 ? a + rank : a] = true;
  // Strides of dy (as the keepdims shape) over x's positions.
  std::vector<int64_t> strides(rank, 0);
  int64_t stride = 1, count = 1;
  for (int i = rank - 1; i >= 0; --i) {
    if (reduced[i]) {
      count *= x.dim(i);
    } else {
      strides[i] = stride;
      stride *= x.dim(i);
    }
  }
  const int64_t total = x.num_elements();
  // Calls f(i, o) for every x element i and its output element o.
  auto for_each = [&](auto&& f) {
    std::vector<int64_t> index(rank, 0);
    int64_t o = 0;
    for (int64_t i = 0; i < total; ++i) {
      f(i, o);
      for (int d = rank - 1; d >= 0; --d) {
        o += strides[d];
        if (++index[d] < x.dim(d)) break;
        o -= strides[d] * x.dim(d);
        index[d] = 0;
      }
    }
  };
  Tensor out = Tensor::Zeros(DataType::kFloat32, x.shape());
  const float* px = x.data<float>();
  const float* pdy = dy.data<float>();
  float* pdx = out.mutable_data<float>();
  const int64_t outputs = dy.num_elements();
  switch (op) {
    case ReduceOp::kSum:
    case ReduceOp::kMean: {
      const float scale = op == ReduceOp::kMean ? 1.f / count : 1.f;
      for_each([&](int64_t i, int64_t o) { pdx[i] = pdy[o] * scale; });
      break;
    }
    case ReduceOp::kMax:
    case ReduceOp::kMin: {
      std::vector<int64_t> best(outputs, -1);
      const bool max = op == ReduceOp::kMax;
      for_each([&](int64_t i, int64_t o) {
        if (best[o] < 0 || (max ? px[i] > px[best[o]] : px[i] < px[best[o]])) {
          best[o] = i;
        }
      });
      for (int64_t j = 0; j < outputs; ++j) {
        if (best[j] >= 0) pdx[best[j]] += pdy[j];
      }
      break;
    }
    case ReduceOp::kL1:  // sign(x); 0 at 0
      for_each([&](int64_t i, int64_t o) {
        pdx[i] = px[i] > 0 ? pdy[o] : (px[i] < 0 ? -pdy[o] : 0.f);
      });
      break;
    case ReduceOp::kSumSquare:
      for_each([&](int64_t i, int64_t o) { pdx[i] = 2 * px[i] * pdy[o]; });
      break;
    case ReduceOp::kL2:      // x / ||x||; 0 where the norm is 0
    case ReduceOp::kLogSum:  // 1 / sum(x)
    {
      std::vector<double> acc(outputs, 0.0);
      const bool l2 = op == ReduceOp::kL2;
      for_each([&](int64_t i, int64_t o) {
        acc[o] += l2 ? double(px[i]) * px[i] : double(px[i]);
      });
      for (double& v : acc) v = l2 ? (v > 0 ? 1.0 / std::sqrt(v) : 0.0) : 1 / v;
      for_each([&](int64_t i, int64_t o) {
        pdx[i] = static_cast<float>(pdy[o] * acc[o] * (l2 ? px[i] : 1.f));
      });
      break;
    }
    case ReduceOp::kLogSumExp: {  // softmax over the reduced elements
      std::vector<double> max(outputs,
                              -std::numeric_limits<double>::infinity());
      std::vector<double> sum(outputs, 0.0);
      for_each([&](int64_t i, int64_t o) {
        max[o] = std::max<double>(max[o], px[i]);
      });
      for_each(
          [&](int64_t i, int64_t o) { sum[o] += std::exp(px[i] - max[o]); });
      for_each([&](int64_t i, int64_t o) {
        pdx[i] = static_cast<float>(pdy[o] * std::exp(px[i] - max[o]) / sum[o]);
      });
      break;
    }
    default:
      break;
  }
  *dx = out;
  return absl::OkStatus();
}

}  // namespace quantd
