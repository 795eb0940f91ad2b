#include "kernels/reduction.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <new>
#include <type_traits>

#include "absl/strings/str_cat.h"
#include "kernels/dnnl_context.h"
#include "kernels/parallel_for.h"
#include "util/status_macros.h"

namespace quantd {
namespace {

using algorithm = dnnl::algorithm;

constexpr int64_t kParallelThreshold = 1 << 14;

// Which dims are reduced; *identity when the op is a no-op.
absl::StatusOr<std::vector<bool>> ResolveAxes(int rank,
                                              absl::Span<const int64_t> axes,
                                              bool noop, bool* identity) {
  *identity = axes.empty() && noop;
  std::vector<bool> reduced(rank, axes.empty() && !noop);
  for (int64_t a : axes) {
    if (a < -rank || a >= rank) {
      return absl::InvalidArgumentError(
          absl::StrCat("reduce axis ", a, " is out of range for rank ", rank,
                       "; use -", rank, "..", rank - 1));
    }
    if (a < 0) a += rank;
    if (reduced[a]) {
      return absl::InvalidArgumentError(
          absl::StrCat("reduce axis ", a, " is listed twice"));
    }
    reduced[a] = true;
  }
  return reduced;
}

Shape OutputShape(const Shape& in, const std::vector<bool>& reduced,
                  bool keepdims) {
  Shape out;
  for (size_t i = 0; i < in.size(); ++i) {
    if (!reduced[i]) {
      out.push_back(in[i]);
    } else if (keepdims) {
      out.push_back(1);
    }
  }
  return out;
}

bool IntegerOpSupported(ReduceOp op) {
  return op == ReduceOp::kSum || op == ReduceOp::kMax || op == ReduceOp::kMin ||
         op == ReduceOp::kProd;
}

// The result of reducing zero elements.
template <typename T>
T EmptyValue(ReduceOp op) {
  using L = std::numeric_limits<T>;
  switch (op) {
    case ReduceOp::kProd:
      return T(1);
    case ReduceOp::kMax:
      return L::has_infinity ? -L::infinity() : L::lowest();
    case ReduceOp::kMin:
      return L::has_infinity ? L::infinity() : L::max();
    case ReduceOp::kMean:
      return L::quiet_NaN();
    case ReduceOp::kLogSum:
    case ReduceOp::kLogSumExp:
      return -L::infinity();
    default:
      return T(0);
  }
}

// The result of reducing exactly one element.
template <typename T>
T SingleValue(ReduceOp op, T x) {
  if constexpr (std::is_floating_point_v<T>) {
    switch (op) {
      case ReduceOp::kL1:
      case ReduceOp::kL2:
        return std::fabs(x);
      case ReduceOp::kSumSquare:
        return x * x;
      case ReduceOp::kLogSum:
        return std::log(x);
      default:
        return x;
    }
  }
  return x;
}

template <typename T>
void Fill(T* out, int64_t n, T v) {
  std::fill(out, out + n, v);
}

template <typename T>
void IntegerRows(ReduceOp op, const T* in, T* out, int64_t rows, int64_t len) {
  using U = std::make_unsigned_t<T>;  // wraps on overflow
  ParallelFor(rows, rows * len >= kParallelThreshold, [&](int64_t r) {
    const T* row = in + r * len;
    U acc = op == ReduceOp::kProd ? 1 : 0;
    T best = row[0];
    for (int64_t j = 0; j < len; ++j) {
      if (op == ReduceOp::kSum) acc += U(row[j]);
      if (op == ReduceOp::kProd) acc *= U(row[j]);
      if (op == ReduceOp::kMax) best = std::max(best, row[j]);
      if (op == ReduceOp::kMin) best = std::min(best, row[j]);
    }
    const bool extremum = op == ReduceOp::kMax || op == ReduceOp::kMin;
    out[r] = extremum ? best : T(acc);
  });
}

// L1, L2 and SumSquare: oneDNN 2.6 only has reference (non-JIT) kernels
// for its norm reductions; this loop vectorizes.
void NormRows(ReduceOp op, const float* in, float* out, int64_t rows,
              int64_t len) {
  ParallelFor(rows, rows * len >= kParallelThreshold, [&](int64_t r) {
    const float* row = in + r * len;
    float acc = 0;
    if (op == ReduceOp::kL1) {
#pragma omp simd reduction(+ : acc)
      for (int64_t j = 0; j < len; ++j) acc += std::fabs(row[j]);
    } else {
#pragma omp simd reduction(+ : acc)
      for (int64_t j = 0; j < len; ++j) acc += row[j] * row[j];
    }
    out[r] = op == ReduceOp::kL2 ? std::sqrt(acc) : acc;
  });
}

void LogSumExpRows(const float* in, float* out, int64_t rows, int64_t len) {
  ParallelFor(rows, rows * len >= kParallelThreshold, [&](int64_t r) {
    const float* row = in + r * len;
    float m = row[0];
    for (int64_t j = 1; j < len; ++j) m = std::max(m, row[j]);
    if (std::isinf(m) || std::isnan(m)) {  // all -inf, any +inf, or NaN
      out[r] = m;
      return;
    }
    double sum = 0;
    for (int64_t j = 0; j < len; ++j) sum += std::exp(double(row[j]) - m);
    out[r] = static_cast<float>(m + std::log(sum));
  });
}

absl::Status CheckReduceType(ReduceOp op, const Tensor& x) {
  const DataType t = x.dtype();
  const bool is_int = t == DataType::kInt32 || t == DataType::kInt64;
  if (t != DataType::kFloat32 && !(is_int && IntegerOpSupported(op))) {
    return absl::InvalidArgumentError(
        absl::StrCat(ReduceOpName(op), " does not support ",
                     x.defined() ? x.DebugString() : "an undefined tensor",
                     "; it takes f32 (and s32/s64 for sum, max, min, prod)"));
  }
  return absl::OkStatus();
}

// Reuses *y when it already has the output's type and shape.
absl::Status PrepareOutput(ReduceOp op, DataType t, const Shape& shape,
                           Tensor* y) {
  if (y->defined() && y->dtype() == t && y->shape() == shape) {
    return absl::OkStatus();
  }
  try {
    *y = Tensor(t, shape);
  } catch (const std::bad_alloc&) {
    return absl::ResourceExhaustedError(
        absl::StrCat("cannot allocate the output of ", ReduceOpName(op)));
  }
  return absl::OkStatus();
}

void FillEmptyReduction(ReduceOp op, Tensor* y) {
  const int64_t n = y->num_elements();
  switch (y->dtype()) {
    case DataType::kFloat32:
      Fill(y->mutable_data<float>(), n, EmptyValue<float>(op));
      break;
    case DataType::kInt32:
      Fill(y->mutable_data<int32_t>(), n, EmptyValue<int32_t>(op));
      break;
    default:
      Fill(y->mutable_data<int64_t>(), n, EmptyValue<int64_t>(op));
  }
}

// x's dims merged into alternating runs of kept and reduced dims (size-1
// dims dropped), and the order of runs that puts every kept one first.
struct MergedRuns {
  Shape merged;
  std::vector<int64_t> perm;
  int64_t kept = 1;
  int64_t reduced = 1;
};

MergedRuns MergeRuns(const Tensor& x, const std::vector<bool>& reduced) {
  MergedRuns m;
  std::vector<bool> kinds;
  for (int i = 0; i < x.rank(); ++i) {
    if (x.dim(i) == 1) continue;
    if (!kinds.empty() && kinds.back() == reduced[i]) {
      m.merged.back() *= x.dim(i);
    } else {
      m.merged.push_back(x.dim(i));
      kinds.push_back(reduced[i]);
    }
  }
  for (bool want_reduced : {false, true}) {
    for (size_t g = 0; g < kinds.size(); ++g) {
      if (kinds[g] != want_reduced) continue;
      m.perm.push_back(static_cast<int64_t>(g));
      (want_reduced ? m.reduced : m.kept) *= m.merged[g];
    }
  }
  return m;
}

// The ops that run as loops: integers, those without a JIT oneDNN kernel
// (see NormRows), and reductions over size-1 dims only.
bool RunsAsLoop(ReduceOp op, DataType t, int64_t reduced) {
  return t != DataType::kFloat32 || op == ReduceOp::kLogSumExp ||
         op == ReduceOp::kL1 || op == ReduceOp::kL2 ||
         op == ReduceOp::kSumSquare || reduced == 1;
}

algorithm DnnlAlgorithm(ReduceOp op) {
  switch (op) {
    case ReduceOp::kMean:
      return algorithm::reduction_mean;
    case ReduceOp::kMax:
      return algorithm::reduction_max;
    case ReduceOp::kMin:
      return algorithm::reduction_min;
    case ReduceOp::kProd:
      return algorithm::reduction_mul;
    default:  // kSum, kLogSum (log applied afterwards)
      return algorithm::reduction_sum;
  }
}

// Only size-1 dims are reduced: each output is the op on one element.
void ReduceSingletons(ReduceOp op, const Tensor& x, Tensor* y) {
  if (x.dtype() == DataType::kFloat32) {
    const float* in = x.data<float>();
    float* out = y->mutable_data<float>();
    const int64_t n = y->num_elements();
    for (int64_t i = 0; i < n; ++i) out[i] = SingleValue(op, in[i]);
  } else if (y->raw_data() != x.raw_data()) {
    std::memcpy(y->mutable_raw_data(), x.raw_data(), x.byte_size());
  }
}

// x as [kept, reduced] rows: x itself when the reduced dims already trail,
// else its merged dims transposed.
absl::StatusOr<Tensor> ToRows(const Tensor& x, const Shape& merged,
                              TransposeForward* transpose) {
  if (transpose == nullptr) return x;
  QUANTD_ASSIGN_OR_RETURN(Tensor reshaped, x.Reshaped(merged));
  Tensor moved;
  absl::Status s = transpose->Forward(reshaped, &moved);
  if (!s.ok()) return s;
  return moved;
}

// rows is [kept, reduced] as src_md describes it.
absl::Status RunDnnlReduction(ReduceOp op, const dnnl::reduction& prim,
                              const dnnl::memory::desc& src_md,
                              const dnnl::memory::desc& dst_md,
                              const Tensor& rows, Tensor* y) {
  SerialIfSmall serial(rows.num_elements());
  absl::Status s = CatchDnnl(ReduceOpName(op), [&] {
    dnnl::memory src = WrapTensor(rows, src_md);
    dnnl::memory dst = WrapTensor(*y, dst_md);
    prim.execute(ThreadStream(), {{DNNL_ARG_SRC, src}, {DNNL_ARG_DST, dst}});
    ThreadStream().wait();
  });
  if (!s.ok() || op != ReduceOp::kLogSum) return s;
  float* out = y->mutable_data<float>();
  const int64_t n = y->num_elements();
  for (int64_t i = 0; i < n; ++i) out[i] = std::log(out[i]);
  return absl::OkStatus();
}

void ReduceRowsByLoop(ReduceOp op, const Tensor& rows, int64_t kept,
                      int64_t reduced, Tensor* y) {
  switch (y->dtype()) {
    case DataType::kFloat32:
      if (op == ReduceOp::kLogSumExp) {
        LogSumExpRows(rows.data<float>(), y->mutable_data<float>(), kept,
                      reduced);
      } else {
        NormRows(op, rows.data<float>(), y->mutable_data<float>(), kept,
                 reduced);
      }
      break;
    case DataType::kInt32:
      IntegerRows(op, rows.data<int32_t>(), y->mutable_data<int32_t>(), kept,
                  reduced);
      break;
    default:
      IntegerRows(op, rows.data<int64_t>(), y->mutable_data<int64_t>(), kept,
                  reduced);
  }
}

}  // namespace

const char* ReduceOpName(ReduceOp op) {
  static const char* const kNames[] = {
      "reduce_sum",     "reduce_mean",       "reduce_max", "reduce_min",
      "reduce_prod",    "reduce_l1",         "reduce_l2",  "reduce_sum_square",
      "reduce_log_sum", "reduce_log_sum_exp"};
  return kNames[static_cast<int>(op)];
}

absl::StatusOr<Shape> ReduceOutputShape(absl::Span<const int64_t> input,
                                        absl::Span<const int64_t> axes,
                                        bool keepdims,
                                        bool noop_with_empty_axes) {
  bool identity;
  QUANTD_ASSIGN_OR_RETURN(std::vector<bool> reduced,
                          ResolveAxes(static_cast<int>(input.size()), axes,
                                      noop_with_empty_axes, &identity));
  const Shape in(input.begin(), input.end());
  return identity ? in : OutputShape(in, reduced, keepdims);
}

ReductionForward::ReductionForward(ReduceOp op, std::vector<int64_t> axes,
                                   bool keepdims, bool noop_with_empty_axes)
    : op_(op),
      axes_(std::move(axes)),
      keepdims_(keepdims),
      noop_with_empty_axes_(noop_with_empty_axes) {}

absl::Status ReductionForward::Forward(const Tensor& x, Tensor* y) {
  if (y == nullptr) return absl::InvalidArgumentError("output is null");
  QUANTD_RETURN_IF_ERROR(CheckReduceType(op_, x));
  const DataType t = x.dtype();
  bool identity;
  absl::StatusOr<std::vector<bool>> reduced =
      ResolveAxes(x.rank(), axes_, noop_with_empty_axes_, &identity);
  if (!reduced.ok()) return reduced.status();
  const Shape out_shape =
      identity ? x.shape() : OutputShape(x.shape(), *reduced, keepdims_);
  QUANTD_RETURN_IF_ERROR(PrepareOutput(op_, t, out_shape, y));
  if (y->num_elements() == 0) return absl::OkStatus();
  if (identity) {
    if (y->raw_data() != x.raw_data()) {
      std::memcpy(y->mutable_raw_data(), x.raw_data(), x.byte_size());
    }
    return absl::OkStatus();
  }
  if (x.num_elements() == 0) {  // a reduced dim is 0
    FillEmptyReduction(op_, y);
    return absl::OkStatus();
  }

  absl::StatusOr<std::shared_ptr<Entry>> entry =
      cache_.GetOrCreate(x.DebugString(), [&]() -> absl::StatusOr<Entry> {
        Entry e;
        MergedRuns runs = MergeRuns(x, *reduced);
        e.merged = std::move(runs.merged);
        e.kept = runs.kept;
        e.reduced = runs.reduced;
        if (!std::is_sorted(runs.perm.begin(), runs.perm.end())) {
          e.transpose = std::make_unique<TransposeForward>(runs.perm);
        }
        if (RunsAsLoop(op_, t, e.reduced)) return e;
        e.use_dnnl = true;
        absl::Status s = CatchDnnl("reduction creation", [&] {
          e.src_md = PlainDesc(DataType::kFloat32, {e.kept, e.reduced});
          e.dst_md = PlainDesc(DataType::kFloat32, {e.kept, 1});
          e.prim = dnnl::reduction(dnnl::reduction::primitive_desc(
              dnnl::reduction::desc(DnnlAlgorithm(op_), e.src_md, e.dst_md, 0.f,
                                    0.f),
              CpuEngine()));
        });
        if (!s.ok()) return s;
        return e;
      });
  if (!entry.ok()) return entry.status();
  std::shared_ptr<Entry> e = *entry;

  if (e->reduced == 1) {
    ReduceSingletons(op_, x, y);
    return absl::OkStatus();
  }
  QUANTD_ASSIGN_OR_RETURN(Tensor rows,
                          ToRows(x, e->merged, e->transpose.get()));
  if (e->use_dnnl) {
    return RunDnnlReduction(op_, e->prim, e->src_md, e->dst_md, rows, y);
  }
  ReduceRowsByLoop(op_, rows, e->kept, e->reduced, y);
  return absl::OkStatus();
}

}  // namespace quantd
