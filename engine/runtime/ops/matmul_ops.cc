// MatMul and Gemm on the oneDNN matmul kernel.
#include <memory>

#include "absl/strings/str_cat.h"
#include "engine/runtime/ops/op_util.h"
#include "engine/runtime/ops/register_ops.h"
#include "kernels/binary.h"
#include "kernels/matmul.h"
#include "kernels/reorder.h"
#include "util/status_macros.h"

namespace quantd {
namespace {

class MatMulOpKernel : public OpKernel {
 public:
  explicit MatMulOpKernel(const OpKernelInfo&) {}
  absl::Status Compute(OpKernelContext& ctx) override {
    QUANTD_ASSIGN_OR_RETURN(const Tensor* a, ctx.required_input(0));
    QUANTD_ASSIGN_OR_RETURN(const Tensor* b, ctx.required_input(1));
    for (const Tensor* t : {a, b}) {
      QUANTD_RETURN_IF_ERROR(ExpectDtype(*t, DataType::kFloat32, "operand"));
    }
    return matmul_.Forward(*a, *b, nullptr, ctx.output(0));
  }

 private:
  MatMulKernel matmul_;
};

// Gemm: Y = alpha * A' * B' + beta * C, A' = transA ? A^T : A (2-D only).
// The usual export (transB = 1, alpha = beta = 1, C of shape [N]) runs as one
// matmul with bias; everything else adds the extra steps.
class GemmKernel : public OpKernel {
 public:
  explicit GemmKernel(const OpKernelInfo& info)
      : trans_a_(info.node.attributes.GetInt("transA", 0) != 0),
        trans_b_(info.node.attributes.GetInt("transB", 0) != 0),
        alpha_(info.node.attributes.GetFloat("alpha", 1.f)),
        beta_(info.node.attributes.GetFloat("beta", 1.f)),
        matmul_(PostOps{}, trans_b_) {}

  absl::Status Compute(OpKernelContext& ctx) override {
    QUANTD_ASSIGN_OR_RETURN(const Tensor* a, ctx.required_input(0));
    QUANTD_ASSIGN_OR_RETURN(const Tensor* b, ctx.required_input(1));
    const Tensor* c = ctx.input(2);
    if (c != nullptr && !c->defined()) c = nullptr;
    if ((a)->rank() != 2 || (b)->rank() != 2) {
      return absl::InvalidArgumentError(absl::StrCat(
          "Gemm needs 2-D A and B, got ", ShapeToString((a)->shape()), " and ",
          ShapeToString((b)->shape())));
    }
    for (const Tensor* t : {a, b, c}) {
      if (t == nullptr) continue;
      QUANTD_RETURN_IF_ERROR(ExpectDtype(*t, DataType::kFloat32, "operand"));
    }
    Tensor a_t = *a;
    if (trans_a_) {
      Tensor t;
      QUANTD_RETURN_IF_ERROR(transpose_.Forward(*a, &t));
      a_t = std::move(t);
    }
    const int64_t n = trans_b_ ? (b)->dim(0) : (b)->dim(1);
    // C folds into the bias when it is a per-column vector and beta == 1.
    const bool c_is_bias =
        c != nullptr && beta_ == 1.f && alpha_ == 1.f &&
        c->num_elements() == n &&
        (c->rank() == 1 || (c->rank() == 2 && c->dim(0) == 1));
    Tensor bias;
    if (c_is_bias) {
      absl::StatusOr<Tensor> r = c->Reshaped({n});
      if (!r.ok()) return r.status();
      bias = *r;
    }
    Tensor y;
    QUANTD_RETURN_IF_ERROR(
        matmul_.Forward(a_t, *b, c_is_bias ? &bias : nullptr, &y));
    if (alpha_ != 1.f) {
      for (float& v : y.mutable_span<float>()) v *= alpha_;
    }
    if (c != nullptr && !c_is_bias && beta_ != 0.f) {
      Tensor scaled_c = *c;
      if (beta_ != 1.f) {
        scaled_c = c->Clone();
        for (float& v : scaled_c.mutable_span<float>()) v *= beta_;
      }
      Tensor sum;
      QUANTD_RETURN_IF_ERROR(add_.Forward(y, scaled_c, &sum));
      if (sum.shape() != y.shape()) {
        return absl::InvalidArgumentError(
            absl::StrCat("C of shape ", ShapeToString(c->shape()),
                         " does not broadcast to ", ShapeToString(y.shape())));
      }
      y = std::move(sum);
    }
    ctx.set_output(0, std::move(y));
    return absl::OkStatus();
  }

 private:
  bool trans_a_, trans_b_;
  float alpha_, beta_;
  MatMulKernel matmul_;
  TransposeForward transpose_{{1, 0}};
  BinaryForward add_{BinaryOp::kAdd};
};

}  // namespace

void RegisterMatMulOps(OpRegistry& r) {
  r.Register("MatMul", MakeFactory<MatMulOpKernel>());
  r.Register("Gemm", MakeFactory<GemmKernel>());
}

}  // namespace quantd
