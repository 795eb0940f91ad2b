// MatMul backward: da = dy x b^T and db = a^T x dy, each summed over the
// batch dims its operand was broadcast along. The products run as oneDNN
// matmul primitives on transposed (strided) views; a weight shared by the
// whole batch (Linear layers) gets its gradient from one GEMM over the
// flattened batch. MatMulBackwardReference is the loop version.
#include <memory>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "kernels/backward.h"
#include "kernels/dnnl_context.h"
#include "kernels/matmul.h"
#include "kernels/post_ops.h"
#include "kernels/primitive_cache.h"
#include "oneapi/dnnl/dnnl.hpp"
#include "util/status_macros.h"

namespace quantd {
namespace {

using dnnl::memory;

absl::Status CheckF32(const Tensor& a, const Tensor& b, const Tensor& dy) {
  for (const Tensor* t : {&a, &b, &dy}) {
    if (t->dtype() != DataType::kFloat32) {
      return absl::InvalidArgumentError(absl::StrCat(
          "matmul backward takes f32 tensors, got ", t->DebugString()));
    }
  }
  return absl::OkStatus();
}

absl::StatusOr<matmul_internal::MatMulGeometry> Resolve(const Tensor& a,
                                                        const Tensor& b,
                                                        const Tensor& dy,
                                                        bool transpose_b) {
  QUANTD_ASSIGN_OR_RETURN(matmul_internal::MatMulGeometry g,
                          matmul_internal::ResolveMatMulGeometry(
                              a.shape(), b.shape(), transpose_b));
  if (dy.shape() != g.dst_shape) {
    return absl::InvalidArgumentError(absl::StrCat(
        "matmul backward: dy has shape ", ShapeToString(dy.shape()),
        ", the forward output is ", ShapeToString(g.dst_shape)));
  }
  return g;
}

// A view of a tensor for oneDNN: logical dims and their strides in memory.
struct View {
  Shape dims, strides;
};

View Dense(Shape dims) {
  Shape strides = DenseStrides(dims);
  return {std::move(dims), std::move(strides)};
}

// The same view with its last two dims swapped (a transpose, no copy).
View Transposed(View v) {
  const size_t r = v.dims.size();
  std::swap(v.dims[r - 2], v.dims[r - 1]);
  std::swap(v.strides[r - 2], v.strides[r - 1]);
  return v;
}

struct MatMulEntry {
  dnnl::matmul prim;
  memory::desc src, weights, dst;
  memory::desc scratchpad;  // user-managed: one per execution
};

PrimitiveCache<MatMulEntry>& Cache() {
  static auto* cache = new PrimitiveCache<MatMulEntry>();
  return *cache;
}

// dst (dense, dst_dims) = src x weights, batch dims of size 1 broadcast.
absl::Status Multiply(const View& src, const Tensor& src_t, const View& wei,
                      const Tensor& wei_t, const Shape& dst_dims, Tensor* dst) {
  const std::string key = absl::StrCat(
      absl::StrJoin(src.dims, ","), "/", absl::StrJoin(src.strides, ","), "|",
      absl::StrJoin(wei.dims, ","), "/", absl::StrJoin(wei.strides, ","), "|",
      absl::StrJoin(dst_dims, ","));
  absl::StatusOr<std::shared_ptr<MatMulEntry>> entry =
      Cache().GetOrCreate(key, [&]() -> absl::StatusOr<MatMulEntry> {
        MatMulEntry e;
        absl::Status s = CatchDnnl("matmul backward creation", [&] {
          const auto f32 = memory::data_type::f32;
          e.src = memory::desc(src.dims, f32, src.strides);
          e.weights = memory::desc(wei.dims, f32, wei.strides);
          e.dst = memory::desc(dst_dims, f32, DenseStrides(dst_dims));
          dnnl::primitive_attr attr;
          attr.set_scratchpad_mode(dnnl::scratchpad_mode::user);
          dnnl::matmul::primitive_desc pd(
              dnnl::matmul::desc(e.src, e.weights, e.dst), attr, CpuEngine());
          e.prim = dnnl::matmul(pd);
          e.scratchpad = pd.scratchpad_desc();
        });
        if (!s.ok()) return s;
        return e;
      });
  if (!entry.ok()) return entry.status();
  const MatMulEntry& e = **entry;
  return CatchDnnl("matmul backward", [&] {
    std::unordered_map<int, memory> args = {
        {DNNL_ARG_SRC, WrapTensor(src_t, e.src)},
        {DNNL_ARG_WEIGHTS, WrapTensor(wei_t, e.weights)},
        {DNNL_ARG_DST, WrapTensor(*dst, e.dst)}};
    post_ops_internal::RunPrimitive(e.prim, e.scratchpad, args);
  });
}

// Writes `full` (dense, full_dims) into a tensor of `shape`, summing over the
// batch dims where `reduced_dims` (same numel as shape) has 1s.
absl::Status Finish(Tensor full, const Shape& full_dims,
                    const Shape& reduced_dims, const Shape& shape,
                    Tensor* out) {
  if (full_dims != reduced_dims) {
    QUANTD_ASSIGN_OR_RETURN(Tensor view, full.Reshaped(full_dims));
    QUANTD_RETURN_IF_ERROR(SumToShape(view, reduced_dims, &full));
  }
  QUANTD_ASSIGN_OR_RETURN(Tensor shaped, full.Reshaped(shape));
  *out = shaped;
  return absl::OkStatus();
}

bool AllOnes(const Shape& dims, int count) {
  for (int i = 0; i < count; ++i) {
    if (dims[i] != 1) return false;
  }
  return true;
}

}  // namespace

absl::Status MatMulBackward(const Tensor& a, const Tensor& b, const Tensor& dy,
                            bool transpose_b, Tensor* da, Tensor* db) {
  QUANTD_RETURN_IF_ERROR(CheckF32(a, b, dy));
  QUANTD_ASSIGN_OR_RETURN(matmul_internal::MatMulGeometry geometry,
                          Resolve(a, b, dy, transpose_b));
  const matmul_internal::MatMulGeometry& g = geometry;
  if (a.num_elements() == 0 || b.num_elements() == 0 ||
      dy.num_elements() == 0) {
    return MatMulBackwardReference(a, b, dy, transpose_b, da, db);
  }
  const int rank = static_cast<int>(g.dst_dims.size());
  const int batch_rank = rank - 2;
  const int64_t m = g.m, k = g.k, n = g.n;
  Shape batch(g.dst_dims.begin(), g.dst_dims.end() - 2);
  auto with_batch = [&](Shape tail) {
    Shape s = batch;
    s.insert(s.end(), tail.begin(), tail.end());
    return s;
  };
  const View dy_view = Dense(g.dst_dims);
  const bool a_full = Shape(g.a_dims.begin(), g.a_dims.end() - 2) == batch;
  const int64_t rows = NumElements(batch) * m;  // flattened batch x M
  if (da != nullptr) {
    // da [.., M, K] = dy [.., M, N] x b^T [.., N, K].
    View bt = Transposed(View{g.b_dims, g.b_strides});
    const Shape full_dims = with_batch({m, k});
    Tensor full(DataType::kFloat32, full_dims);
    QUANTD_RETURN_IF_ERROR(Multiply(dy_view, dy, bt, b, full_dims, &full));
    QUANTD_RETURN_IF_ERROR(Finish(full, full_dims, g.a_dims, a.shape(), da));
  }
  if (db != nullptr) {
    // db = a^T x dy in b's logical layout [.., K, N]; with transpose_b its
    // storage is [.., N, K] = dy^T x a.
    const Shape b_store =
        transpose_b ? Transposed(View{g.b_dims, g.b_dims}).dims : g.b_dims;
    const bool shared = AllOnes(g.b_dims, batch_rank) && a_full;
    const View a_view = Dense(g.a_dims);
    Tensor full;
    Shape full_dims;
    absl::Status s;
    if (shared) {  // one GEMM over the flattened batch
      const View a_flat{{rows, k}, {k, 1}}, dy_flat{{rows, n}, {n, 1}};
      full_dims = {b_store[rank - 2], b_store[rank - 1]};
      full = Tensor(DataType::kFloat32, full_dims);
      s = transpose_b
              ? Multiply(Transposed(dy_flat), dy, a_flat, a, full_dims, &full)
              : Multiply(Transposed(a_flat), a, dy_flat, dy, full_dims, &full);
      full_dims = b_store;
    } else {
      full_dims = with_batch({b_store[rank - 2], b_store[rank - 1]});
      full = Tensor(DataType::kFloat32, full_dims);
      s = transpose_b
              ? Multiply(Transposed(dy_view), dy, a_view, a, full_dims, &full)
              : Multiply(Transposed(a_view), a, dy_view, dy, full_dims, &full);
    }
    if (!s.ok()) return s;
    s = Finish(full, full_dims, b_store, b.shape(), db);
    if (!s.ok()) return s;
  }
  return absl::OkStatus();
}

absl::Status MatMulBackwardReference(const Tensor& a, const Tensor& b,
                                     const Tensor& dy, bool transpose_b,
                                     Tensor* da, Tensor* db) {
  QUANTD_RETURN_IF_ERROR(CheckF32(a, b, dy));
  QUANTD_ASSIGN_OR_RETURN(matmul_internal::MatMulGeometry geometry,
                          Resolve(a, b, dy, transpose_b));
  const matmul_internal::MatMulGeometry& g = geometry;
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
