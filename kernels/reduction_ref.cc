// Plain-loop reference for reduction.h: every input element is accumulated
// into its output slot, in double (floats) or wrapping uint64 (integers).
#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <vector>

#include "absl/strings/str_cat.h"
#include "kernels/reduction.h"
#include "util/status_macros.h"

namespace quantd {

namespace {

// Every statistic some op needs, per output slot.
struct Accumulators {
  explicit Accumulators(int64_t n)
      : sum(n, 0),
        abs_sum(n, 0),
        sq_sum(n, 0),
        prod(n, 1),
        count(n, 0),
        max(n, -INFINITY),
        min(n, INFINITY),
        isum(n, 0),
        iprod(n, 1),
        imax(n, std::numeric_limits<int64_t>::min()),
        imin(n, std::numeric_limits<int64_t>::max()) {}
  std::vector<double> sum, abs_sum, sq_sum, prod, count, max, min;
  std::vector<uint64_t> isum, iprod;
  std::vector<int64_t> imax, imin;
};

// The output slot of every input element.
std::vector<int64_t> SlotsOf(const Tensor& x,
                             const std::vector<bool>& reduced) {
  const int rank = x.rank();
  std::vector<int64_t> index(rank, 0);
  std::vector<int64_t> slot_of(x.num_elements());
  for (int64_t i = 0; i < x.num_elements(); ++i) {
    int64_t slot = 0;
    for (int k = 0; k < rank; ++k) {
      if (!reduced[k]) slot = slot * x.dim(k) + index[k];
    }
    slot_of[i] = slot;
    for (int k = rank - 1; k >= 0; --k) {
      if (++index[k] < x.dim(k)) break;
      index[k] = 0;
    }
  }
  return slot_of;
}

void Accumulate(const Tensor& x, const std::vector<int64_t>& slot_of,
                Accumulators* a) {
  const DataType t = x.dtype();
  for (int64_t i = 0; i < x.num_elements(); ++i) {
    const int64_t slot = slot_of[i];
    if (t == DataType::kFloat32) {
      const double v = x.data<float>()[i];
      a->sum[slot] += v;
      a->abs_sum[slot] += std::fabs(v);
      a->sq_sum[slot] += v * v;
      a->prod[slot] *= v;
      a->max[slot] = std::max(a->max[slot], v);
      a->min[slot] = std::min(a->min[slot], v);
      a->count[slot] += 1;
    } else {
      const int64_t v =
          t == DataType::kInt32 ? x.data<int32_t>()[i] : x.data<int64_t>()[i];
      a->isum[slot] += static_cast<uint64_t>(v);
      a->iprod[slot] *= static_cast<uint64_t>(v);
      a->imax[slot] = std::max(a->imax[slot], v);
      a->imin[slot] = std::min(a->imin[slot], v);
    }
  }
}

// LogSumExp needs the max first: a second pass over x.
std::vector<double> ShiftedExpSums(const Tensor& x,
                                   const std::vector<int64_t>& slot_of,
                                   const std::vector<double>& max) {
  std::vector<double> exp_sum(max.size(), 0);
  for (int64_t i = 0; i < x.num_elements(); ++i) {
    const int64_t s = slot_of[i];
    if (std::isfinite(max[s]))
      exp_sum[s] += std::exp(x.data<float>()[i] - max[s]);
  }
  return exp_sum;
}

double FloatResult(ReduceOp op, const Accumulators& a,
                   const std::vector<double>& exp_sum, int64_t s) {
  switch (op) {
    case ReduceOp::kSum:
      return a.sum[s];
    case ReduceOp::kMean:
      return a.sum[s] / a.count[s];
    case ReduceOp::kMax:
      return a.max[s];
    case ReduceOp::kMin:
      return a.min[s];
    case ReduceOp::kProd:
      return a.prod[s];
    case ReduceOp::kL1:
      return a.abs_sum[s];
    case ReduceOp::kL2:
      return std::sqrt(a.sq_sum[s]);
    case ReduceOp::kSumSquare:
      return a.sq_sum[s];
    case ReduceOp::kLogSum:
      return std::log(a.sum[s]);
    case ReduceOp::kLogSumExp:
      return std::isfinite(a.max[s]) ? a.max[s] + std::log(exp_sum[s])
                                     : a.max[s];
  }
  return 0;
}

absl::StatusOr<int64_t> IntegerResult(ReduceOp op, const Accumulators& a,
                                      int64_t s) {
  switch (op) {
    case ReduceOp::kSum:
      return static_cast<int64_t>(a.isum[s]);
    case ReduceOp::kProd:
      return static_cast<int64_t>(a.iprod[s]);
    case ReduceOp::kMax:
      return a.imax[s];
    case ReduceOp::kMin:
      return a.imin[s];
    default:
      return absl::InvalidArgumentError(absl::StrCat(
          "reference ", ReduceOpName(op), " does not take integers"));
  }
}

absl::Status WriteIntegerResults(ReduceOp op, const Accumulators& a,
                                 Tensor* out) {
  for (int64_t s = 0; s < out->num_elements(); ++s) {
    QUANTD_ASSIGN_OR_RETURN(int64_t result, IntegerResult(op, a, s));
    int64_t v = result;
    if (out->dtype() == DataType::kInt32) {
      // The empty-set extremes are the int32 ones.
      if (op == ReduceOp::kMax && v == std::numeric_limits<int64_t>::min()) {
        v = std::numeric_limits<int32_t>::min();
      }
      if (op == ReduceOp::kMin && v == std::numeric_limits<int64_t>::max()) {
        v = std::numeric_limits<int32_t>::max();
      }
      out->mutable_data<int32_t>()[s] = static_cast<int32_t>(v);
    } else {
      out->mutable_data<int64_t>()[s] = v;
    }
  }
  return absl::OkStatus();
}

}  // namespace

absl::Status ReduceReference(ReduceOp op, const Tensor& x,
                             absl::Span<const int64_t> axes, bool keepdims,
                             bool noop_with_empty_axes, Tensor* y) {
  const int rank = x.rank();
  QUANTD_ASSIGN_OR_RETURN(
      Shape out_shape,
      ReduceOutputShape(x.shape(), axes, keepdims, noop_with_empty_axes));
  const DataType t = x.dtype();
  if (t != DataType::kFloat32 && t != DataType::kInt32 &&
      t != DataType::kInt64) {
    return absl::InvalidArgumentError("reference reduce takes f32/s32/s64");
  }
  Tensor out(t, out_shape);
  if (axes.empty() && noop_with_empty_axes) {
    std::memcpy(out.mutable_raw_data(), x.raw_data(), x.byte_size());
    *y = out;
    return absl::OkStatus();
  }
  std::vector<bool> reduced(rank, axes.empty());
  for (int64_t a : axes) reduced[a < 0 ? a + rank : a] = true;
  const int64_t n_out = out.num_elements();
  const std::vector<int64_t> slot_of = SlotsOf(x, reduced);
  Accumulators acc(n_out);
  Accumulate(x, slot_of, &acc);
  if (t == DataType::kFloat32) {
    const std::vector<double> exp_sum = ShiftedExpSums(x, slot_of, acc.max);
    for (int64_t s = 0; s < n_out; ++s) {
      out.mutable_data<float>()[s] =
          static_cast<float>(FloatResult(op, acc, exp_sum, s));
    }
  } else {
    absl::Status s = WriteIntegerResults(op, acc, &out);
    if (!s.ok()) return s;
  }
  *y = out;
  return absl::OkStatus();
}

}  // namespace quantd
