// Reductions over a set of axes (ONNX ReduceSum, ReduceMean, ReduceMax,
// ReduceMin, ReduceProd, ReduceL1, ReduceL2, ReduceSumSquare, ReduceLogSum,
// ReduceLogSumExp; opset 18 semantics with axes given up front).
//
//   ReductionForward mean(ReduceOp::kMean, /*axes=*/{2, 3}, /*keepdims=*/true);
//   Tensor y;
//   absl::Status s = mean.Forward(x, &y);           // [N,C,H,W] -> [N,C,1,1]
//   absl::StatusOr<Shape> shape =
//       ReduceOutputShape({2, 3, 4}, {-1}, /*keepdims=*/false);  // [2, 3]
//
// Axes may be negative; duplicates are an error. Empty axes reduce over all
// dims, unless noop_with_empty_axes, which makes the op an identity.
// Reducing over zero elements gives the op's identity: 0 for sums and norms,
// 1 for Prod, -inf/+inf for Max/Min (the type's lowest/highest for
// integers), NaN for Mean, -inf for LogSum and LogSumExp.
//
// Types: f32 for every op; int32 and int64 for Sum, Max, Min and Prod
// (integer overflow wraps). Sum, Mean, Max, Min, Prod and LogSum run on
// oneDNN's reduction primitive; L1, L2, SumSquare (oneDNN 2.6 has no JIT
// kernel for its norm reductions) and LogSumExp (max-shifted) run as
// vectorized loops. oneDNN 2.6 JIT-compiles only reductions over trailing
// dims, so the dims are first merged into alternating kept/reduced groups
// and, unless that leaves [kept, reduced], transposed to that layout (a
// oneDNN reorder) before reducing.
#ifndef QUANTD_KERNELS_REDUCTION_H_
#define QUANTD_KERNELS_REDUCTION_H_

#include <memory>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "kernels/primitive_cache.h"
#include "kernels/reorder.h"
#include "kernels/tensor.h"
#include "oneapi/dnnl/dnnl.hpp"

namespace quantd {

enum class ReduceOp {
  kSum,
  kMean,
  kMax,
  kMin,
  kProd,
  kL1,         // sum |x|
  kL2,         // sqrt(sum x^2)
  kSumSquare,  // sum x^2
  kLogSum,     // log(sum x)
  kLogSumExp,  // log(sum exp(x)), computed stably
};

const char* ReduceOpName(ReduceOp op);

absl::StatusOr<Shape> ReduceOutputShape(absl::Span<const int64_t> input,
                                        absl::Span<const int64_t> axes,
                                        bool keepdims,
                                        bool noop_with_empty_axes = false);

class ReductionForward {
 public:
  ReductionForward(ReduceOp op, std::vector<int64_t> axes, bool keepdims = true,
                   bool noop_with_empty_axes = false);
  absl::Status Forward(const Tensor& x, Tensor* y);

 private:
  // Per input shape: how to bring x into [kept, reduced] rows and reduce.
  struct Entry {
    Shape merged;  // dims after merging, for the transpose
    std::unique_ptr<TransposeForward> transpose;  // null if already in order
    int64_t kept = 1;                             // rows
    int64_t reduced = 1;                          // row length
    bool use_dnnl = false;
    dnnl::reduction prim;
    dnnl::memory::desc src_md, dst_md;
  };
  ReduceOp op_;
  std::vector<int64_t> axes_;
  bool keepdims_;
  bool noop_with_empty_axes_;
  PrimitiveCache<Entry> cache_;
};

// Plain-loop reference: accumulates every element into its output in double
// (int64 for integers).
absl::Status ReduceReference(ReduceOp op, const Tensor& x,
                             absl::Span<const int64_t> axes, bool keepdims,
                             bool noop_with_empty_axes, Tensor* y);

}  // namespace quantd

#endif  // QUANTD_KERNELS_REDUCTION_H_
