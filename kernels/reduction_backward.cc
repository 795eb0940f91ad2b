// ReduceSum / ReduceMean / ReduceMax / ReduceMin backward by loops: dy is
// broadcast back over the reduced axes (divided by the count for Mean; for
// Max/Min only the first extreme element of each slice receives it).
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
  if (op != ReduceOp::kSum && op != ReduceOp::kMean && op != ReduceOp::kMax &&
      op != ReduceOp::kMin) {
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
  Tensor out = Tensor::Zeros(DataType::kFloat32, x.shape());
  const float* px = x.data<float>();
  const float* pdy = dy.data<float>();
  float* pdx = out.mutable_data<float>();
  const bool extreme = op == ReduceOp::kMax || op == ReduceOp::kMin;
  std::vector<int64_t> best(extreme ? dy.num_elements() : 0, -1);
  std::vector<int64_t> index(rank, 0);
  int64_t o = 0;
  for (int64_t i = 0; i < total; ++i) {
    if (!extreme) {
      pdx[i] =
          op == ReduceOp::kMean ? pdy[o] / static_cast<float>(count) : pdy[o];
    } else if (best[o] < 0 || (op == ReduceOp::kMax ? px[i] > px[best[o]]
                                                    : px[i] < px[best[o]])) {
      best[o] = i;
    }
    for (int d = rank - 1; d >= 0; --d) {
      o += strides[d];
      if (++index[d] < x.dim(d)) break;
      o -= strides[d] * x.dim(d);
      index[d] = 0;
    }
  }
  for (size_t j = 0; j < best.size(); ++j) {
    if (best[j] >= 0) pdx[best[j]] += pdy[j];
  }
  *dx = out;
  return absl::OkStatus();
}

}  // namespace quantd
