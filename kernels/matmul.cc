#include "kernels/matmul.h"

#include <algorithm>
#include <functional>
#include <string>
#include <unordered_map>
#include <utility>

#include "absl/strings/str_cat.h"
#include "kernels/dnnl_context.h"
#include "kernels/primitive_cache.h"
#include "util/status_macros.h"

namespace quantd {
namespace {
using dt = dnnl::memory::data_type;
using dnnl::memory;
}  // namespace

namespace matmul_internal {

namespace {

// With b shared by every batch (its batch dims all 1), a [B..., M, K] times
// b is one [B * M, K] x [K, N] GEMM: same bytes, same result layout. oneDNN
// runs the batched form as B GEMMs that each re-read all of b, which at
// M = 1 (a decoder step: [batch, 1, d] x [d, n]) is B passes over the
// weights instead of one: 3.5x slower on GPT-2 shapes at batch 8 (f32
// MatMul time of a decoder step 63 -> 18 ms).
void FoldBatchIntoRows(MatMulGeometry& g) {
  const size_t rank = g.a_dims.size();
  int64_t batch = 1;
  for (size_t i = 0; i + 2 < rank; ++i) {
    if (g.b_dims[i] != 1) return;
    batch *= g.a_dims[i];
  }
  if (batch <= 1) return;
  for (size_t i = 0; i + 2 < rank; ++i) g.a_dims[i] = g.dst_dims[i] = 1;
  g.m *= batch;
  g.a_dims[rank - 2] = g.dst_dims[rank - 2] = g.m;
}

}  // namespace

absl::StatusOr<MatMulGeometry> ResolveMatMulGeometry(const Shape& a,
                                                     const Shape& b,
                                                     bool transpose_b) {
  if (a.empty() || b.empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat("MatMul operands need at least 1 dim, got ",
                     ShapeToString(a), " and ", ShapeToString(b)));
  }
  for (const Shape* s : {&a, &b}) {
    for (int64_t d : *s) {
      if (d < 0) {
        return absl::InvalidArgumentError(absl::StrCat(
            "MatMul operand shape ", ShapeToString(*s), " has a negative dim"));
      }
    }
  }
  MatMulGeometry g;
  // 1-D operands: a [K] is [1, K]; b [K] is [K, 1] (also with transpose_b,
  // where it is the same vector).
  Shape a2 = a, b2 = b;
  if (a.size() == 1) a2.insert(a2.begin(), 1);
  bool b_vector = b.size() == 1;
  if (b_vector) b2 = transpose_b ? Shape{1, b[0]} : Shape{b[0], 1};
  const size_t rank = std::max(a2.size(), b2.size());
  if (rank > DNNL_MAX_NDIMS) {
    return absl::InvalidArgumentError(
        absl::StrCat("MatMul supports up to ", DNNL_MAX_NDIMS, " dims, got ",
                     ShapeToString(a), " and ", ShapeToString(b)));
  }
  a2.insert(a2.begin(), rank - a2.size(), 1);
  b2.insert(b2.begin(), rank - b2.size(), 1);
  g.m = a2[rank - 2];
  g.k = a2[rank - 1];
  const int64_t bk = transpose_b ? b2[rank - 1] : b2[rank - 2];
  g.n = transpose_b ? b2[rank - 2] : b2[rank - 1];
  if (bk != g.k) {
    return absl::InvalidArgumentError(absl::StrCat(
        "MatMul a ", ShapeToString(a), " has K = ", g.k, " but b ",
        ShapeToString(b), transpose_b ? " (transposed)" : "", " has K = ", bk));
  }
  g.a_dims = a2;
  g.b_dims = b2;
  g.b_dims[rank - 2] = g.k;
  g.b_dims[rank - 1] = g.n;
  g.b_strides = DenseStrides(b2);  // of b as stored
  if (transpose_b) std::swap(g.b_strides[rank - 2], g.b_strides[rank - 1]);
  g.dst_dims.resize(rank);
  for (size_t i = 0; i + 2 < rank; ++i) {
    if (a2[i] != b2[i] && a2[i] != 1 && b2[i] != 1) {
      return absl::InvalidArgumentError(absl::StrCat(
          "MatMul batch dims of a ", ShapeToString(a), " and b ",
          ShapeToString(b), " do not broadcast (", a2[i], " vs ", b2[i], ")"));
    }
    // A 0 against a 1 broadcasts to 0.
    g.dst_dims[i] = a2[i] == 1 ? b2[i] : a2[i];
  }
  g.dst_dims[rank - 2] = g.m;
  g.dst_dims[rank - 1] = g.n;
  g.dst_shape.assign(g.dst_dims.begin(), g.dst_dims.end() - 2);
  if (a.size() > 1) g.dst_shape.push_back(g.m);
  if (!b_vector) g.dst_shape.push_back(g.n);
  QUANTD_RETURN_IF_ERROR((CheckedNumElements(g.dst_dims)).status());
  FoldBatchIntoRows(g);
  return g;
}

absl::Status PrepareMatMulOutput(const MatMulGeometry& g, const PostOps& post,
                                 DataType type, const Tensor* bias,
                                 Tensor* dst) {
  if (dst == nullptr) return absl::InvalidArgumentError("MatMul dst is null");
  if (bias != nullptr &&
      (bias->dtype() != DataType::kFloat32 || bias->shape() != Shape{g.n})) {
    return absl::InvalidArgumentError(absl::StrCat(
        "MatMul bias is ", bias->DebugString(), ", expected f32[", g.n, "]"));
  }
  if (dst->defined() && dst->dtype() == type && dst->shape() == g.dst_shape) {
    return absl::OkStatus();
  }
  if (post.sum) {
    return absl::InvalidArgumentError(absl::StrCat(
        "post-op sum needs dst to hold the addend: dst is ", dst->DebugString(),
        ", expected ", DataTypeName(type), ShapeToString(g.dst_shape)));
  }
  *dst = Tensor(type, g.dst_shape);
  return absl::OkStatus();
}

namespace {

struct MatMulPrimitive {
  dnnl::matmul prim;
  memory::desc scratchpad;
  memory::desc a_md, b_md, bias_md, dst_md;
};

}  // namespace

class MatMulCore {
 public:
  absl::Status Run(
      const MatMulGeometry& g, dt a_type, dt b_type, dt dst_type,
      const float* bias, absl::string_view key_extra,
      const std::function<dnnl::primitive_attr()>& make_attr, const Tensor& a,
      const Tensor& b, Tensor* dst,
      const std::function<void(std::unordered_map<int, memory>&)>& extra_args) {
    const std::string key = absl::StrCat(
        ShapeToString(g.a_dims), ShapeToString(g.b_dims),
        ShapeToString(g.b_strides), "|", static_cast<int>(a_type), ",",
        static_cast<int>(dst_type), ",", bias != nullptr, "|", key_extra);
    absl::StatusOr<std::shared_ptr<MatMulPrimitive>> made =
        primitives.GetOrCreate(key, [&]() -> absl::StatusOr<MatMulPrimitive> {
          MatMulPrimitive p;
          absl::Status s = CatchDnnl("matmul primitive creation", [&] {
            p.a_md = memory::desc(g.a_dims, a_type, DenseStrides(g.a_dims));
            p.b_md = memory::desc(g.b_dims, b_type, g.b_strides);
            p.dst_md =
                memory::desc(g.dst_dims, dst_type, DenseStrides(g.dst_dims));
            if (bias != nullptr) {
              Shape bias_dims(g.dst_dims.size(), 1);
              bias_dims.back() = g.n;
              p.bias_md =
                  memory::desc(bias_dims, dt::f32, DenseStrides(bias_dims));
            }
            dnnl::matmul::desc desc(p.a_md, p.b_md, p.bias_md, p.dst_md);
            dnnl::matmul::primitive_desc pd(desc, make_attr(), CpuEngine());
            p.prim = dnnl::matmul(pd);
            p.scratchpad = pd.scratchpad_desc();
          });
          if (!s.ok()) return s;
          return p;
        });
    if (!made.ok()) return made.status();
    std::shared_ptr<MatMulPrimitive> held = *made;
    const MatMulPrimitive& p = *held;
    return CatchDnnl("matmul", [&] {
      std::unordered_map<int, memory> args = {
          {DNNL_ARG_SRC, WrapTensor(a, p.a_md)},
          {DNNL_ARG_WEIGHTS, WrapTensor(b, p.b_md)},
          {DNNL_ARG_DST, WrapTensor(*dst, p.dst_md)}};
      if (bias != nullptr) {
        args[DNNL_ARG_BIAS] =
            memory(p.bias_md, CpuEngine(), const_cast<float*>(bias));
      }
      if (extra_args) extra_args(args);
      post_ops_internal::RunPrimitive(p.prim, p.scratchpad, args);
    });
  }

  PrimitiveCache<MatMulPrimitive> primitives;
};

}  // namespace matmul_internal

using matmul_internal::MatMulCore;
using matmul_internal::MatMulGeometry;
using matmul_internal::PrepareMatMulOutput;
using matmul_internal::ResolveMatMulGeometry;

absl::StatusOr<Shape> MatMulOutputShape(const Shape& a, const Shape& b,
                                        bool transpose_b) {
  QUANTD_ASSIGN_OR_RETURN(MatMulGeometry g,
                          ResolveMatMulGeometry(a, b, transpose_b));
  return g.dst_shape;
}

MatMulKernel::MatMulKernel(PostOps post_ops, bool transpose_b)
    : post_ops_(post_ops),
      transpose_b_(transpose_b),
      core_(std::make_unique<MatMulCore>()) {}
MatMulKernel::~MatMulKernel() = default;

absl::Status MatMulKernel::Forward(const Tensor& a, const Tensor& b,
                                   const Tensor* bias, Tensor* dst) {
  if (a.dtype() != DataType::kFloat32 || b.dtype() != DataType::kFloat32) {
    return absl::InvalidArgumentError(
        absl::StrCat("MatMul expects f32 operands, got ", a.DebugString(),
                     " and ", b.DebugString()));
  }
  QUANTD_ASSIGN_OR_RETURN(
      MatMulGeometry g,
      ResolveMatMulGeometry(a.shape(), b.shape(), transpose_b_));
  absl::Status s =
      PrepareMatMulOutput(g, post_ops_, DataType::kFloat32, bias, dst);
  if (!s.ok() || dst->num_elements() == 0) return s;
  if (g.k == 0) {
    // An empty sum: the result is the bias; nothing for oneDNN to do.
    return MatMulReference(post_ops_, transpose_b_, a, b, bias, dst);
  }
  return core_->Run(
      g, dt::f32, dt::f32, dt::f32, bias ? bias->data<float>() : nullptr, "",
      [&] { return post_ops_internal::MakeAttr(post_ops_); }, a, b, dst, {});
}

size_t MatMulKernel::cached_primitives() const {
  return core_->primitives.size();
}

QuantizedMatMulKernel::QuantizedMatMulKernel(QuantizedOpParams quant,
                                             bool transpose_b)
    : quant_(std::move(quant)),
      transpose_b_(transpose_b),
      core_(std::make_unique<MatMulCore>()) {}
QuantizedMatMulKernel::~QuantizedMatMulKernel() = default;

absl::Status QuantizedMatMulKernel::Forward(const Tensor& a, const Tensor& b,
                                            const Tensor* bias, Tensor* dst) {
  if (b.dtype() != DataType::kInt8) {
    return absl::InvalidArgumentError(absl::StrCat(
        "int8 MatMul b (weights) is ", b.DebugString(), ", expected s8"));
  }
  QUANTD_ASSIGN_OR_RETURN(
      MatMulGeometry g,
      ResolveMatMulGeometry(a.shape(), b.shape(), transpose_b_));
  absl::Status s = ValidateQuantizedOpParams(quant_, a.dtype(), g.n);
  if (s.ok()) {
    s = PrepareMatMulOutput(g, quant_.post_ops, quant_.dst_type, bias, dst);
  }
  if (!s.ok() || dst->num_elements() == 0) return s;
  if (g.k == 0) {
    return QuantizedMatMulReference(quant_, transpose_b_, a, b, bias, dst);
  }
  // oneDNN's GEMM is fast for u8 sources only (see matmul.h).
  Tensor shifted;
  int32_t a_zp = quant_.src_zero_point;
  if (a.dtype() == DataType::kInt8) {
    shifted = post_ops_internal::FlipSignBit(a);
    a_zp += 128;
  }
  const Tensor& a_used = shifted.defined() ? shifted : a;
  std::vector<float> dnnl_bias;
  if (bias != nullptr) {
    dnnl_bias =
        post_ops_internal::Int8DnnlBias(quant_, bias->data<float>(), g.n);
  }
  const int channel_dim = static_cast<int>(g.dst_dims.size()) - 1;
  int32_t zp_storage[2];
  return core_->Run(
      g, dt::u8, dt::s8, ToDnnlType(quant_.dst_type),
      bias ? dnnl_bias.data() : nullptr, a_zp != 0 ? "zp" : "",
      [&] {
        return post_ops_internal::MakeInt8Attr(quant_, channel_dim, a_zp);
      },
      a_used, b, dst,
      [&](std::unordered_map<int, memory>& args) {
        post_ops_internal::AddZeroPointArgs(quant_, a_zp, zp_storage, args);
      });
}

size_t QuantizedMatMulKernel::cached_primitives() const {
  return core_->primitives.size();
}

}  // namespace quantd
