// Plain-loop reference for eltwise.h, in double precision.
#include <algorithm>
#include <cmath>

#include "absl/strings/str_cat.h"
#include "kernels/eltwise.h"

namespace quantd {
namespace {

double Apply(EltwiseOp op, double a, double b, double x) {
  switch (op) {
    case EltwiseOp::kRelu:
      return x > 0 ? x : 0;
    case EltwiseOp::kLeakyRelu:
      return x >= 0 ? x : a * x;
    case EltwiseOp::kSigmoid:
      return 1 / (1 + std::exp(-x));
    case EltwiseOp::kHardSigmoid:
      return std::clamp(a * x + b, 0.0, 1.0);
    case EltwiseOp::kHardSwish:
      return x * std::clamp(x / 6 + 0.5, 0.0, 1.0);
    case EltwiseOp::kTanh:
      return std::tanh(x);
    case EltwiseOp::kErf:
      return std::erf(x);
    case EltwiseOp::kGeluErf:
      return 0.5 * x * (1 + std::erf(x / std::sqrt(2.0)));
    case EltwiseOp::kGeluTanh:
      return 0.5 * x *
             (1 + std::tanh(std::sqrt(2 / M_PI) * (x + 0.044715 * x * x * x)));
    case EltwiseOp::kClip:
      return std::min(std::max(x, a), b);
    case EltwiseOp::kExp:
      return std::exp(x);
    case EltwiseOp::kLog:
      return std::log(x);
    case EltwiseOp::kSqrt:
      return std::sqrt(x);
    case EltwiseOp::kAbs:
      return std::fabs(x);
    case EltwiseOp::kNeg:
      return -x;
    case EltwiseOp::kReciprocal:
      return 1 / x;
    case EltwiseOp::kPow:
      return std::pow(x, a);
    case EltwiseOp::kSoftplus:
      return std::log1p(std::exp(x));
    case EltwiseOp::kElu:
      return x > 0 ? x : a * std::expm1(x);
    case EltwiseOp::kSelu:
      return b * (x > 0 ? x : a * std::expm1(x));
    case EltwiseOp::kLinear:
      return a * x + b;
  }
  return 0;
}

}  // namespace

absl::Status EltwiseReference(EltwiseOp op, float alpha, float beta,
                              const Tensor& x, Tensor* y) {
  if (x.dtype() != DataType::kFloat32) {
    return absl::InvalidArgumentError(
        absl::StrCat(EltwiseOpName(op), " reference takes f32"));
  }
  Tensor out(DataType::kFloat32, x.shape());
  const float* in = x.data<float>();
  float* o = out.mutable_data<float>();
  for (int64_t i = 0; i < x.num_elements(); ++i) {
    o[i] = static_cast<float>(Apply(op, alpha, beta, in[i]));
  }
  *y = out;
  return absl::OkStatus();
}

}  // namespace quantd
