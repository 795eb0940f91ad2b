// Shape ops: Reshape, Flatten, Squeeze, Unsqueeze, Shape, Identity, Dropout
// (inference), Expand, ConstantOfShape; Constant and Range are in
// shape_ops_constant.cc.
//
// Ops that only change the shape (Reshape, Flatten, Squeeze, Unsqueeze,
// Identity, Dropout) share the input's storage: executor values are
// immutable, so no copy is needed.
#include <algorithm>
#include <cstdint>
#include <cstring>
#include <limits>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "engine/runtime/ops/op_util.h"
#include "engine/runtime/ops/register_ops.h"
#include "engine/runtime/ops/shape_ops_internal.h"
#include "engine/runtime/ops/shape_util.h"
#include "kernels/binary.h"
#include "kernels/reorder.h"
#include "util/status_macros.h"

namespace quantd {
namespace {

using KernelOr = absl::StatusOr<std::unique_ptr<OpKernel>>;

// Reads a 1-D int64/int32 input; `present` says whether it was given.
absl::StatusOr<std::vector<int64_t>> IntsFromInput(OpKernelContext& ctx,
                                                   int index,
                                                   absl::string_view what,
                                                   bool* present) {
  const Tensor* t = ctx.input(index);
  *present = t != nullptr && t->defined();
  if (!*present) return std::vector<int64_t>();
  if (t->rank() > 1) {
    return absl::InvalidArgumentError(absl::StrCat(
        what, " must be a 1-D tensor, got shape ", ShapeToString(t->shape())));
  }
  return ReadInt64s(*t, what);
}

// ---------------------------------------------------------------- Reshape

// Resolves a Reshape target: 0 copies the input dim (unless allowzero), a
// single -1 is inferred from the element count.
absl::StatusOr<Shape> ResolveReshape(const Shape& in,
                                     const std::vector<int64_t>& target,
                                     bool allow_zero) {
  Shape out(target.size());
  int infer = -1;
  bool has_zero = false;
  for (size_t i = 0; i < target.size(); ++i) {
    const int64_t d = target[i];
    if (d == -1) {
      if (infer >= 0) {
        return absl::InvalidArgumentError(absl::StrCat(
            "target shape ", ShapeToString(target), " has more than one -1"));
      }
      infer = static_cast<int>(i);
      out[i] = 1;
    } else if (d < -1) {
      return absl::InvalidArgumentError(
          absl::StrCat("target shape ", ShapeToString(target),
                       " has the invalid dim ", d, " at index ", i));
    } else if (d == 0 && !allow_zero) {
      if (i >= in.size()) {
        return absl::InvalidArgumentError(absl::StrCat(
            "target shape ", ShapeToString(target), " has 0 (copy the input ",
            "dim) at index ", i, " but the input ", ShapeToString(in),
            " has only ", in.size(), " dims"));
      }
      out[i] = in[i];
    } else {
      has_zero |= d == 0;
      out[i] = d;
    }
  }
  if (allow_zero && has_zero && infer >= 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("target shape ", ShapeToString(target),
                     " has both 0 and -1, which allowzero=1 does not permit"));
  }
  QUANTD_ASSIGN_OR_RETURN(int64_t known, CheckedNumElements(out));
  const int64_t total = NumElements(in);
  if (infer >= 0) {
    if (known == 0 || total % known != 0) {
      return absl::InvalidArgumentError(absl::StrCat(
          "cannot reshape ", ShapeToString(in), " (", total, " elements) to ",
          ShapeToString(target), ": the -1 dim cannot be ", "inferred"));
    }
    out[infer] = total / known;
  } else if (known != total) {
    return absl::InvalidArgumentError(absl::StrCat(
        "cannot reshape ", ShapeToString(in), " (", total, " elements) to ",
        ShapeToString(out), " (", known, " elements)"));
  }
  return out;
}

KernelOr CreateReshape(const OpKernelInfo& info) {
  // Reshape-1 took the target as an attribute; allowzero arrived in 14.
  const bool from_attr = info.opset < 5;
  const std::vector<int64_t> attr_shape = info.node.attributes.GetInts("shape");
  const bool allow_zero =
      info.opset >= 14 && info.node.attributes.GetInt("allowzero", 0) != 0;
  return MakeFunctionKernel([=](OpKernelContext& ctx) -> absl::Status {
    QUANTD_ASSIGN_OR_RETURN(const Tensor* data, ctx.required_input(0));
    std::vector<int64_t> target = attr_shape;
    if (!from_attr) {
      QUANTD_RETURN_IF_ERROR((ctx.required_input(1)).status());
      bool present;
      QUANTD_ASSIGN_OR_RETURN(
          std::vector<int64_t> v,
          IntsFromInput(ctx, 1, "the 'shape' input", &present));
      target = std::move(v);
    }
    QUANTD_ASSIGN_OR_RETURN(
        Shape out, ResolveReshape((data)->shape(), target, allow_zero));
    QUANTD_ASSIGN_OR_RETURN(Tensor y, (data)->Reshaped(std::move(out)));
    ctx.set_output(0, std::move(y));
    return absl::OkStatus();
  });
}

// ---------------------------------------------------------------- Flatten

KernelOr CreateFlatten(const OpKernelInfo& info) {
  const int64_t axis = info.node.attributes.GetInt("axis", 1);
  return MakeFunctionKernel([=](OpKernelContext& ctx) -> absl::Status {
    QUANTD_ASSIGN_OR_RETURN(const Tensor* x, ctx.required_input(0));
    const int rank = (x)->rank();
    // Unlike most axes, Flatten's may equal the rank: [-r, r].
    if (axis < -rank || axis > rank) {
      return absl::InvalidArgumentError(
          absl::StrCat("axis ", axis, " is out of range for rank ", rank,
                       " (valid: [", -rank, ", ", rank, "])"));
    }
    const int a = static_cast<int>(axis < 0 ? axis + rank : axis);
    const Shape& s = (x)->shape();
    Shape out = {NumElements(absl::MakeConstSpan(s).subspan(0, a)),
                 NumElements(absl::MakeConstSpan(s).subspan(a))};
    QUANTD_ASSIGN_OR_RETURN(Tensor y, (x)->Reshaped(std::move(out)));
    ctx.set_output(0, std::move(y));
    return absl::OkStatus();
  });
}

// ------------------------------------------------------ Squeeze/Unsqueeze

// Squeeze and Unsqueeze took `axes` as an attribute before opset 13 and as
// an input since.
absl::StatusOr<std::vector<int64_t>> ReadAxes(OpKernelContext& ctx,
                                              bool from_attr,
                                              const std::vector<int64_t>& attr,
                                              bool has_attr, bool* present) {
  if (from_attr) {
    *present = has_attr;
    return attr;
  }
  return IntsFromInput(ctx, 1, "the 'axes' input", present);
}

KernelOr CreateSqueeze(const OpKernelInfo& info) {
  const bool from_attr = info.opset < 13;
  const bool has_attr = info.node.attributes.Has("axes");
  const std::vector<int64_t> attr = info.node.attributes.GetInts("axes");
  return MakeFunctionKernel([=](OpKernelContext& ctx) -> absl::Status {
    QUANTD_ASSIGN_OR_RETURN(const Tensor* x, ctx.required_input(0));
    bool present;
    QUANTD_ASSIGN_OR_RETURN(std::vector<int64_t> axes,
                            ReadAxes(ctx, from_attr, attr, has_attr, &present));
    const Shape& in = (x)->shape();
    std::vector<bool> drop(in.size(), false);
    if (present) {
      QUANTD_ASSIGN_OR_RETURN(std::vector<int> norm,
                              NormalizeAxes(axes, (x)->rank(), "'axes'"));
      for (int a : norm) {
        if (in[a] != 1) {
          return absl::InvalidArgumentError(
              absl::StrCat("cannot squeeze axis ", a, " of size ", in[a],
                           " (input shape ", ShapeToString(in), ")"));
        }
        drop[a] = true;
      }
    } else {
      // No axes: drop every dim of size 1.
      for (size_t i = 0; i < in.size(); ++i) drop[i] = in[i] == 1;
    }
    Shape out;
    for (size_t i = 0; i < in.size(); ++i) {
      if (!drop[i]) out.push_back(in[i]);
    }
    QUANTD_ASSIGN_OR_RETURN(Tensor y, (x)->Reshaped(std::move(out)));
    ctx.set_output(0, std::move(y));
    return absl::OkStatus();
  });
}

KernelOr CreateUnsqueeze(const OpKernelInfo& info) {
  const bool from_attr = info.opset < 13;
  const bool has_attr = info.node.attributes.Has("axes");
  const std::vector<int64_t> attr = info.node.attributes.GetInts("axes");
  if (from_attr && !has_attr) {
    return absl::InvalidArgumentError(
        "Unsqueeze before opset 13 requires the 'axes' attribute");
  }
  return MakeFunctionKernel([=](OpKernelContext& ctx) -> absl::Status {
    QUANTD_ASSIGN_OR_RETURN(const Tensor* x, ctx.required_input(0));
    bool present;
    QUANTD_ASSIGN_OR_RETURN(std::vector<int64_t> axes,
                            ReadAxes(ctx, from_attr, attr, has_attr, &present));
    if (!present) {
      return absl::InvalidArgumentError("Unsqueeze requires the 'axes' input");
    }
    const Shape& in = (x)->shape();
    // Axes index the output, whose rank is the input's plus one per axis.
    const int out_rank = (x)->rank() + static_cast<int>(axes.size());
    QUANTD_ASSIGN_OR_RETURN(std::vector<int> norm,
                            NormalizeAxes(axes, out_rank, "'axes'"));
    std::vector<bool> inserted(out_rank, false);
    for (int a : norm) inserted[a] = true;
    Shape out(out_rank);
    size_t next = 0;
    for (int i = 0; i < out_rank; ++i) out[i] = inserted[i] ? 1 : in[next++];
    QUANTD_ASSIGN_OR_RETURN(Tensor y, (x)->Reshaped(std::move(out)));
    ctx.set_output(0, std::move(y));
    return absl::OkStatus();
  });
}

// ------------------------------------------------------------------ Shape

KernelOr CreateShape(const OpKernelInfo& info) {
  // start/end arrived in opset 15.
  const bool sliced = info.opset >= 15;
  const int64_t start_attr = info.node.attributes.GetInt("start", 0);
  const bool has_end = info.node.attributes.Has("end");
  const int64_t end_attr = info.node.attributes.GetInt("end", 0);
  return MakeFunctionKernel([=](OpKernelContext& ctx) -> absl::Status {
    QUANTD_ASSIGN_OR_RETURN(const Tensor* x, ctx.required_input(0));
    const int64_t rank = (x)->rank();
    int64_t start = 0, end = rank;
    if (sliced) {
      // Negative values count from the back; both clamp to [0, rank].
      start = start_attr < 0 ? start_attr + rank : start_attr;
      end = has_end ? (end_attr < 0 ? end_attr + rank : end_attr) : rank;
      start = std::clamp<int64_t>(start, 0, rank);
      end = std::clamp<int64_t>(end, 0, rank);
    }
    const Shape& s = (x)->shape();
    std::vector<int64_t> dims;
    for (int64_t i = start; i < end; ++i) dims.push_back(s[i]);
    ctx.set_output(0, Int64Vector(dims));
    return absl::OkStatus();
  });
}

// ------------------------------------------------------- Identity/Dropout

absl::Status IdentityCompute(OpKernelContext& ctx) {
  QUANTD_ASSIGN_OR_RETURN(const Tensor* x, ctx.required_input(0));
  ctx.set_output(0, *x);
  return absl::OkStatus();
}

absl::StatusOr<float> ReadRatio(const Tensor& t) {
  if (t.dtype() == DataType::kFloat16 && t.num_elements() == 1) {
    uint16_t bits;
    std::memcpy(&bits, t.raw_data(), 2);
    return FloatFromHalfBits(bits);
  }
  return ReadScalarFloat(t, "the 'ratio' input");
}

// A tensor of ones in `type` and `shape` (Dropout's all-kept mask).
absl::StatusOr<Tensor> Ones(DataType type, const Shape& shape) {
  absl::StatusOr<Tensor> t = AllocateOutput(type, shape);
  if (!t.ok()) return t;
  const size_t size = DataTypeSize(type);
  uint8_t one[8] = {0};
  switch (type) {
    case DataType::kFloat32: {
      const float f = 1.0f;
      std::memcpy(one, &f, 4);
      break;
    }
    case DataType::kFloat16: {
      const uint16_t h = HalfBitsFromFloat(1.0f);
      std::memcpy(one, &h, 2);
      break;
    }
    default: {
      // Integer and bool types: 1 in the low byte (little endian).
      one[0] = 1;
      break;
    }
  }
  FillElements(t->mutable_raw_data(), one, size, t->num_elements());
  return t;
}

KernelOr CreateDropout(const OpKernelInfo& info) {
  const int64_t opset = info.opset;
  // Before opset 7 an is_test=0 attribute asked for training behaviour;
  // before 12 the ratio was an attribute.
  const bool training_attr = opset < 7 &&
                             info.node.attributes.GetInt("is_test", 0) == 0 &&
                             info.node.attributes.Has("is_test");
  const float ratio_attr = info.node.attributes.GetFloat("ratio", 0.5f);
  return MakeFunctionKernel([=](OpKernelContext& ctx) -> absl::Status {
    QUANTD_ASSIGN_OR_RETURN(const Tensor* x, ctx.required_input(0));
    bool training = training_attr;
    float ratio = ratio_attr;
    if (opset >= 12) {
      ratio = 0.5f;
      if (const Tensor* r = ctx.input(1); r != nullptr && r->defined()) {
        QUANTD_ASSIGN_OR_RETURN(float v, ReadRatio(*r));
        ratio = v;
      }
      if (const Tensor* t = ctx.input(2); t != nullptr && t->defined()) {
        if (t->dtype() != DataType::kBool || t->num_elements() != 1) {
          return absl::InvalidArgumentError(
              absl::StrCat("the 'training_mode' input must be a bool scalar, ",
                           "got ", t->DebugString()));
        }
        training = t->data<uint8_t>()[0] != 0;
      }
    }
    // In training mode with a nonzero ratio the spec asks for random
    // dropout, which an inference engine should not silently skip.
    if (training && ratio != 0.0f) {
      return absl::UnimplementedError(absl::StrCat(
          "Dropout in training mode (ratio ", ratio,
          ") is not supported; quantd runs models for inference (export the ",
          "model in eval mode, or set training_mode to false)"));
    }
    ctx.set_output(0, *x);
    if (ctx.num_outputs() > 1) {
      // The mask is bool since opset 10, the input's type before.
      QUANTD_ASSIGN_OR_RETURN(
          Tensor mask,
          Ones(opset >= 10 ? DataType::kBool : (x)->dtype(), (x)->shape()));
      ctx.set_output(1, std::move(mask));
    }
    return absl::OkStatus();
  });
}

// ----------------------------------------------------------------- Expand

absl::Status ExpandCompute(OpKernelContext& ctx) {
  QUANTD_ASSIGN_OR_RETURN(const Tensor* x, ctx.required_input(0));
  QUANTD_RETURN_IF_ERROR((ctx.required_input(1)).status());
  bool present;
  QUANTD_ASSIGN_OR_RETURN(std::vector<int64_t> shape,
                          IntsFromInput(ctx, 1, "the 'shape' input", &present));
  for (int64_t d : shape) {
    if (d < 0) {
      return absl::InvalidArgumentError(absl::StrCat(
          "the 'shape' input ", ShapeToString(shape), " has a negative dim"));
    }
  }
  // Bidirectional: a 1 in `shape` keeps the input's dim.
  QUANTD_ASSIGN_OR_RETURN(Shape out, BroadcastShapes((x)->shape(), shape));
  QUANTD_ASSIGN_OR_RETURN(Tensor y, AllocateOutput((x)->dtype(), out));
  StridedCopy((x)->raw_data(), y.mutable_raw_data(), DataTypeSize((x)->dtype()),
              out, BroadcastStrides((x)->shape(), out));
  ctx.set_output(0, std::move(y));
  return absl::OkStatus();
}

// -------------------------------------------------------- ConstantOfShape

KernelOr CreateConstantOfShape(const OpKernelInfo& info) {
  Tensor value = Tensor::Zeros(DataType::kFloat32, {1});
  if (const Tensor* t = info.node.attributes.GetTensor("value")) {
    if (t->num_elements() != 1) {
      return absl::InvalidArgumentError(
          absl::StrCat("the 'value' attribute must hold exactly one element, ",
                       "got ", t->DebugString()));
    }
    value = *t;
  }
  return MakeFunctionKernel([value](OpKernelContext& ctx) -> absl::Status {
    QUANTD_RETURN_IF_ERROR((ctx.required_input(0)).status());
    bool present;
    QUANTD_ASSIGN_OR_RETURN(
        std::vector<int64_t> shape,
        IntsFromInput(ctx, 0, "the 'input' shape", &present));
    // An empty shape makes a scalar.
    QUANTD_ASSIGN_OR_RETURN(Tensor y, AllocateOutput(value.dtype(), shape));
    FillElements(y.mutable_raw_data(), value.raw_data(),
                 DataTypeSize(value.dtype()), y.num_elements());
    ctx.set_output(0, std::move(y));
    return absl::OkStatus();
  });
}

}  // namespace

void RegisterShapeOps(OpRegistry& registry) {
  registry.Register("Reshape", CreateReshape);
  registry.Register("Flatten", CreateFlatten);
  registry.Register("Squeeze", CreateSqueeze);
  registry.Register("Unsqueeze", CreateUnsqueeze);
  registry.Register("Shape", CreateShape);
  registry.Register("Identity", FunctionFactory(IdentityCompute));
  registry.Register("Dropout", CreateDropout);
  registry.Register("Expand", FunctionFactory(ExpandCompute));
  registry.Register("ConstantOfShape", CreateConstantOfShape);
  RegisterConstantAndRangeOps(registry);
}

}  // namespace quantd
