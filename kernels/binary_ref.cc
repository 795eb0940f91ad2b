// Plain-loop reference for binary.h: each output element unravels its index
// and reads both inputs through right-aligned broadcasting.
#include <cmath>
#include <limits>

#include "absl/strings/str_cat.h"
#include "kernels/binary.h"
#include "util/status_macros.h"

namespace quantd {
namespace {

// f32 ops computed in float, as the kernel does.
double ApplyFloat(BinaryOp op, double x, double y) {
  const float fx = static_cast<float>(x), fy = static_cast<float>(y);
  switch (op) {
    case BinaryOp::kAdd:
      return fx + fy;
    case BinaryOp::kSub:
      return fx - fy;
    case BinaryOp::kMul:
      return fx * fy;
    case BinaryOp::kDiv:
      return fx / fy;
    case BinaryOp::kMax:
      return fx > fy ? fx : fy;
    case BinaryOp::kMin:
      return fx < fy ? fx : fy;
    case BinaryOp::kPow:
      return std::pow(fx, fy);
    case BinaryOp::kEqual:
      return fx == fy;
    case BinaryOp::kLess:
      return fx < fy;
    case BinaryOp::kGreater:
      return fx > fy;
    case BinaryOp::kLessOrEqual:
      return fx <= fy;
    case BinaryOp::kGreaterOrEqual:
      return fx >= fy;
  }
  return 0;
}

template <typename T>
T ApplyInt(BinaryOp op, T x, T y) {
  // Unsigned 64-bit arithmetic wraps; truncating to T wraps again.
  const uint64_t ux = static_cast<uint64_t>(static_cast<int64_t>(x));
  const uint64_t uy = static_cast<uint64_t>(static_cast<int64_t>(y));
  switch (op) {
    case BinaryOp::kAdd:
      return static_cast<T>(ux + uy);
    case BinaryOp::kSub:
      return static_cast<T>(ux - uy);
    case BinaryOp::kMul:
      return static_cast<T>(ux * uy);
    case BinaryOp::kDiv: {
      if (x == std::numeric_limits<T>::min() && y == -1) return x;
      // C++ integer division truncates toward zero.
      return static_cast<T>(x / y);
    }
    case BinaryOp::kMax:
      return x > y ? x : y;
    case BinaryOp::kMin:
      return x < y ? x : y;
    case BinaryOp::kEqual:
      return x == y;
    case BinaryOp::kLess:
      return x < y;
    case BinaryOp::kGreater:
      return x > y;
    case BinaryOp::kLessOrEqual:
      return x <= y;
    case BinaryOp::kGreaterOrEqual:
      return x >= y;
    case BinaryOp::kPow:
      break;
  }
  return 0;
}

double ReadAsDouble(const Tensor& t, int64_t i) {
  switch (t.dtype()) {
    case DataType::kFloat32:
      return t.data<float>()[i];
    case DataType::kInt32:
      return t.data<int32_t>()[i];
    case DataType::kInt64:
      return static_cast<double>(t.data<int64_t>()[i]);
    default:
      return t.data<uint8_t>()[i];
  }
}

}  // namespace

absl::Status BinaryReference(BinaryOp op, const Tensor& a, const Tensor& b,
                             Tensor* out) {
  QUANTD_ASSIGN_OR_RETURN(Shape shape, BroadcastShapes(a.shape(), b.shape()));
  const DataType t = a.dtype();
  const bool int_type = t == DataType::kInt32 || t == DataType::kInt64;
  if (op == BinaryOp::kPow
          ? t != DataType::kFloat32
          : (t != b.dtype() ||
             (!int_type && t != DataType::kFloat32 && t != DataType::kBool))) {
    return absl::InvalidArgumentError(
        absl::StrCat("reference ", BinaryOpName(op), " cannot take ",
                     a.DebugString(), " and ", b.DebugString()));
  }
  if (op == BinaryOp::kDiv && int_type) {
    for (int64_t i = 0; i < b.num_elements(); ++i) {
      if (ReadAsDouble(b, i) == 0) {
        return absl::InvalidArgumentError("integer division by zero");
      }
    }
  }
  Tensor result(IsComparison(op) ? DataType::kBool : t, shape);
  const int r = static_cast<int>(shape.size());
  std::vector<int64_t> index(r, 0);
  for (int64_t o = 0; o < result.num_elements(); ++o) {
    // Offsets of the broadcast source elements.
    int64_t ia = 0, ib = 0;
    for (int k = 0; k < r; ++k) {
      const int ka = k - (r - a.rank()), kb = k - (r - b.rank());
      if (ka >= 0)
        ia = ia * a.shape()[ka] + (a.shape()[ka] == 1 ? 0 : index[k]);
      if (kb >= 0)
        ib = ib * b.shape()[kb] + (b.shape()[kb] == 1 ? 0 : index[k]);
    }
    if (t == DataType::kInt32) {
      int32_t v =
          ApplyInt<int32_t>(op, a.data<int32_t>()[ia], b.data<int32_t>()[ib]);
      if (IsComparison(op)) {
        result.mutable_data<uint8_t>()[o] = static_cast<uint8_t>(v);
      } else {
        result.mutable_data<int32_t>()[o] = v;
      }
    } else if (t == DataType::kInt64) {
      int64_t v =
          ApplyInt<int64_t>(op, a.data<int64_t>()[ia], b.data<int64_t>()[ib]);
      if (IsComparison(op)) {
        result.mutable_data<uint8_t>()[o] = static_cast<uint8_t>(v);
      } else {
        result.mutable_data<int64_t>()[o] = v;
      }
    } else {
      double v = ApplyFloat(op, ReadAsDouble(a, ia), ReadAsDouble(b, ib));
      if (IsComparison(op)) {
        result.mutable_data<uint8_t>()[o] = v != 0;
      } else {
        result.mutable_data<float>()[o] = static_cast<float>(v);
      }
    }
    for (int k = r - 1; k >= 0; --k) {
      if (++index[k] < (shape)[k]) break;
      index[k] = 0;
    }
  }
  *out = result;
  return absl::OkStatus();
}

}  // namespace quantd
