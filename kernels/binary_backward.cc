// Broadcasting helpers and Add/Sub/Mul/Div/Max/Min backward by loops: each
// output element's gradient goes to the operand elements it was computed
// from, so broadcast dims are summed over.
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "kernels/backward.h"
#include "kernels/binary.h"
#include "util/status_macros.h"

namespace quantd {
namespace {

// Strides of an operand of `shape` indexed by positions of `out` (its
// broadcast): right-aligned, 0 along dims where the operand has size 1 or
// does not exist.
std::vector<int64_t> BroadcastStrides(const Shape& shape, const Shape& out) {
  const int rank = static_cast<int>(out.size());
  const int offset = rank - static_cast<int>(shape.size());
  std::vector<int64_t> strides(rank, 0);
  int64_t stride = 1;
  for (int i = rank - 1; i >= offset; --i) {
    strides[i] = shape[i - offset] == 1 ? 0 : stride;
    stride *= shape[i - offset];
  }
  return strides;
}

// Calls f(out_index, offset_0, offset_1) for every element of `out`, the
// offsets into operands with the given broadcast strides.
template <typename F>
void ForEachBroadcast(const Shape& out, const std::vector<int64_t>& s0,
                      const std::vector<int64_t>& s1, F&& f) {
  const int rank = static_cast<int>(out.size());
  const int64_t total = NumElements(out);
  std::vector<int64_t> index(rank, 0);
  int64_t o0 = 0, o1 = 0;
  for (int64_t i = 0; i < total; ++i) {
    f(i, o0, o1);
    for (int d = rank - 1; d >= 0; --d) {
      o0 += s0[d];
      o1 += s1[d];
      if (++index[d] < out[d]) break;
      o0 -= s0[d] * out[d];
      o1 -= s1[d] * out[d];
      index[d] = 0;
    }
  }
}

void Emit(const std::vector<double>& v, const Shape& shape, Tensor* t) {
  *t = Tensor(DataType::kFloat32, shape);
  float* p = t->mutable_data<float>();
  for (size_t i = 0; i < v.size(); ++i) p[i] = static_cast<float>(v[i]);
}

// No broadcasting (residual connections, most Mul/Div): one pass, no
// accumulation.
absl::Status SameShapeBackward(BinaryOp op, const Tensor& a, const Tensor& b,
                               const Tensor& dy, Tensor* da, Tensor* db) {
  const int64_t n = dy.num_elements();
  Tensor ga(DataType::kFloat32, a.shape()), gb(DataType::kFloat32, b.shape());
  const float* pa = a.data<float>();
  const float* pb = b.data<float>();
  const float* pdy = dy.data<float>();
  float* qa = ga.mutable_data<float>();
  float* qb = gb.mutable_data<float>();
#pragma omp parallel for if (n > 65536)
  for (int64_t i = 0; i < n; ++i) {
    const float d = pdy[i], x = pa[i], y = pb[i];
    switch (op) {
      case BinaryOp::kAdd:
        qa[i] = d;
        qb[i] = d;
        break;
      case BinaryOp::kSub:
        qa[i] = d;
        qb[i] = -d;
        break;
      case BinaryOp::kMul:
        qa[i] = d * y;
        qb[i] = d * x;
        break;
      case BinaryOp::kDiv:
        qa[i] = d / y;
        qb[i] = -d * x / (y * y);
        break;
      case BinaryOp::kMax:
        qa[i] = x >= y ? d : 0.f;
        qb[i] = x >= y ? 0.f : d;
        break;
      default:  // kMin
        qa[i] = x <= y ? d : 0.f;
        qb[i] = x <= y ? 0.f : d;
        break;
    }
  }
  if (da != nullptr) *da = ga;
  if (db != nullptr) *db = gb;
  return absl::OkStatus();
}

}  // namespace

absl::Status SumToShape(const Tensor& x, const Shape& shape, Tensor* out) {
  if (x.dtype() != DataType::kFloat32) {
    return absl::InvalidArgumentError(
        absl::StrCat("SumToShape takes f32, got ", x.DebugString()));
  }
  QUANTD_ASSIGN_OR_RETURN(Shape b, BroadcastShapes(shape, x.shape()));
  if (b != x.shape()) {
    return absl::InvalidArgumentError(
        absl::StrCat("cannot sum ", ShapeToString(x.shape()), " to ",
                     ShapeToString(shape), ": it does not broadcast to it"));
  }
  if (shape == x.shape()) {
    *out = x.Clone();
    return absl::OkStatus();
  }
  std::vector<double> acc(NumElements(shape), 0.0);
  const float* px = x.data<float>();
  ForEachBroadcast(x.shape(), BroadcastStrides(shape, x.shape()),
                   BroadcastStrides(x.shape(), x.shape()),
                   [&](int64_t i, int64_t o, int64_t) { acc[o] += px[i]; });
  Emit(acc, shape, out);
  return absl::OkStatus();
}

absl::Status BiasGradient(const Tensor& dy, int axis, Tensor* db) {
  const int rank = dy.rank();
  if (axis < 0) axis += rank;
  if (axis < 0 || axis >= rank) {
    return absl::InvalidArgumentError(
        absl::StrCat("BiasGradient: axis out of range for ", dy.DebugString()));
  }
  Shape shape(rank - axis, 1);
  shape[0] = dy.dim(axis);
  Tensor summed;
  QUANTD_RETURN_IF_ERROR(SumToShape(dy, shape, &summed));
  absl::StatusOr<Tensor> flat = summed.Reshaped({dy.dim(axis)});
  if (!flat.ok()) return flat.status();
  *db = *flat;
  return absl::OkStatus();
}

absl::Status BinaryBackward(BinaryOp op, const Tensor& a, const Tensor& b,
                            const Tensor& dy, Tensor* da, Tensor* db) {
  if (op != BinaryOp::kAdd && op != BinaryOp::kSub && op != BinaryOp::kMul &&
      op != BinaryOp::kDiv && op != BinaryOp::kMax && op != BinaryOp::kMin) {
    return absl::UnimplementedError(
        absl::StrCat("no backward for binary ", BinaryOpName(op)));
  }
  for (const Tensor* t : {&a, &b, &dy}) {
    if (t->dtype() != DataType::kFloat32) {
      return absl::InvalidArgumentError(absl::StrCat(
          "binary backward takes f32 tensors, got ", t->DebugString()));
    }
  }
  QUANTD_ASSIGN_OR_RETURN(Shape out, BroadcastShapes(a.shape(), b.shape()));
  if (out != dy.shape()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "binary backward: dy has shape ", ShapeToString(dy.shape()),
        ", the forward output is ", ShapeToString(out)));
  }
  if (a.shape() == b.shape()) return SameShapeBackward(op, a, b, dy, da, db);
  std::vector<double> ga(a.num_elements(), 0.0), gb(b.num_elements(), 0.0);
  const float* pa = a.data<float>();
  const float* pb = b.data<float>();
  const float* pdy = dy.data<float>();
  ForEachBroadcast(out, BroadcastStrides(a.shape(), out),
                   BroadcastStrides(b.shape(), out),
                   [&](int64_t i, int64_t ia, int64_t ib) {
                     const double d = pdy[i], x = pa[ia], y = pb[ib];
                     switch (op) {
                       case BinaryOp::kAdd:
                         ga[ia] += d;
                         gb[ib] += d;
                         break;
                       case BinaryOp::kSub:
                         ga[ia] += d;
                         gb[ib] -= d;
                         break;
                       case BinaryOp::kMul:
                         ga[ia] += d * y;
                         gb[ib] += d * x;
                         break;
                       case BinaryOp::kDiv:
                         ga[ia] += d / y;
                         gb[ib] -= d * x / (y * y);
                         break;
                       case BinaryOp::kMax:
                         (x >= y ? ga[ia] : gb[ib]) += d;
                         break;
                       default:  // kMin
                         (x <= y ? ga[ia] : gb[ib]) += d;
                         break;
                     }
                   });
  if (da != nullptr) Emit(ga, a.shape(), da);
  if (db != nullptr) Emit(gb, b.shape(), db);
  return absl::OkStatus();
}

}  // namespace quantd
