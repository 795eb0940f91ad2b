// Data-movement ops: Concat, Split, Slice, Gather, Transpose, Cast here;
// Pad, Tile, Trilu and Where in data_movement_ops_fill.cc. Elements move as
// raw bytes (DataTypeSize), so every op works for every element type.
#include <algorithm>
#include <cstdint>
#include <cstring>
#include <limits>
#include <memory>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "engine/ir/onnx_data_types.h"
#include "engine/runtime/ops/data_movement_ops_internal.h"
#include "engine/runtime/ops/op_util.h"
#include "engine/runtime/ops/register_ops.h"
#include "engine/runtime/ops/shape_util.h"
#include "engine/runtime/ops/slice_geometry.h"
#include "kernels/parallel_copy.h"
#include "kernels/reorder.h"
#include "util/status_macros.h"

namespace quantd {
namespace {

// The copies of Gather and Concat: pieces of at least 4 KiB (a KV cache's
// rows) are collected and spread over the threads by ParallelCopy; smaller
// ones are copied at once, so the list never holds more than one entry per
// 4 KiB of output however many tiny pieces a hostile shape makes.
class PieceCopier {
 public:
  PieceCopier(size_t output_bytes, int64_t pieces)
      : parallel_(pieces > 0 && output_bytes / pieces >= 4096) {
    if (parallel_) pieces_.reserve(pieces);
  }
  void Add(char* dst, const char* src, size_t bytes) {
    if (bytes == 0) return;
    if (parallel_) {
      pieces_.push_back({dst, src, bytes});
    } else {
      std::memcpy(dst, src, bytes);
    }
  }
  void Finish() { ParallelCopy(pieces_); }

 private:
  bool parallel_;
  std::vector<CopyPiece> pieces_;
};

using KernelOr = absl::StatusOr<std::unique_ptr<OpKernel>>;

// ----------------------------------------------------------------- Concat

KernelOr CreateConcat(const OpKernelInfo& info) {
  // Concat-1 defaulted axis to 1; from opset 4 it is required.
  if (info.opset >= 4 && !info.node.attributes.Has("axis")) {
    return absl::InvalidArgumentError("Concat requires the 'axis' attribute");
  }
  const int64_t axis_attr = info.node.attributes.GetInt("axis", 1);
  return MakeFunctionKernel([=](OpKernelContext& ctx) -> absl::Status {
    if (ctx.num_inputs() == 0) {
      return absl::InvalidArgumentError("Concat needs at least one input");
    }
    std::vector<const Tensor*> in;
    for (int i = 0; i < ctx.num_inputs(); ++i) {
      QUANTD_ASSIGN_OR_RETURN(const Tensor* t, ctx.required_input(i));
      in.push_back(t);
    }
    const Tensor& first = *in[0];
    QUANTD_ASSIGN_OR_RETURN(int axis,
                            NormalizeAxis(axis_attr, first.rank(), "axis"));
    Shape out = first.shape();
    out[axis] = 0;
    for (size_t i = 0; i < in.size(); ++i) {
      const Tensor& t = *in[i];
      bool same = t.dtype() == first.dtype() && t.rank() == first.rank();
      for (int d = 0; same && d < t.rank(); ++d) {
        same = d == axis || t.dim(d) == first.dim(d);
      }
      if (!same) {
        return absl::InvalidArgumentError(absl::StrCat(
            "input #", i, " is ", t.DebugString(), " but input #0 is ",
            first.DebugString(), "; inputs must match in type and in every ",
            "dim except axis ", axis));
      }
      out[axis] += t.dim(axis);
    }
    QUANTD_ASSIGN_OR_RETURN(Tensor y, AllocateOutput(first.dtype(), out));
    if (y.num_elements() == 0) {  // nothing to copy, however large `outer`
      ctx.set_output(0, std::move(y));
      return absl::OkStatus();
    }
    const size_t elem = DataTypeSize(first.dtype());
    const int64_t outer =
        NumElements(absl::MakeConstSpan(out).subspan(0, axis));
    const int64_t inner =
        NumElements(absl::MakeConstSpan(out).subspan(axis + 1));
    char* dst = static_cast<char*>(y.mutable_raw_data());
    PieceCopier copier(y.byte_size(), outer * in.size());
    for (int64_t o = 0; o < outer; ++o) {
      for (const Tensor* t : in) {
        const size_t chunk = t->dim(axis) * inner * elem;
        copier.Add(dst, static_cast<const char*>(t->raw_data()) + o * chunk,
                   chunk);
        dst += chunk;
      }
    }
    copier.Finish();
    ctx.set_output(0, std::move(y));
    return absl::OkStatus();
  });
}

// ------------------------------------------------------------------ Split

KernelOr CreateSplit(const OpKernelInfo& info) {
  // `split` was an attribute before opset 13 and is an input since.
  const bool from_attr = info.opset < 13;
  const std::vector<int64_t> split_attr = info.node.attributes.GetInts("split");
  const int64_t axis_attr = info.node.attributes.GetInt("axis", 0);
  return MakeFunctionKernel([=](OpKernelContext& ctx) -> absl::Status {
    QUANTD_ASSIGN_OR_RETURN(const Tensor* x, ctx.required_input(0));
    QUANTD_ASSIGN_OR_RETURN(int axis,
                            NormalizeAxis(axis_attr, (x)->rank(), "axis"));
    const int n = ctx.num_outputs();
    const int64_t dim = (x)->dim(axis);
    std::vector<int64_t> split = split_attr;
    if (!from_attr) {
      split.clear();
      if (const Tensor* s = ctx.input(1); s != nullptr && s->defined()) {
        QUANTD_ASSIGN_OR_RETURN(std::vector<int64_t> v,
                                ReadInt64s(*s, "the 'split' input"));
        split = std::move(v);
      }
    }
    if (split.empty()) {
      if (n == 0 || dim % n != 0) {
        return absl::InvalidArgumentError(
            absl::StrCat("axis ", axis, " of size ", dim,
                         " does not split evenly into ", n, " outputs"));
      }
      split.assign(n, dim / n);
    }
    int64_t total = 0;
    bool valid = static_cast<int>(split.size()) == n;
    for (size_t k = 0; valid && k < split.size(); ++k) {
      valid = split[k] >= 0 && split[k] <= dim - total;
      total += valid ? split[k] : 0;
    }
    if (!valid || total != dim) {
      return absl::InvalidArgumentError(
          absl::StrCat("split sizes ", ShapeToString(split), " must be ", n,
                       " non-negative sizes (one per output) summing to ", dim,
                       ", the size of axis ", axis));
    }
    const Shape& in = (x)->shape();
    const size_t elem = DataTypeSize((x)->dtype());
    const int64_t outer = NumElements(absl::MakeConstSpan(in).subspan(0, axis));
    const int64_t inner =
        NumElements(absl::MakeConstSpan(in).subspan(axis + 1));
    const char* src = static_cast<const char*>((x)->raw_data());
    int64_t begin = 0;
    for (int k = 0; k < n; ++k) {
      Shape out = in;
      out[axis] = split[k];
      QUANTD_ASSIGN_OR_RETURN(Tensor y, AllocateOutput((x)->dtype(), out));
      const size_t chunk = split[k] * inner * elem;
      char* dst = static_cast<char*>(y.mutable_raw_data());
      for (int64_t o = 0; o < outer; ++o) {
        std::memcpy(dst + o * chunk, src + (o * dim + begin) * inner * elem,
                    chunk);
      }
      begin += split[k];
      ctx.set_output(k, std::move(y));
    }
    return absl::OkStatus();
  });
}

// ------------------------------------------------------------------ Slice

absl::Status SliceCopy(const Tensor& x, const SliceArgs& args, Tensor* y) {
  QUANTD_ASSIGN_OR_RETURN(SliceGeometry g, ResolveSlice(x.shape(), args));
  const int rank = x.rank();
  const Shape& in = x.shape();
  QUANTD_ASSIGN_OR_RETURN(Tensor t, AllocateOutput(x.dtype(), g.out));
  *y = std::move(t);
  if (y->num_elements() == 0) return absl::OkStatus();
  const std::vector<int64_t> dense = RowMajorStrides(in);
  std::vector<int64_t> strides(rank);
  int64_t offset = 0;
  for (int a = 0; a < rank; ++a) {
    strides[a] = dense[a] * g.step[a];
    offset += g.start[a] * dense[a];
  }
  const size_t elem = DataTypeSize(x.dtype());
  StridedCopy(static_cast<const char*>(x.raw_data()) + offset * elem,
              y->mutable_raw_data(), elem, g.out, strides);
  return absl::OkStatus();
}

absl::StatusOr<std::vector<int64_t>> ReadSliceInput(OpKernelContext& ctx,
                                                    int index, const char* name,
                                                    bool* present) {
  const Tensor* t = ctx.input(index);
  *present = t != nullptr && t->defined();
  if (!*present) return std::vector<int64_t>();
  if (t->rank() != 1) {
    return absl::InvalidArgumentError(absl::StrCat(
        "'", name, "' must be a 1-D tensor, got ", t->DebugString()));
  }
  return ReadInt64s(*t, absl::StrCat("'", name, "'"));
}

KernelOr CreateSlice(const OpKernelInfo& info) {
  // Before opset 10, starts/ends/axes were attributes and there were no
  // steps.
  const bool from_attr = info.opset < 10;
  SliceArgs attr_args;
  if (from_attr) {
    const AttributeMap& attrs = info.node.attributes;
    if (!attrs.Has("starts") || !attrs.Has("ends")) {
      return absl::InvalidArgumentError(
          "Slice before opset 10 requires the 'starts' and 'ends' attributes");
    }
    attr_args.starts = attrs.GetInts("starts");
    attr_args.ends = attrs.GetInts("ends");
    attr_args.has_axes = attrs.Has("axes");
    attr_args.axes = attrs.GetInts("axes");
  }
  return MakeFunctionKernel([=](OpKernelContext& ctx) -> absl::Status {
    QUANTD_ASSIGN_OR_RETURN(const Tensor* x, ctx.required_input(0));
    SliceArgs args = attr_args;
    if (!from_attr) {
      const char* names[] = {"starts", "ends", "axes", "steps"};
      std::vector<int64_t>* dst[] = {&args.starts, &args.ends, &args.axes,
                                     &args.steps};
      for (int i = 0; i < 4; ++i) {
        bool present;
        QUANTD_ASSIGN_OR_RETURN(std::vector<int64_t> v,
                                ReadSliceInput(ctx, i + 1, names[i], &present));
        if (!present && i < 2) {
          return absl::InvalidArgumentError(
              absl::StrCat("Slice requires the '", names[i], "' input"));
        }
        if (i == 2) args.has_axes = present;
        *dst[i] = std::move(v);
      }
    }
    Tensor y;
    QUANTD_RETURN_IF_ERROR(SliceCopy(*x, args, &y));
    ctx.set_output(0, std::move(y));
    return absl::OkStatus();
  });
}

// ----------------------------------------------------------------- Gather

KernelOr CreateGather(const OpKernelInfo& info) {
  const int64_t axis_attr = info.node.attributes.GetInt("axis", 0);
  return MakeFunctionKernel([=](OpKernelContext& ctx) -> absl::Status {
    QUANTD_ASSIGN_OR_RETURN(const Tensor* x, ctx.required_input(0));
    QUANTD_ASSIGN_OR_RETURN(const Tensor* ind, ctx.required_input(1));
    QUANTD_ASSIGN_OR_RETURN(int axis,
                            NormalizeAxis(axis_attr, (x)->rank(), "axis"));
    QUANTD_ASSIGN_OR_RETURN(std::vector<int64_t> idx,
                            ReadInt64s(*ind, "the 'indices' input"));
    const Shape& in = (x)->shape();
    const int64_t dim = in[axis];
    for (size_t j = 0; j < idx.size(); ++j) {
      int64_t& i = (idx)[j];
      if (i < -dim || i >= dim) {
        return absl::InvalidArgumentError(absl::StrCat(
            "index ", i, " (element ", j, " of 'indices') is out of range for ",
            "axis ", axis, " of size ", dim, " (valid: [", -dim, ", ", dim - 1,
            "])"));
      }
      if (i < 0) i += dim;
    }
    Shape out(in.begin(), in.begin() + axis);
    out.insert(out.end(), (ind)->shape().begin(), (ind)->shape().end());
    out.insert(out.end(), in.begin() + axis + 1, in.end());
    QUANTD_ASSIGN_OR_RETURN(Tensor y, AllocateOutput((x)->dtype(), out));
    if (y.num_elements() == 0) {  // nothing to copy, however large `outer`
      ctx.set_output(0, std::move(y));
      return absl::OkStatus();
    }
    const size_t elem = DataTypeSize((x)->dtype());
    const int64_t outer = NumElements(absl::MakeConstSpan(in).subspan(0, axis));
    const size_t chunk =
        NumElements(absl::MakeConstSpan(in).subspan(axis + 1)) * elem;
    const char* src = static_cast<const char*>((x)->raw_data());
    char* dst = static_cast<char*>(y.mutable_raw_data());
    PieceCopier copier(y.byte_size(), outer * idx.size());
    for (int64_t o = 0; o < outer; ++o) {
      for (int64_t i : idx) {
        copier.Add(dst, src + (o * dim + i) * chunk, chunk);
        dst += chunk;
      }
    }
    copier.Finish();
    ctx.set_output(0, std::move(y));
    return absl::OkStatus();
  });
}

// -------------------------------------------------------------- Transpose

class TransposeKernel : public OpKernel {
 public:
  explicit TransposeKernel(std::vector<int64_t> perm)
      : transpose_(std::move(perm)) {}
  absl::Status Compute(OpKernelContext& ctx) override {
    QUANTD_ASSIGN_OR_RETURN(const Tensor* x, ctx.required_input(0));
    Tensor y;
    // Validates perm against the input's rank (an empty perm reverses).
    QUANTD_RETURN_IF_ERROR(transpose_.Forward(*x, &y));
    ctx.set_output(0, std::move(y));
    return absl::OkStatus();
  }

 private:
  TransposeForward transpose_;
};

KernelOr CreateTranspose(const OpKernelInfo& info) {
  return std::make_unique<TransposeKernel>(
      info.node.attributes.GetInts("perm"));
}

// ------------------------------------------------------------------- Cast

class CastKernel : public OpKernel {
 public:
  explicit CastKernel(DataType to) : to_(to), cast_(to) {}
  absl::Status Compute(OpKernelContext& ctx) override {
    QUANTD_ASSIGN_OR_RETURN(const Tensor* x, ctx.required_input(0));
    if ((x)->dtype() == to_) {
      ctx.set_output(0, *x);
      return absl::OkStatus();
    }
    Tensor y;
    QUANTD_RETURN_IF_ERROR(cast_.Forward(*x, &y));
    ctx.set_output(0, std::move(y));
    return absl::OkStatus();
  }

 private:
  DataType to_;
  CastForward cast_;
};

KernelOr CreateCast(const OpKernelInfo& info) {
  const Attribute* to = info.node.attributes.Find("to");
  if (to == nullptr || to->type != Attribute::Type::kInt) {
    return absl::InvalidArgumentError(
        "Cast requires the integer attribute 'to'");
  }
  const DataType type = DataTypeFromOnnx(static_cast<int32_t>(to->i));
  if (type == DataType::kUndefined) {
    const std::string name = OnnxDataTypeName(to->i);
    return absl::UnimplementedError(absl::StrCat(
        "Cast to ", name, " is not supported (supported: FLOAT, FLOAT16, ",
        "INT8, UINT8, INT32, INT64, BOOL)"));
  }
  return std::make_unique<CastKernel>(type);
}

}  // namespace

void RegisterDataMovementOps(OpRegistry& registry) {
  registry.Register("Concat", CreateConcat);
  registry.Register("Split", CreateSplit);
  registry.Register("Slice", CreateSlice);
  registry.Register("Gather", CreateGather);
  registry.Register("Transpose", CreateTranspose);
  registry.Register("Cast", CreateCast);
  RegisterPadTileTriluWhereOps(registry);
}

}  // namespace quantd
