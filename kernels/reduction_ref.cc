// Plain-loop reference for reduction.h: every input element is accumulated
// into its output slot, in double (floats) or wrapping uint64 (integers).
#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <vector>

#include "absl/strings/str_cat.h"
#include "kernels/reduction.h"

namespace quantd {

absl::Status ReduceReference(ReduceOp op, const Tensor& x,
                             absl::Span<const int64_t> axes, bool keepdims,
                             bool noop_with_empty_axes, Tensor* y) {
  const int rank = x.rank();
  absl::StatusOr<Shape> out_shape =
      ReduceOutputShape(x.shape(), axes, keepdims, noop_with_empty_axes);
  if (!out_shape.ok()) return out_shape.status();
  const DataType t = x.dtype();
  if (t != DataType::kFloat32 && t != DataType::kInt32 &&
      t != DataType::kInt64) {
    return absl::InvalidArgumentError("reference reduce takes f32/s32/s64");
  }
  Tensor out(t, *out_shape);
  if (axes.empty() && noop_with_empty_axes) {
    std::memcpy(out.mutable_raw_data(), x.raw_data(), x.byte_size());
    *y = out;
    return absl::OkStatus();
  }
  std::vector<bool> reduced(rank, axes.empty());
  for (int64_t a : axes) reduced[a < 0 ? a + rank : a] = true;
  const int64_t n_out = out.num_elements();
  std::vector<double> sum(n_out, 0), abs_sum(n_out, 0), sq_sum(n_out, 0);
  std::vector<double> prod(n_out, 1), count(n_out, 0);
  std::vector<double> max(n_out, -INFINITY), min(n_out, INFINITY);
  std::vector<uint64_t> isum(n_out, 0), iprod(n_out, 1);
  std::vector<int64_t> imax(n_out, std::numeric_limits<int64_t>::min());
  std::vector<int64_t> imin(n_out, std::numeric_limits<int64_t>::max());
  std::vector<int64_t> index(rank, 0);
  std::vector<int64_t> slot_of(x.num_elements());
  for (int64_t i = 0; i < x.num_elements(); ++i) {
    int64_t slot = 0;
    for (int k = 0; k < rank; ++k) {
      if (!reduced[k]) slot = slot * x.dim(k) + index[k];
    }
    slot_of[i] = slot;
    if (t == DataType::kFloat32) {
      const double v = x.data<float>()[i];
      sum[slot] += v;
      abs_sum[slot] += std::fabs(v);
      sq_sum[slot] += v * v;
      prod[slot] *= v;
      max[slot] = std::max(max[slot], v);
      min[slot] = std::min(min[slot], v);
      count[slot] += 1;
    } else {
      const int64_t v =
          t == DataType::kInt32 ? x.data<int32_t>()[i] : x.data<int64_t>()[i];
      isum[slot] += static_cast<uint64_t>(v);
      iprod[slot] *= static_cast<uint64_t>(v);
      imax[slot] = std::max(imax[slot], v);
      imin[slot] = std::min(imin[slot], v);
    }
    for (int k = rank - 1; k >= 0; --k) {
      if (++index[k] < x.dim(k)) break;
      index[k] = 0;
    }
  }
  if (t == DataType::kFloat32) {
    // LogSumExp needs the max first: a second pass.
    std::vector<double> exp_sum(n_out, 0);
    for (int64_t i = 0; i < x.num_elements(); ++i) {
      const int64_t s = slot_of[i];
      if (std::isfinite(max[s]))
        exp_sum[s] += std::exp(x.data<float>()[i] - max[s]);
    }
    for (int64_t s = 0; s < n_out; ++s) {
      double v = 0;
      switch (op) {
        case ReduceOp::kSum:
          v = sum[s];
          break;
        case ReduceOp::kMean:
          v = sum[s] / count[s];
          break;
        case ReduceOp::kMax:
          v = max[s];
          break;
        case ReduceOp::kMin:
          v = min[s];
          break;
        case ReduceOp::kProd:
          v = prod[s];
          break;
        case ReduceOp::kL1:
          v = abs_sum[s];
          break;
        case ReduceOp::kL2:
          v = std::sqrt(sq_sum[s]);
          break;
        case ReduceOp::kSumSquare:
          v = sq_sum[s];
          break;
        case ReduceOp::kLogSum:
          v = std::log(sum[s]);
          break;
        case ReduceOp::kLogSumExp:
          v = std::isfinite(max[s]) ? max[s] + std::log(exp_sum[s]) : max[s];
          break;
      }
      out.mutable_data<float>()[s] = static_cast<float>(v);
    }
  } else {
    for (int64_t s = 0; s < n_out; ++s) {
      int64_t v = 0;
      switch (op) {
        case ReduceOp::kSum:
          v = static_cast<int64_t>(isum[s]);
          break;
        case ReduceOp::kProd:
          v = static_cast<int64_t>(iprod[s]);
          break;
        case ReduceOp::kMax:
          v = imax[s];
          break;
        case ReduceOp::kMin:
          v = imin[s];
          break;
        default:
          return absl::InvalidArgumentError(absl::StrCat(
              "reference ", ReduceOpName(op), " does not take integers"));
      }
      if (t == DataType::kInt32) {
        // The empty-set extremes are the int32 ones.
        if (op == ReduceOp::kMax && v == std::numeric_limits<int64_t>::min()) {
          v = std::numeric_limits<int32_t>::min();
        }
        if (op == ReduceOp::kMin && v == std::numeric_limits<int64_t>::max()) {
          v = std::numeric_limits<int32_t>::max();
        }
        out.mutable_data<int32_t>()[s] = static_cast<int32_t>(v);
      } else {
        out.mutable_data<int64_t>()[s] = v;
      }
    }
  }
  *y = out;
  return absl::OkStatus();
}

}  // namespace quantd
