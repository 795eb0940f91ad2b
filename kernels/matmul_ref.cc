// Reference matmuls: the definitions, as loops in double precision over the
// broadcast batch. Slow on purpose; tests compare the oneDNN kernels to them.
#include <cstdint>
#include <vector>

#include "absl/strings/str_cat.h"
#include "kernels/matmul.h"
#include "util/status_macros.h"

namespace quantd {
namespace {

using matmul_internal::MatMulGeometry;

// acc[batch, m, n] = sum_k a(flat index) * b(flat index), with batch dims of
// size 1 broadcast (stride 0).
template <typename AAt, typename BAt>
std::vector<double> Accumulate(const MatMulGeometry& g, AAt a_at, BAt b_at) {
  const size_t rank = g.dst_dims.size();
  const Shape a_strides = [&] {
    Shape s(rank, 0);
    int64_t step = g.m * g.k;
    for (int i = static_cast<int>(rank) - 3; i >= 0; --i) {
      s[i] = g.a_dims[i] == 1 ? 0 : step;
      step *= g.a_dims[i];
    }
    return s;
  }();
  int64_t batches = 1;
  for (size_t i = 0; i + 2 < rank; ++i) batches *= g.dst_dims[i];
  std::vector<double> acc(NumElements(g.dst_dims), 0.0);
  for (int64_t batch = 0; batch < batches; ++batch) {
    // Decompose the batch index into dst batch coordinates.
    int64_t a_off = 0, b_off = 0, rest = batch;
    for (int i = static_cast<int>(rank) - 3; i >= 0; --i) {
      const int64_t coord = rest % g.dst_dims[i];
      rest /= g.dst_dims[i];
      a_off += coord * a_strides[i];
      if (g.b_dims[i] != 1) b_off += coord * g.b_strides[i];
    }
    for (int64_t m = 0; m < g.m; ++m) {
      for (int64_t n = 0; n < g.n; ++n) {
        double sum = 0;
        for (int64_t k = 0; k < g.k; ++k) {
          sum += a_at(a_off + m * g.k + k) *
                 b_at(b_off + k * g.b_strides[rank - 2] +
                      n * g.b_strides[rank - 1]);
        }
        acc[(batch * g.m + m) * g.n + n] = sum;
      }
    }
  }
  return acc;
}

}  // namespace

absl::Status MatMulReference(const PostOps& post, bool transpose_b,
                             const Tensor& a, const Tensor& b,
                             const Tensor* bias, Tensor* dst) {
  if (a.dtype() != DataType::kFloat32 || b.dtype() != DataType::kFloat32) {
    return absl::InvalidArgumentError(
        absl::StrCat("MatMul expects f32 operands, got ", a.DebugString(),
                     " and ", b.DebugString()));
  }
  QUANTD_ASSIGN_OR_RETURN(MatMulGeometry g,
                          matmul_internal::ResolveMatMulGeometry(
                              a.shape(), b.shape(), transpose_b));
  absl::Status s = matmul_internal::PrepareMatMulOutput(
      g, post, DataType::kFloat32, bias, dst);
  if (!s.ok()) return s;
  const float* x = a.data<float>();
  const float* y = b.data<float>();
  std::vector<double> acc = Accumulate(
      g, [x](int64_t i) { return static_cast<double>(x[i]); },
      [y](int64_t i) { return static_cast<double>(y[i]); });
  float* out = dst->mutable_data<float>();
  for (int64_t i = 0; i < static_cast<int64_t>(acc.size()); ++i) {
    const double v = acc[i] + (bias ? bias->data<float>()[i % g.n] : 0.0);
    out[i] =
        static_cast<float>(ApplyPostOpsReal(v, post, post.sum ? out[i] : 0.0));
  }
  return absl::OkStatus();
}

absl::Status QuantizedMatMulReference(const QuantizedOpParams& q,
                                      bool transpose_b, const Tensor& a,
                                      const Tensor& b, const Tensor* bias,
                                      Tensor* dst) {
  if (b.dtype() != DataType::kInt8) {
    return absl::InvalidArgumentError(absl::StrCat(
        "int8 MatMul b (weights) is ", b.DebugString(), ", expected s8"));
  }
  QUANTD_ASSIGN_OR_RETURN(MatMulGeometry g,
                          matmul_internal::ResolveMatMulGeometry(
                              a.shape(), b.shape(), transpose_b));
  absl::Status s = ValidateQuantizedOpParams(q, a.dtype(), g.n);
  if (s.ok()) {
    s = matmul_internal::PrepareMatMulOutput(g, q.post_ops, q.dst_type, bias,
                                             dst);
  }
  if (!s.ok()) return s;
  const int8_t* w = b.data<int8_t>();
  const double zp = q.src_zero_point;
  std::vector<double> acc = Accumulate(
      g, [&](int64_t i) { return ReadQuantized(a, i) - zp; },
      [w](int64_t i) { return static_cast<double>(w[i]); });
  for (int64_t i = 0; i < static_cast<int64_t>(acc.size()); ++i) {
    const int64_t n = i % g.n;
    StoreQuantizedResultReference(q, bias, n, acc[i], i, dst);
  }
  return absl::OkStatus();
}

}  // namespace quantd
