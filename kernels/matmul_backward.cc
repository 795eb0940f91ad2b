// MatMul backward by loops over the broadcast batch: da = dy x b^T and
// db = a^T x dy, each summed over the batch dims its operand was broadcast
// along.
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "kernels/backward.h"
#include "kernels/matmul.h"

namespace quantd {

absl::Status MatMulBackward(const Tensor& a, const Tensor& b, const Tensor& dy,
                            bool transpose_b, Tensor* da, Tensor* db) {
  for (const Tensor* t : {&a, &b, &dy}) {
    if (t->dtype() != DataType::kFloat32) {
      return absl::InvalidArgumentError(absl::StrCat(
          "matmul backward takes f32 tensors, got ", t->DebugString()));
    }
  }
  absl::StatusOr<matmul_internal::MatMulGeometry> geometry =
      matmul_internal::ResolveMatMulGeometry(a.shape(), b.shape(), transpose_b);
  if (!geometry.ok()) return geometry.status();
  const matmul_internal::MatMulGeometry& g = *geometry;
  if (dy.shape() != g.dst_shape) {
    return absl::InvalidArgumentError(absl::StrCat(
        "matmul backward: dy has shape ", ShapeToString(dy.shape()),
        ", the forward output is ", ShapeToString(g.dst_shape)));
  }
  const int rank = static_cast<int>(g.dst_dims.size());
  const int batch_rank = rank - 2;
  const int64_t m = g.m, k = g.k, n = g.n;
  // Per batch dim: strides of a and b (0 where broadcast).
  std::vector<int64_t> a_strides(batch_rank), b_strides(batch_rank);
  int64_t a_stride = m * k;
  for (int i = batch_rank - 1; i >= 0; --i) {
    a_strides[i] = g.a_dims[i] == 1 ? 0 : a_stride;
    a_stride *= g.a_dims[i];
    b_strides[i] = g.b_dims[i] == 1 ? 0 : g.b_strides[i];
  }
  const int64_t bs_k = g.b_strides[rank - 2], bs_n = g.b_strides[rank - 1];
  int64_t batches = 1;
  for (int i = 0; i < batch_rank; ++i) batches *= g.dst_dims[i];

  std::vector<double> ga(da != nullptr ? a.num_elements() : 0);
  std::vector<double> gb(db != nullptr ? b.num_elements() : 0);
  const float* pa = a.data<float>();
  const float* pb = b.data<float>();
  std::vector<int64_t> index(batch_rank, 0);
  for (int64_t batch = 0; batch < batches; ++batch) {
    int64_t ao = 0, bo = 0;
    for (int i = 0; i < batch_rank; ++i) {
      ao += index[i] * a_strides[i];
      bo += index[i] * b_strides[i];
    }
    const float* pdy = dy.data<float>() + batch * m * n;
    if (da != nullptr) {
      for (int64_t i = 0; i < m; ++i) {
        for (int64_t kk = 0; kk < k; ++kk) {
          double s = 0;
          const float* brow = pb + bo + kk * bs_k;
          for (int64_t j = 0; j < n; ++j) {
            s += double(pdy[i * n + j]) * brow[j * bs_n];
          }
          ga[ao + i * k + kk] += s;
        }
      }
    }
    if (db != nullptr) {
      for (int64_t i = 0; i < m; ++i) {
        for (int64_t kk = 0; kk < k; ++kk) {
          const double av = pa[ao + i * k + kk];
          double* grow = gb.data() + bo + kk * bs_k;
          for (int64_t j = 0; j < n; ++j) {
            grow[j * bs_n] += av * pdy[i * n + j];
          }
        }
      }
    }
    for (int i = batch_rank - 1; i >= 0; --i) {
      if (++index[i] < g.dst_dims[i]) break;
      index[i] = 0;
    }
  }
  if (da != nullptr) {
    *da = Tensor(DataType::kFloat32, a.shape());
    for (size_t i = 0; i < ga.size(); ++i) {
      da->mutable_data<float>()[i] = static_cast<float>(ga[i]);
    }
  }
  if (db != nullptr) {
    *db = Tensor(DataType::kFloat32, b.shape());
    for (size_t i = 0; i < gb.size(); ++i) {
      db->mutable_data<float>()[i] = static_cast<float>(gb[i]);
    }
  }
  return absl::OkStatus();
}

}  // namespace quantd
