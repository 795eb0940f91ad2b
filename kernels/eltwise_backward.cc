// Eltwise backward: oneDNN eltwise_backward (from the source x) where oneDNN
// has the algorithm, loops for Erf, HardSigmoid and Neg.
#include <cmath>
#include <memory>
#include <optional>
#include <string>
#include <unordered_map>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "kernels/backward.h"
#include "kernels/dnnl_context.h"
#include "kernels/post_ops.h"
#include "kernels/primitive_cache.h"
#include "oneapi/dnnl/dnnl.hpp"

namespace quantd {
namespace {

using algorithm = dnnl::algorithm;

struct Alg {
  algorithm alg;
  float alpha, beta;
};

// The oneDNN algorithm computing op's derivative, if it has one.
std::optional<Alg> DnnlAlgorithm(EltwiseOp op, float alpha, float beta) {
  switch (op) {
    case EltwiseOp::kRelu:
      return Alg{algorithm::eltwise_relu, 0.f, 0.f};
    case EltwiseOp::kLeakyRelu:
      return Alg{algorithm::eltwise_relu, alpha, 0.f};
    case EltwiseOp::kSigmoid:
      return Alg{algorithm::eltwise_logistic, 0.f, 0.f};
    case EltwiseOp::kHardSwish:
      return Alg{algorithm::eltwise_hardswish, 0.f, 0.f};
    case EltwiseOp::kTanh:
      return Alg{algorithm::eltwise_tanh, 0.f, 0.f};
    case EltwiseOp::kGeluErf:
      return Alg{algorithm::eltwise_gelu_erf, 0.f, 0.f};
    case EltwiseOp::kGeluTanh:
      return Alg{algorithm::eltwise_gelu_tanh, 0.f, 0.f};
    case EltwiseOp::kClip:
      return Alg{algorithm::eltwise_clip, alpha, beta};
    case EltwiseOp::kExp:
      return Alg{algorithm::eltwise_exp, 0.f, 0.f};
    case EltwiseOp::kLog:
      return Alg{algorithm::eltwise_log, 0.f, 0.f};
    case EltwiseOp::kSqrt:
      return Alg{algorithm::eltwise_sqrt, 0.f, 0.f};
    case EltwiseOp::kAbs:
      return Alg{algorithm::eltwise_abs, 0.f, 0.f};
    case EltwiseOp::kElu:
      return Alg{algorithm::eltwise_elu, alpha, 0.f};
    case EltwiseOp::kLinear:
      return Alg{algorithm::eltwise_linear, alpha, beta};
    default:
      return std::nullopt;
  }
}

struct Entry {
  dnnl::eltwise_backward prim;
  dnnl::memory::desc md;
  dnnl::memory::desc scratchpad;  // user-managed: one per execution
};

PrimitiveCache<Entry>& Cache() {
  static auto* cache = new PrimitiveCache<Entry>();
  return *cache;
}

}  // namespace

bool HasEltwiseBackward(EltwiseOp op) {
  return DnnlAlgorithm(op, 0.f, 0.f).has_value() || op == EltwiseOp::kErf ||
         op == EltwiseOp::kHardSigmoid || op == EltwiseOp::kNeg;
}

absl::Status EltwiseBackward(EltwiseOp op, float alpha, float beta,
                             const Tensor& x, const Tensor& dy, Tensor* dx) {
  if (x.dtype() != DataType::kFloat32 || dy.dtype() != DataType::kFloat32 ||
      x.shape() != dy.shape()) {
    return absl::InvalidArgumentError(
        absl::StrCat("eltwise backward of ", EltwiseOpName(op),
                     " takes f32 x and dy of one shape, got ", x.DebugString(),
                     " and ", dy.DebugString()));
  }
  if (!HasEltwiseBackward(op)) {
    return absl::UnimplementedError(
        absl::StrCat("no backward for eltwise ", EltwiseOpName(op)));
  }
  Tensor out(DataType::kFloat32, x.shape());
  const int64_t size = x.num_elements();
  const float* px = x.data<float>();
  const float* pdy = dy.data<float>();
  float* pdx = out.mutable_data<float>();
  if (std::optional<Alg> alg = DnnlAlgorithm(op, alpha, beta)) {
    if (size > 0) {
      const std::string key =
          absl::StrCat(static_cast<int>(alg->alg), ",", alg->alpha, ",",
                       alg->beta, ",", size);
      absl::StatusOr<std::shared_ptr<Entry>> entry =
          Cache().GetOrCreate(key, [&]() -> absl::StatusOr<Entry> {
            Entry e;
            absl::Status s = CatchDnnl("eltwise backward creation", [&] {
              e.md = PlainDesc(DataType::kFloat32, {size});
              dnnl::primitive_attr attr;
              attr.set_scratchpad_mode(dnnl::scratchpad_mode::user);
              dnnl::eltwise_forward::primitive_desc fwd(
                  dnnl::eltwise_forward::desc(dnnl::prop_kind::forward_training,
                                              alg->alg, e.md, alg->alpha,
                                              alg->beta),
                  attr, CpuEngine());
              dnnl::eltwise_backward::primitive_desc pd(
                  dnnl::eltwise_backward::desc(alg->alg, e.md, e.md, alg->alpha,
                                               alg->beta),
                  attr, CpuEngine(), fwd);
              e.prim = dnnl::eltwise_backward(pd);
              e.scratchpad = pd.scratchpad_desc();
            });
            if (!s.ok()) return s;
            return e;
          });
      if (!entry.ok()) return entry.status();
      const Entry& e = **entry;
      absl::Status s = CatchDnnl("eltwise backward", [&] {
        std::unordered_map<int, dnnl::memory> args = {
            {DNNL_ARG_SRC, WrapTensor(x, e.md)},
            {DNNL_ARG_DIFF_DST, WrapTensor(dy, e.md)},
            {DNNL_ARG_DIFF_SRC, WrapTensor(out, e.md)}};
        post_ops_internal::RunPrimitive(e.prim, e.scratchpad, args);
      });
      if (!s.ok()) return s;
    }
  } else if (op == EltwiseOp::kErf) {
    const double two_over_sqrt_pi = 2.0 / std::sqrt(M_PI);
#pragma omp parallel for if (size > 65536)
    for (int64_t i = 0; i < size; ++i) {
      const double v = px[i];
      pdx[i] = static_cast<float>(pdy[i] * two_over_sqrt_pi * std::exp(-v * v));
    }
  } else if (op == EltwiseOp::kHardSigmoid) {
#pragma omp parallel for if (size > 65536)
    for (int64_t i = 0; i < size; ++i) {
      const float t = alpha * px[i] + beta;
      pdx[i] = (t > 0.f && t < 1.f) ? pdy[i] * alpha : 0.f;
    }
  } else {  // kNeg
    for (int64_t i = 0; i < size; ++i) pdx[i] = -pdy[i];
  }
  *dx = out;
  return absl::OkStatus();
}

}  // namespace quantd
