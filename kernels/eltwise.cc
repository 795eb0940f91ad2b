#include "kernels/eltwise.h"

#include <algorithm>
#include <cmath>
#include <new>

#include "absl/strings/str_cat.h"
#include "kernels/dnnl_context.h"
#include "kernels/parallel_for.h"

namespace quantd {
namespace {

using algorithm = dnnl::algorithm;

constexpr int64_t kParallelThreshold = 1 << 14;

// One oneDNN eltwise step: algorithm with its alpha and beta.
struct Step {
  algorithm alg;
  float alpha;
  float beta;
};

// The oneDNN steps that compute `op`, or an empty list when a loop does.
std::vector<Step> StepsFor(EltwiseOp op, float alpha, float beta) {
  switch (op) {
    case EltwiseOp::kRelu:
      return {{algorithm::eltwise_relu, 0.f, 0.f}};
    case EltwiseOp::kLeakyRelu:
      return {{algorithm::eltwise_relu, alpha, 0.f}};
    case EltwiseOp::kSigmoid:
      return {{algorithm::eltwise_logistic, 0.f, 0.f}};
    case EltwiseOp::kHardSwish:
      return {{algorithm::eltwise_hardswish, 0.f, 0.f}};
    case EltwiseOp::kTanh:
      return {{algorithm::eltwise_tanh, 0.f, 0.f}};
    case EltwiseOp::kGeluErf:
      return {{algorithm::eltwise_gelu_erf, 0.f, 0.f}};
    case EltwiseOp::kGeluTanh:
      return {{algorithm::eltwise_gelu_tanh, 0.f, 0.f}};
    case EltwiseOp::kClip:
      return {{algorithm::eltwise_clip, alpha, beta}};
    case EltwiseOp::kExp:
      return {{algorithm::eltwise_exp, 0.f, 0.f}};
    case EltwiseOp::kLog:
      return {{algorithm::eltwise_log, 0.f, 0.f}};
    case EltwiseOp::kSqrt:
      return {{algorithm::eltwise_sqrt, 0.f, 0.f}};
    case EltwiseOp::kAbs:
      return {{algorithm::eltwise_abs, 0.f, 0.f}};
    case EltwiseOp::kNeg:
      return {{algorithm::eltwise_linear, -1.f, 0.f}};
    case EltwiseOp::kReciprocal:  // pow(alpha=scale, beta=exponent)
      return {{algorithm::eltwise_pow, 1.f, -1.f}};
    case EltwiseOp::kPow:
      return {{algorithm::eltwise_pow, 1.f, alpha}};
    case EltwiseOp::kSoftplus:
      return {{algorithm::eltwise_soft_relu, 0.f, 0.f}};
    case EltwiseOp::kElu:
      return {{algorithm::eltwise_elu, alpha, 0.f}};
    case EltwiseOp::kSelu:
      // A linear post-op would make oneDNN 2.6 fall back to its reference
      // implementation; a second in-place JIT pass is faster.
      return {{algorithm::eltwise_elu, alpha, 0.f},
              {algorithm::eltwise_linear, beta, 0.f}};
    case EltwiseOp::kLinear:
      return {{algorithm::eltwise_linear, alpha, beta}};
    case EltwiseOp::kErf:
    case EltwiseOp::kHardSigmoid:
      return {};
  }
  return {};
}

// erf(x) in two polynomial pieces fitted by tools/fit_erf.py: x * A(x^2)
// for |x| <= 1 (relative accuracy near 0), B((|x| - 2.46) / 1.46) with x's
// sign for 1 < |x| <= 3.92, +-1 beyond (erf rounds to 1 in float32). Max
// error 1.3e-7 absolute, 2.2 ulp, on [-5, 5] against double erf; glibc's
// vectorized erff (libmvec) has 4 ulp, its scalar erff under 1 ulp.
// libm's erff is a scalar call per element (with range branches): a BERT-
// base encoder at batch 8 spent 60 ms of its 260 ms int8 run there. This
// is written without branches (both pieces, then a select) so that the
// loop vectorizes; compiled for AVX-512, AVX2 and baseline x86-64 and
// picked at load time, like QuantizeSpan (kernels/quantize.cc).
__attribute__((target_clones("avx512f", "avx2", "default"))) void ErfSpan(
    const float* x, float* y, int64_t n) {
#pragma omp simd
  for (int64_t i = 0; i < n; ++i) {
    const float v = x[i];
    const float a = std::fabs(v);
    const float z = v * v;
    float p = -9.670187599706327e-06f;
    p = p * z + 0.00011263556003460259f;
    p = p * z - 0.000848317906300732f;
    p = p * z + 0.005220921711718659f;
    p = p * z - 0.026865369135040472f;
    p = p * z + 0.11283780873973931f;
    p = p * z - 0.37612638292412715f;
    p = p * z + 1.1283791670116872f;
    // NaN survives the clamp (the comparisons are false).
    const float u = (std::min(a, 3.92f) - 2.46f) * (1.f / 1.46f);
    float q = 0.00021937129301885237f;
    q = q * u + 2.6446949969713293e-05f;
    q = q * u - 0.0016276130811962138f;
    q = q * u + 0.0015462336574918044f;
    q = q * u + 0.00333927062152647f;
    q = q * u - 0.008982964563907146f;
    q = q * u + 0.007346202932291575f;
    q = q * u + 0.006468402471278833f;
    q = q * u - 0.02844718309947579f;
    q = q * u + 0.045114237455571846f;
    q = q * u - 0.045047332999066415f;
    q = q * u + 0.030599121563389634f;
    q = q * u - 0.013928979844531366f;
    q = q * u + 0.0038781325250318646f;
    q = q * u + 0.9994966463556404f;
    const float tail = a > 3.92f ? 1.f : q;
    y[i] = a <= 1.f ? v * p : std::copysign(tail, v);
  }
}

void LoopForward(EltwiseOp op, float alpha, float beta, const float* x,
                 float* y, int64_t n) {
  if (op == EltwiseOp::kErf) {
    // Chunks of 4096 elements over the threads, each chunk vectorized.
    const int64_t chunks = (n + 4095) / 4096;
    ParallelFor(chunks, n >= kParallelThreshold, [&](int64_t c) {
      ErfSpan(x + c * 4096, y + c * 4096,
              std::min<int64_t>(4096, n - c * 4096));
    });
  } else {  // kHardSigmoid: min/max vectorize well
    ParallelForSimd(n, n >= kParallelThreshold, [&](int64_t i) {
      y[i] = std::min(1.f, std::max(0.f, alpha * x[i] + beta));
    });
  }
}

}  // namespace

const char* EltwiseOpName(EltwiseOp op) {
  switch (op) {
    case EltwiseOp::kRelu:
      return "relu";
    case EltwiseOp::kLeakyRelu:
      return "leaky_relu";
    case EltwiseOp::kSigmoid:
      return "sigmoid";
    case EltwiseOp::kHardSigmoid:
      return "hard_sigmoid";
    case EltwiseOp::kHardSwish:
      return "hard_swish";
    case EltwiseOp::kTanh:
      return "tanh";
    case EltwiseOp::kErf:
      return "erf";
    case EltwiseOp::kGeluErf:
      return "gelu_erf";
    case EltwiseOp::kGeluTanh:
      return "gelu_tanh";
    case EltwiseOp::kClip:
      return "clip";
    case EltwiseOp::kExp:
      return "exp";
    case EltwiseOp::kLog:
      return "log";
    case EltwiseOp::kSqrt:
      return "sqrt";
    case EltwiseOp::kAbs:
      return "abs";
    case EltwiseOp::kNeg:
      return "neg";
    case EltwiseOp::kReciprocal:
      return "reciprocal";
    case EltwiseOp::kPow:
      return "pow";
    case EltwiseOp::kSoftplus:
      return "softplus";
    case EltwiseOp::kElu:
      return "elu";
    case EltwiseOp::kSelu:
      return "selu";
    case EltwiseOp::kLinear:
      return "linear";
  }
  return "unknown";
}

EltwiseForward::EltwiseForward(EltwiseOp op, float alpha, float beta)
    : op_(op), alpha_(alpha), beta_(beta) {}

absl::Status EltwiseForward::Forward(const Tensor& x, Tensor* y) {
  if (y == nullptr) return absl::InvalidArgumentError("output is null");
  if (x.dtype() != DataType::kFloat32) {
    return absl::InvalidArgumentError(
        absl::StrCat(EltwiseOpName(op_), " takes an f32 tensor, got ",
                     x.defined() ? x.DebugString() : "an undefined one"));
  }
  if (!y->defined() || y->dtype() != DataType::kFloat32 ||
      y->shape() != x.shape()) {
    try {
      *y = Tensor(DataType::kFloat32, x.shape());
    } catch (const std::bad_alloc&) {
      return absl::ResourceExhaustedError(
          absl::StrCat("cannot allocate the output of ", EltwiseOpName(op_)));
    }
  }
  const int64_t n = x.num_elements();
  if (n == 0) return absl::OkStatus();
  std::vector<Step> steps = StepsFor(op_, alpha_, beta_);
  if (steps.empty()) {
    LoopForward(op_, alpha_, beta_, x.data<float>(), y->mutable_data<float>(),
                n);
    return absl::OkStatus();
  }
  // Elementwise results do not depend on the shape, only the count.
  absl::StatusOr<std::shared_ptr<Entry>> entry =
      cache_.GetOrCreate(absl::StrCat(n), [&]() -> absl::StatusOr<Entry> {
        Entry e;
        absl::Status s = CatchDnnl("eltwise creation", [&] {
          e.md = PlainDesc(DataType::kFloat32, {n});
          for (const Step& step : steps) {
            e.prims.emplace_back(dnnl::eltwise_forward::primitive_desc(
                dnnl::eltwise_forward::desc(dnnl::prop_kind::forward_inference,
                                            step.alg, e.md, step.alpha,
                                            step.beta),
                CpuEngine()));
          }
        });
        if (!s.ok()) return s;
        return e;
      });
  if (!entry.ok()) return entry.status();
  std::shared_ptr<Entry> e = *entry;
  SerialIfSmall serial(n);
  absl::Status status = CatchDnnl(EltwiseOpName(op_), [&] {
    dnnl::memory src = WrapTensor(x, e->md);
    dnnl::memory dst = WrapTensor(*y, e->md);
    for (size_t i = 0; i < e->prims.size(); ++i) {
      e->prims[i].execute(ThreadStream(), {{DNNL_ARG_SRC, i == 0 ? src : dst},
                                           {DNNL_ARG_DST, dst}});
    }
    ThreadStream().wait();
  });
  return status;
}

}  // namespace quantd
