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
#include "util/status_macros.h"

namespace quantd {

namespace {

absl::Status CheckBackwardArgs(ReduceOp op, const Tensor& x,
                               absl::Span<const int64_t> axes, bool keepdims,
                               bool noop_with_empty_axes, const Tensor& dy) {
  if (op == ReduceOp::kProd) {
    return absl::UnimplementedError(
        absl::StrCat("no backward for reduction ", ReduceOpName(op)));
  }
  if (x.dtype() != DataType::kFloat32 || dy.dtype() != DataType::kFloat32) {
    return absl::InvalidArgumentError(
        absl::StrCat("reduction backward takes f32, got ", x.DebugString(),
                     " and ", dy.DebugString()));
  }
  QUANTD_ASSIGN_OR_RETURN(
      Shape out_shape,
      ReduceOutputShape(x.shape(), axes, keepdims, noop_with_empty_axes));
  if (out_shape != dy.shape()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "reduction backward: dy has shape ", ShapeToString(dy.shape()),
        ", the forward output is ", ShapeToString(out_shape)));
  }
  return absl::OkStatus();
}

// Pairs every x element with the dy element it was reduced into.
class ReducedIndex {
 public:
  ReducedIndex(const Shape& x_shape, const std::vector<bool>& reduced)
      : dims_(x_shape), strides_(x_shape.size(), 0) {
    // Strides of dy (as the keepdims shape) over x's positions.
    int64_t stride = 1;
    for (int i = static_cast<int>(dims_.size()) - 1; i >= 0; --i) {
      if (reduced[i]) {
        count_ *= dims_[i];
      } else {
        strides_[i] = stride;
        stride *= dims_[i];
      }
    }
  }

  // How many x elements each output reduces.
  int64_t count() const { return count_; }

  // Calls f(i, o) for every x element i and its output element o.
  template <typename F>
  void ForEach(F&& f) const {
    const int rank = static_cast<int>(dims_.size());
    const int64_t total = NumElements(dims_);
    std::vector<int64_t> index(rank, 0);
    int64_t o = 0;
    for (int64_t i = 0; i < total; ++i) {
      f(i, o);
      for (int d = rank - 1; d >= 0; --d) {
        o += strides_[d];
        if (++index[d] < dims_[d]) break;
        o -= strides_[d] * dims_[d];
        index[d] = 0;
      }
    }
  }

 private:
  Shape dims_;
  std::vector<int64_t> strides_;
  int64_t count_ = 1;
};

// Only the first extreme element of each slice receives dy.
void ExtremumGradient(bool max, const ReducedIndex& index, const float* px,
                      const float* pdy, int64_t outputs, float* pdx) {
  std::vector<int64_t> best(outputs, -1);
  index.ForEach([&](int64_t i, int64_t o) {
    if (best[o] < 0 || (max ? px[i] > px[best[o]] : px[i] < px[best[o]])) {
      best[o] = i;
    }
  });
  for (int64_t j = 0; j < outputs; ++j) {
    if (best[j] >= 0) pdx[best[j]] += pdy[j];
  }
}

// L2: x / ||x||, 0 where the norm is 0. LogSum: 1 / sum(x).
void L2OrLogSumGradient(bool l2, const ReducedIndex& index, const float* px,
                        const float* pdy, int64_t outputs, float* pdx) {
  std::vector<double> acc(outputs, 0.0);
  index.ForEach([&](int64_t i, int64_t o) {
    acc[o] += l2 ? double(px[i]) * px[i] : double(px[i]);
  });
  for (double& v : acc) v = l2 ? (v > 0 ? 1.0 / std::sqrt(v) : 0.0) : 1 / v;
  index.ForEach([&](int64_t i, int64_t o) {
    pdx[i] = static_cast<float>(pdy[o] * acc[o] * (l2 ? px[i] : 1.f));
  });
}

// The softmax over the reduced elements.
void LogSumExpGradient(const ReducedIndex& index, const float* px,
                       const float* pdy, int64_t outputs, float* pdx) {
  std::vector<double> max(outputs, -std::numeric_limits<double>::infinity());
  std::vector<double> sum(outputs, 0.0);
  index.ForEach(
      [&](int64_t i, int64_t o) { max[o] = std::max<double>(max[o], px[i]); });
  index.ForEach(
      [&](int64_t i, int64_t o) { sum[o] += std::exp(px[i] - max[o]); });
  index.ForEach([&](int64_t i, int64_t o) {
    pdx[i] = static_cast<float>(pdy[o] * std::exp(px[i] - max[o]) / sum[o]);
  });
}

// Writes dx for every op but Prod into pdx, which starts zeroed.
void ReductionGradient(ReduceOp op, const ReducedIndex& index, const float* px,
                       const float* pdy, int64_t outputs, float* pdx) {
  switch (op) {
    case ReduceOp::kSum:
    case ReduceOp::kMean: {
      const float scale = op == ReduceOp::kMean ? 1.f / index.count() : 1.f;
      index.ForEach([&](int64_t i, int64_t o) { pdx[i] = pdy[o] * scale; });
      break;
    }
    case ReduceOp::kMax:
    case ReduceOp::kMin:
      ExtremumGradient(op == ReduceOp::kMax, index, px, pdy, outputs, pdx);
      break;
    case ReduceOp::kL1:  // sign(x); 0 at 0
      index.ForEach([&](int64_t i, int64_t o) {
        pdx[i] = px[i] > 0 ? pdy[o] : (px[i] < 0 ? -pdy[o] : 0.f);
      });
      break;
    case ReduceOp::kSumSquare:
      index.ForEach([&](int64_t i, int64_t o) { pdx[i] = 2 * px[i] * pdy[o]; });
      break;
    case ReduceOp::kL2:
    case ReduceOp::kLogSum:
      L2OrLogSumGradient(op == ReduceOp::kL2, index, px, pdy, outputs, pdx);
      break;
    case ReduceOp::kLogSumExp:
      LogSumExpGradient(index, px, pdy, outputs, pdx);
      break;
    default:
      break;
  }
}

}  // namespace

absl::Status ReductionBackward(ReduceOp op, const Tensor& x,
                               absl::Span<const int64_t> axes, bool keepdims,
                               bool noop_with_empty_axes, const Tensor& dy,
                               Tensor* dx) {
  QUANTD_RETURN_IF_ERROR(
      CheckBackwardArgs(op, x, axes, keepdims, noop_with_empty_axes, dy));
  const int rank = x.rank();
  if (axes.empty() && noop_with_empty_axes) {
    *dx = dy.Clone();
    return absl::OkStatus();
  }
  std::vector<bool> reduced(rank, axes.empty());
  for (int64_t a : axes) reduced[a < 0 ? a + rank : a] = true;
  const ReducedIndex index(x.shape(), reduced);
  Tensor out = Tensor::Zeros(DataType::kFloat32, x.shape());
  ReductionGradient(op, index, x.data<float>(), dy.data<float>(),
                    dy.num_elements(), out.mutable_data<float>());
  *dx = out;
  return absl::OkStatus();
}

}  // namespace quantd
