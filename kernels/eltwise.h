// Unary elementwise functions on f32 tensors (ONNX Relu, LeakyRelu, Sigmoid,
// HardSigmoid, HardSwish, Tanh, Erf, Gelu, Clip, Exp, Log, Sqrt, Abs, Neg,
// Reciprocal, Pow by a scalar, Softplus, Elu, Selu), one kernel class with the
// function chosen by an EltwiseOp and its parameters alpha/beta.
//
//   EltwiseForward leaky(EltwiseOp::kLeakyRelu, /*alpha=*/0.01f);
//   Tensor y;
//   absl::Status s = leaky.Forward(x, &y);   // y has x's shape
//   s = leaky.Forward(x, &x);                // in place is fine
//
// Most functions run as oneDNN eltwise primitives (JIT, vectorized). Erf and
// HardSigmoid have no oneDNN 2.6 algorithm and run as vectorized OpenMP
// loops (Erf as fitted polynomials: abs error <= 1.3e-7); Selu is
// oneDNN elu followed by an in-place linear. oneDNN's exp/log/erf use
// polynomial approximations: relative error ~1e-7 for most inputs, absolute
// error up to ~2e-6 where a result crosses zero (log near 1, Softplus for
// x < -10, Gelu tails).
#ifndef QUANTD_KERNELS_ELTWISE_H_
#define QUANTD_KERNELS_ELTWISE_H_

#include <vector>

#include "absl/status/status.h"
#include "kernels/primitive_cache.h"
#include "kernels/tensor.h"
#include "oneapi/dnnl/dnnl.hpp"

namespace quantd {

// The formula each op computes; unused parameters are ignored. ONNX
// defaults are in parentheses.
enum class EltwiseOp {
  kRelu,         // max(x, 0)
  kLeakyRelu,    // x >= 0 ? x : alpha * x                   (alpha 0.01)
  kSigmoid,      // 1 / (1 + exp(-x))
  kHardSigmoid,  // max(0, min(1, alpha * x + beta))         (0.2, 0.5)
  kHardSwish,    // x * max(0, min(1, x / 6 + 1 / 2))
  kTanh,         // tanh(x)
  kErf,          // erf(x)
  kGeluErf,      // x / 2 * (1 + erf(x / sqrt(2)))     Gelu approximate=none
  kGeluTanh,     // x / 2 * (1 + tanh(sqrt(2/pi) * (x + 0.044715 x^3)))
  kClip,         // min(max(x, alpha), beta)                 (-inf, +inf)
  kExp,          // exp(x)
  kLog,          // log(x)
  kSqrt,         // sqrt(x)
  kAbs,          // |x|
  kNeg,          // -x
  kReciprocal,   // 1 / x
  kPow,          // x ^ alpha
  kSoftplus,     // log(1 + exp(x))
  kElu,          // x > 0 ? x : alpha * (exp(x) - 1)         (alpha 1)
  kSelu,         // beta * (x > 0 ? x : alpha * (exp(x) - 1))
                 //                                (alpha 1.67326, gamma 1.0507)
  kLinear,       // alpha * x + beta
};

const char* EltwiseOpName(EltwiseOp op);

class EltwiseForward {
 public:
  explicit EltwiseForward(EltwiseOp op, float alpha = 0.f, float beta = 0.f);
  // x must be f32; *y is allocated unless it already is f32 of x's shape
  // (it may be x itself).
  absl::Status Forward(const Tensor& x, Tensor* y);

 private:
  struct Entry {
    // Executed in order; the first reads x, later ones work in place on y.
    std::vector<dnnl::eltwise_forward> prims;
    dnnl::memory::desc md;
  };
  EltwiseOp op_;
  float alpha_;
  float beta_;
  PrimitiveCache<Entry> cache_;
};

// Plain-loop reference (double precision std:: functions).
absl::Status EltwiseReference(EltwiseOp op, float alpha, float beta,
                              const Tensor& x, Tensor* y);

}  // namespace quantd

#endif  // QUANTD_KERNELS_ELTWISE_H_
