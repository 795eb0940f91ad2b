#include "kernels/inner_product.h"

#include <utility>

#include "absl/strings/str_cat.h"

namespace quantd {
namespace inner_product_internal {

absl::Status FlattenOperands(const Tensor& src, const Tensor& weights,
                             const Tensor* bias, Tensor* src2d,
                             Tensor* weights2d) {
  if (src.rank() < 2 || weights.rank() < 2) {
    return absl::InvalidArgumentError(absl::StrCat(
        "inner product src ", src.DebugString(), " and weights ",
        weights.DebugString(), " need at least 2 dims ([N, K] and [OC, K])"));
  }
  const int64_t n = src.dim(0);
  const int64_t oc = weights.dim(0);
  const int64_t k =
      n == 0 ? NumElements(Shape(src.shape().begin() + 1, src.shape().end()))
             : src.num_elements() / n;
  const int64_t wk =
      NumElements(Shape(weights.shape().begin() + 1, weights.shape().end()));
  if (k != wk) {
    return absl::InvalidArgumentError(absl::StrCat(
        "inner product src ", src.DebugString(), " has ", k,
        " features per row but weights ", weights.DebugString(), " have ", wk));
  }
  if (bias != nullptr &&
      (bias->dtype() != DataType::kFloat32 || bias->shape() != Shape{oc})) {
    return absl::InvalidArgumentError(absl::StrCat("inner product bias is ",
                                                   bias->DebugString(),
                                                   ", expected f32[", oc, "]"));
  }
  absl::StatusOr<Tensor> s = src.Reshaped({n, k});
  if (!s.ok()) return s.status();
  absl::StatusOr<Tensor> w = weights.Reshaped({oc, k});
  if (!w.ok()) return w.status();
  *src2d = *std::move(s);
  *weights2d = *std::move(w);
  return absl::OkStatus();
}

}  // namespace inner_product_internal

using inner_product_internal::FlattenOperands;

InnerProductKernel::InnerProductKernel(PostOps post_ops)
    : matmul_(post_ops, /*transpose_b=*/true) {}

absl::Status InnerProductKernel::Forward(const Tensor& src,
                                         const Tensor& weights,
                                         const Tensor* bias, Tensor* dst) {
  if (src.dtype() != DataType::kFloat32 ||
      weights.dtype() != DataType::kFloat32) {
    return absl::InvalidArgumentError(
        absl::StrCat("inner product expects f32 src and weights, got ",
                     src.DebugString(), " and ", weights.DebugString()));
  }
  Tensor src2d, weights2d;
  absl::Status s = FlattenOperands(src, weights, bias, &src2d, &weights2d);
  if (!s.ok()) return s;
  return matmul_.Forward(src2d, weights2d, bias, dst);
}

QuantizedInnerProductKernel::QuantizedInnerProductKernel(
    QuantizedOpParams quant)
    : matmul_(std::move(quant), /*transpose_b=*/true) {}

absl::Status QuantizedInnerProductKernel::Forward(const Tensor& src,
                                                  const Tensor& weights,
                                                  const Tensor* bias,
                                                  Tensor* dst) {
  if (weights.dtype() != DataType::kInt8) {
    return absl::InvalidArgumentError(
        absl::StrCat("int8 inner product weights are ", weights.DebugString(),
                     ", expected s8"));
  }
  Tensor src2d, weights2d;
  absl::Status s = FlattenOperands(src, weights, bias, &src2d, &weights2d);
  if (!s.ok()) return s;
  return matmul_.Forward(src2d, weights2d, bias, dst);
}

}  // namespace quantd
