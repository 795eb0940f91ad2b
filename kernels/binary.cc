#include "kernels/binary.h"

#include <algorithm>
#include <cmath>
#include <new>
#include <type_traits>
#include <vector>

#include "absl/strings/str_cat.h"
#include "kernels/dnnl_context.h"
#include "kernels/parallel_for.h"
#include "util/status_macros.h"

namespace quantd {
namespace {

using algorithm = dnnl::algorithm;

constexpr int64_t kParallelThreshold = 1 << 14;
// Below this many outputs the loop beats running a (cached) primitive,
// whose dispatch costs ~10 us: a GPT-2-small decoder step's 85 Adds on
// [1, 1, 768] took 1.1 ms through oneDNN, 0.43 ms in the loop (256 before).
// binary_test has shapes on both sides of it.
constexpr int64_t kMinDnnlElements = 4096;

absl::Status CheckTypes(BinaryOp op, const Tensor& a, const Tensor& b) {
  if (!a.defined() || !b.defined()) {
    return absl::InvalidArgumentError(
        absl::StrCat(BinaryOpName(op), " has an undefined input"));
  }
  const DataType t = a.dtype();
  if (op == BinaryOp::kPow) {
    const DataType e = b.dtype();
    if (t != DataType::kFloat32 ||
        (e != DataType::kFloat32 && e != DataType::kInt32 &&
         e != DataType::kInt64)) {
      // A valid ONNX combination this kernel does not implement.
      return absl::UnimplementedError(absl::StrCat(
          "pow takes an f32 base and an f32/s32/s64 exponent, got ",
          a.DebugString(), " and ", b.DebugString()));
    }
    return absl::OkStatus();
  }
  if (t != b.dtype()) {
    return absl::InvalidArgumentError(absl::StrCat(
        BinaryOpName(op), " inputs differ in type: ", a.DebugString(), " and ",
        b.DebugString(), "; cast one of them first"));
  }
  if (t == DataType::kFloat32 || t == DataType::kInt32 ||
      t == DataType::kInt64 ||
      (t == DataType::kBool && op == BinaryOp::kEqual)) {
    return absl::OkStatus();
  }
  return absl::UnimplementedError(absl::StrCat(
      BinaryOpName(op), " does not support ", DataTypeName(t), " inputs"));
}

// Output dims merged where both inputs broadcast the same way; a_dims and
// b_dims hold each merged dim or 1 where that input broadcasts.
struct Collapsed {
  Shape dims, a_dims, b_dims;
};

Collapsed Collapse(const Shape& out, const Shape& a, const Shape& b) {
  const size_t r = out.size();
  Collapsed c;
  int last = -1;
  for (size_t i = 0; i < r; ++i) {
    if (out[i] == 1) continue;
    const int64_t da = i + a.size() >= r ? a[i + a.size() - r] : 1;
    const int64_t db = i + b.size() >= r ? b[i + b.size() - r] : 1;
    const int pattern = (da == out[i] ? 1 : 0) | (db == out[i] ? 2 : 0);
    if (pattern == last) {
      c.dims.back() *= out[i];
      if (pattern & 1) c.a_dims.back() *= out[i];
      if (pattern & 2) c.b_dims.back() *= out[i];
    } else {
      c.dims.push_back(out[i]);
      c.a_dims.push_back(pattern & 1 ? out[i] : 1);
      c.b_dims.push_back(pattern & 2 ? out[i] : 1);
      last = pattern;
    }
  }
  if (c.dims.empty()) c.dims = c.a_dims = c.b_dims = {1};
  return c;
}

// Dense strides over `dims`, zero for broadcast (size-1) dims.
std::vector<int64_t> BroadcastStrides(const Shape& dims) {
  std::vector<int64_t> s(dims.size(), 0);
  int64_t stride = 1;
  for (int i = static_cast<int>(dims.size()) - 1; i >= 0; --i) {
    s[i] = dims[i] == 1 ? 0 : stride;
    stride *= dims[i];
  }
  return s;
}

template <typename T, typename O, typename F>
void StridedLoop(const Collapsed& c, const T* a, const T* b, O* out, F f) {
  const int r = static_cast<int>(c.dims.size());
  const std::vector<int64_t> as = BroadcastStrides(c.a_dims);
  const std::vector<int64_t> bs = BroadcastStrides(c.b_dims);
  const int64_t inner = c.dims[r - 1];
  const bool sa = as[r - 1] != 0, sb = bs[r - 1] != 0;
  const int64_t total = NumElements(c.dims);
  const int64_t rows = total / inner;
  ParallelFor(rows, total >= kParallelThreshold, [&](int64_t row) {
    int64_t rem = row, oa = 0, ob = 0;
    for (int i = r - 2; i >= 0; --i) {
      const int64_t idx = rem % c.dims[i];
      rem /= c.dims[i];
      oa += idx * as[i];
      ob += idx * bs[i];
    }
    const T* pa = a + oa;
    const T* pb = b + ob;
    O* po = out + row * inner;
    if (sa && sb) {
#pragma omp simd
      for (int64_t j = 0; j < inner; ++j) po[j] = f(pa[j], pb[j]);
    } else if (sa) {
      const T vb = pb[0];
#pragma omp simd
      for (int64_t j = 0; j < inner; ++j) po[j] = f(pa[j], vb);
    } else if (sb) {
      const T va = pa[0];
#pragma omp simd
      for (int64_t j = 0; j < inner; ++j) po[j] = f(va, pb[j]);
    } else {
      for (int64_t j = 0; j < inner; ++j) po[j] = f(pa[0], pb[0]);
    }
  });
}

template <typename T>
absl::Status RunLoop(BinaryOp op, const Collapsed& c, const Tensor& a,
                     const Tensor& b, Tensor* out) {
  const T* pa = a.data<T>();
  const T* pb = b.data<T>();
  uint8_t* pc = out->mutable_data<uint8_t>();
  T* po = out->mutable_data<T>();
  // Integers wrap on overflow instead of invoking undefined behaviour.
  using U =
      typename std::conditional_t<std::is_integral_v<T>, std::make_unsigned<T>,
                                  std::type_identity<T>>::type;
  switch (op) {
    case BinaryOp::kAdd:
      StridedLoop(c, pa, pb, po, [](T x, T y) { return T(U(x) + U(y)); });
      break;
    case BinaryOp::kSub:
      StridedLoop(c, pa, pb, po, [](T x, T y) { return T(U(x) - U(y)); });
      break;
    case BinaryOp::kMul:
      StridedLoop(c, pa, pb, po, [](T x, T y) { return T(U(x) * U(y)); });
      break;
    case BinaryOp::kDiv:
      if constexpr (std::is_integral_v<T>) {
        if (std::find(pb, pb + b.num_elements(), T(0)) !=
            pb + b.num_elements()) {
          return absl::InvalidArgumentError(
              absl::StrCat("integer division by zero (divisor ",
                           b.DebugString(), " has a zero element)"));
        }
        StridedLoop(c, pa, pb, po, [](T x, T y) {
          // min / -1 overflows (and traps on x86); it wraps to min.
          return y == T(-1) ? T(U(0) - U(x)) : T(x / y);
        });
      } else {
        StridedLoop(c, pa, pb, po, [](T x, T y) { return x / y; });
      }
      break;
    case BinaryOp::kMax:
      StridedLoop(c, pa, pb, po, [](T x, T y) { return x < y ? y : x; });
      break;
    case BinaryOp::kMin:
      StridedLoop(c, pa, pb, po, [](T x, T y) { return y < x ? y : x; });
      break;
    case BinaryOp::kPow:
      if constexpr (std::is_same_v<T, float>) {
        StridedLoop(c, pa, pb, po, [](T x, T y) { return std::pow(x, y); });
      }
      break;
    case BinaryOp::kEqual:
      StridedLoop(c, pa, pb, pc, [](T x, T y) { return uint8_t(x == y); });
      break;
    case BinaryOp::kLess:
      StridedLoop(c, pa, pb, pc, [](T x, T y) { return uint8_t(x < y); });
      break;
    case BinaryOp::kGreater:
      StridedLoop(c, pa, pb, pc, [](T x, T y) { return uint8_t(x > y); });
      break;
    case BinaryOp::kLessOrEqual:
      StridedLoop(c, pa, pb, pc, [](T x, T y) { return uint8_t(x <= y); });
      break;
    case BinaryOp::kGreaterOrEqual:
      StridedLoop(c, pa, pb, pc, [](T x, T y) { return uint8_t(x >= y); });
      break;
  }
  return absl::OkStatus();
}

// The oneDNN algorithm for op(x, y) and the one for op(y, x) if it exists.
bool DnnlAlgorithm(BinaryOp op, algorithm* alg, algorithm* swapped) {
  algorithm none = algorithm::undef;
  switch (op) {
    case BinaryOp::kAdd:
      *alg = *swapped = algorithm::binary_add;
      return true;
    case BinaryOp::kMul:
      *alg = *swapped = algorithm::binary_mul;
      return true;
    case BinaryOp::kMax:
      *alg = *swapped = algorithm::binary_max;
      return true;
    case BinaryOp::kMin:
      *alg = *swapped = algorithm::binary_min;
      return true;
    case BinaryOp::kEqual:
      *alg = *swapped = algorithm::binary_eq;
      return true;
    case BinaryOp::kSub:
      *alg = algorithm::binary_sub, *swapped = none;
      return true;
    case BinaryOp::kDiv:
      *alg = algorithm::binary_div, *swapped = none;
      return true;
    case BinaryOp::kLess:
      *alg = algorithm::binary_lt, *swapped = algorithm::binary_gt;
      return true;
    case BinaryOp::kGreater:
      *alg = algorithm::binary_gt, *swapped = algorithm::binary_lt;
      return true;
    case BinaryOp::kLessOrEqual:
      *alg = algorithm::binary_le, *swapped = algorithm::binary_ge;
      return true;
    case BinaryOp::kGreaterOrEqual:
      *alg = algorithm::binary_ge, *swapped = algorithm::binary_le;
      return true;
    case BinaryOp::kPow:
      return false;
  }
  return false;
}

// Reuses *out when it already has the output's type and shape.
absl::Status PrepareOutput(BinaryOp op, DataType type, const Shape& shape,
                           Tensor* out) {
  if (out->defined() && out->dtype() == type && out->shape() == shape) {
    return absl::OkStatus();
  }
  try {
    *out = Tensor(type, shape);
  } catch (const std::bad_alloc&) {
    return absl::ResourceExhaustedError(
        absl::StrCat("cannot allocate the ", ShapeToString(shape),
                     " output of ", BinaryOpName(op)));
  }
  return absl::OkStatus();
}

// The loop for every case oneDNN does not take. Pow's integer exponents
// become floats first.
absl::Status RunLoopForType(BinaryOp op, const Collapsed& c, const Tensor& a,
                            const Tensor& b, Tensor* out) {
  switch (a.dtype()) {
    case DataType::kFloat32:
      if (op == BinaryOp::kPow && b.dtype() != DataType::kFloat32) {
        Tensor exponent(DataType::kFloat32, b.shape());
        float* pe = exponent.mutable_data<float>();
        for (int64_t i = 0; i < b.num_elements(); ++i) {
          pe[i] = b.dtype() == DataType::kInt32
                      ? static_cast<float>(b.data<int32_t>()[i])
                      : static_cast<float>(b.data<int64_t>()[i]);
        }
        return RunLoop<float>(op, c, a, exponent, out);
      }
      return RunLoop<float>(op, c, a, b, out);
    case DataType::kInt32:
      return RunLoop<int32_t>(op, c, a, b, out);
    case DataType::kInt64:
      return RunLoop<int64_t>(op, c, a, b, out);
    default:  // kBool, kEqual only (checked by CheckTypes)
      return RunLoop<uint8_t>(op, c, a, b, out);
  }
}

}  // namespace

const char* BinaryOpName(BinaryOp op) {
  static const char* const kNames[] = {
      "add", "sub",   "mul",  "div",     "max",           "min",
      "pow", "equal", "less", "greater", "less_or_equal", "greater_or_equal"};
  return kNames[static_cast<int>(op)];
}

bool IsComparison(BinaryOp op) {
  return op == BinaryOp::kEqual || op == BinaryOp::kLess ||
         op == BinaryOp::kGreater || op == BinaryOp::kLessOrEqual ||
         op == BinaryOp::kGreaterOrEqual;
}

absl::StatusOr<Shape> BroadcastShapes(absl::Span<const int64_t> a,
                                      absl::Span<const int64_t> b) {
  const size_t r = std::max(a.size(), b.size());
  Shape out(r);
  for (size_t i = 0; i < r; ++i) {
    const int64_t da = i + a.size() >= r ? a[i + a.size() - r] : 1;
    const int64_t db = i + b.size() >= r ? b[i + b.size() - r] : 1;
    if (da < 0 || db < 0 || (da != db && da != 1 && db != 1)) {
      return absl::InvalidArgumentError(absl::StrCat(
          "shapes ", ShapeToString(a), " and ", ShapeToString(b),
          " do not broadcast: dims must match or be 1 (right-aligned)"));
    }
    out[i] = da == 1 ? db : da;
  }
  QUANTD_RETURN_IF_ERROR((CheckedNumElements(out)).status());
  return out;
}

BinaryForward::BinaryForward(BinaryOp op) : op_(op) {}

absl::Status BinaryForward::Forward(const Tensor& a, const Tensor& b,
                                    Tensor* out) {
  if (out == nullptr) return absl::InvalidArgumentError("output is null");
  absl::Status s = CheckTypes(op_, a, b);
  if (!s.ok()) return s;
  QUANTD_ASSIGN_OR_RETURN(Shape shape, BroadcastShapes(a.shape(), b.shape()));
  const DataType out_type = IsComparison(op_) ? DataType::kBool : a.dtype();
  s = PrepareOutput(op_, out_type, shape, out);
  if (!s.ok()) return s;
  if (out->num_elements() == 0) return absl::OkStatus();
  const Collapsed c = Collapse(shape, a.shape(), b.shape());

  algorithm alg = algorithm::undef, swapped_alg = algorithm::undef;
  const bool dnnl_ok = a.dtype() == DataType::kFloat32 &&
                       DnnlAlgorithm(op_, &alg, &swapped_alg) &&
                       out->num_elements() >= kMinDnnlElements &&
                       c.dims.size() <= DNNL_MAX_NDIMS;
  const bool a_full = c.a_dims == c.dims;
  const bool b_full = c.b_dims == c.dims;
  if (dnnl_ok && (a_full || (b_full && swapped_alg != algorithm::undef))) {
    const std::string key =
        absl::StrCat(ShapeToString(c.dims), ShapeToString(c.a_dims),
                     ShapeToString(c.b_dims));
    absl::StatusOr<std::shared_ptr<Entry>> entry =
        cache_.GetOrCreate(key, [&]() -> absl::StatusOr<Entry> {
          Entry e;
          e.swapped = !a_full;
          absl::Status st = CatchDnnl("binary creation", [&] {
            e.src0_md = PlainDesc(DataType::kFloat32, c.dims);
            e.src1_md =
                PlainDesc(DataType::kFloat32, e.swapped ? c.a_dims : c.b_dims);
            e.dst_md = dnnl::memory::desc(ToDnnlDims(c.dims),
                                          IsComparison(op_)
                                              ? dnnl::memory::data_type::u8
                                              : dnnl::memory::data_type::f32,
                                          DenseStrides(c.dims));
            e.prim = dnnl::binary(dnnl::binary::primitive_desc(
                dnnl::binary::desc(e.swapped ? swapped_alg : alg, e.src0_md,
                                   e.src1_md, e.dst_md),
                CpuEngine()));
          });
          if (!st.ok()) return st;
          return e;
        });
    if (!entry.ok()) return entry.status();
    std::shared_ptr<Entry> e = *entry;
    SerialIfSmall serial(out->num_elements());
    return CatchDnnl(BinaryOpName(op_), [&] {
      dnnl::memory m0 = WrapTensor(e->swapped ? b : a, e->src0_md);
      dnnl::memory m1 = WrapTensor(e->swapped ? a : b, e->src1_md);
      dnnl::memory md = WrapTensor(*out, e->dst_md);
      e->prim.execute(
          ThreadStream(),
          {{DNNL_ARG_SRC_0, m0}, {DNNL_ARG_SRC_1, m1}, {DNNL_ARG_DST, md}});
      ThreadStream().wait();
    });
  }

  return RunLoopForType(op_, c, a, b, out);
}

}  // namespace quantd
