// Reference inner products: dst[n, oc] = sum_k src[n, k] * w[oc, k] + bias,
// as loops in double precision.
#include <cstdint>

#include "absl/strings/str_cat.h"
#include "kernels/inner_product.h"

namespace quantd {
namespace {

// Makes *dst a tensor of `type` and shape [N, OC].
absl::Status PrepareOutput(const Tensor& src2d, const Tensor& weights2d,
                           const PostOps& post, DataType type, Tensor* dst) {
  const Shape out = {src2d.dim(0), weights2d.dim(0)};
  if (dst->defined() && dst->dtype() == type && dst->shape() == out) {
    return absl::OkStatus();
  }
  if (post.sum) {
    return absl::InvalidArgumentError(
        "post-op sum needs dst to hold the addend");
  }
  *dst = Tensor(type, out);
  return absl::OkStatus();
}

}  // namespace

absl::Status InnerProductReference(const PostOps& post, const Tensor& src,
                                   const Tensor& weights, const Tensor* bias,
                                   Tensor* dst) {
  if (src.dtype() != DataType::kFloat32 ||
      weights.dtype() != DataType::kFloat32) {
    return absl::InvalidArgumentError(
        absl::StrCat("inner product expects f32 src and weights, got ",
                     src.DebugString(), " and ", weights.DebugString()));
  }
  Tensor x, w;
  absl::Status s =
      inner_product_internal::FlattenOperands(src, weights, bias, &x, &w);
  if (s.ok()) s = PrepareOutput(x, w, post, DataType::kFloat32, dst);
  if (!s.ok()) return s;
  const int64_t n = x.dim(0), k = x.dim(1), oc = w.dim(0);
  float* out = dst->mutable_data<float>();
  for (int64_t i = 0; i < n; ++i) {
    for (int64_t o = 0; o < oc; ++o) {
      double acc = bias ? bias->data<float>()[o] : 0.0;
      for (int64_t j = 0; j < k; ++j) {
        acc += static_cast<double>(x.data<float>()[i * k + j]) *
               w.data<float>()[o * k + j];
      }
      float& d = out[i * oc + o];
      d = static_cast<float>(ApplyPostOpsReal(acc, post, post.sum ? d : 0.0));
    }
  }
  return absl::OkStatus();
}

absl::Status QuantizedInnerProductReference(const QuantizedOpParams& q,
                                            const Tensor& src,
                                            const Tensor& weights,
                                            const Tensor* bias, Tensor* dst) {
  if (weights.dtype() != DataType::kInt8) {
    return absl::InvalidArgumentError(
        absl::StrCat("int8 inner product weights are ", weights.DebugString(),
                     ", expected s8"));
  }
  Tensor x, w;
  absl::Status s =
      inner_product_internal::FlattenOperands(src, weights, bias, &x, &w);
  if (s.ok()) s = ValidateQuantizedOpParams(q, src.dtype(), w.dim(0));
  if (s.ok()) s = PrepareOutput(x, w, q.post_ops, q.dst_type, dst);
  if (!s.ok()) return s;
  const int64_t n = x.dim(0), k = x.dim(1), oc = w.dim(0);
  for (int64_t i = 0; i < n; ++i) {
    for (int64_t o = 0; o < oc; ++o) {
      int64_t acc = 0;  // exact
      for (int64_t j = 0; j < k; ++j) {
        acc += (static_cast<int64_t>(ReadQuantized(x, i * k + j)) -
                q.src_zero_point) *
               w.data<int8_t>()[o * k + j];
      }
      StoreQuantizedResultReference(q, bias, o, static_cast<double>(acc),
                                    i * oc + o, dst);
    }
  }
  return absl::OkStatus();
}

}  // namespace quantd
