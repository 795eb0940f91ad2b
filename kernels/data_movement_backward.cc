// Backward of the data movement ops that move values around: Transpose (the
// inverse permutation), Slice (scatter into zeros), Concat / Split (split /
// concatenate along the axis), Gather (scatter-add). Reshape-like ops need
// no kernel.
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "kernels/backward.h"
#include "kernels/reorder.h"
#include "util/status_macros.h"

namespace quantd {
namespace {

absl::Status CheckF32(const Tensor& t, const char* what) {
  if (t.dtype() != DataType::kFloat32) {
    return absl::InvalidArgumentError(
        absl::StrCat(what, " takes f32, got ", t.DebugString()));
  }
  return absl::OkStatus();
}

absl::Status NormalizeAxis(int* axis, int rank, const char* what) {
  if (*axis < 0) *axis += rank;
  if (*axis < 0 || *axis >= rank) {
    return absl::InvalidArgumentError(
        absl::StrCat(what, ": axis out of range for rank ", rank));
  }
  return absl::OkStatus();
}

// Checks that `parts` concatenate along `axis` to `whole`.
absl::Status CheckConcat(const std::vector<Shape>& parts, int axis,
                         const Shape& whole, const char* what) {
  int64_t total = 0;
  for (const Shape& p : parts) {
    if (p.size() != whole.size()) {
      return absl::InvalidArgumentError(
          absl::StrCat(what, ": rank of ", ShapeToString(p), " is not that of ",
                       ShapeToString(whole)));
    }
    for (size_t d = 0; d < p.size(); ++d) {
      if (static_cast<int>(d) != axis && p[d] != whole[d]) {
        return absl::InvalidArgumentError(
            absl::StrCat(what, ": ", ShapeToString(p), " does not match ",
                         ShapeToString(whole), " off the axis"));
      }
    }
    total += p[axis];
  }
  if (total != whole[axis]) {
    return absl::InvalidArgumentError(
        absl::StrCat(what, ": parts add up to ", total, " along axis ", axis,
                     ", the whole has ", whole[axis]));
  }
  return absl::OkStatus();
}

}  // namespace

absl::Status TransposeBackward(absl::Span<const int64_t> perm, const Tensor& dy,
                               Tensor* dx) {
  std::vector<int64_t> inverse(perm.size());
  for (size_t i = 0; i < perm.size(); ++i) {
    if (perm[i] < 0 || perm[i] >= static_cast<int64_t>(perm.size())) {
      return absl::InvalidArgumentError("transpose backward: bad permutation");
    }
    inverse[perm[i]] = static_cast<int64_t>(i);
  }
  // An empty perm reverses the dims, which is its own inverse.
  TransposeForward transpose(inverse);
  Tensor out;
  QUANTD_RETURN_IF_ERROR(transpose.Forward(dy, &out));
  *dx = out;
  return absl::OkStatus();
}

absl::Status SliceBackward(const Shape& input_shape,
                           absl::Span<const int64_t> starts,
                           absl::Span<const int64_t> steps, const Tensor& dy,
                           Tensor* dx) {
  QUANTD_RETURN_IF_ERROR(CheckF32(dy, "slice backward"));
  const int rank = static_cast<int>(input_shape.size());
  if (static_cast<int>(starts.size()) != rank ||
      static_cast<int>(steps.size()) != rank || dy.rank() != rank) {
    return absl::InvalidArgumentError(
        "slice backward: starts, steps and dy need the input's rank");
  }
  std::vector<int64_t> in_strides(rank);
  int64_t stride = 1;
  for (int d = rank - 1; d >= 0; --d) {
    if (dy.dim(d) > 0) {
      const int64_t last = starts[d] + (dy.dim(d) - 1) * steps[d];
      if (steps[d] == 0 || starts[d] < 0 || starts[d] >= input_shape[d] ||
          last < 0 || last >= input_shape[d]) {
        return absl::InvalidArgumentError(absl::StrCat(
            "slice backward: dim ", d, " of ", ShapeToString(dy.shape()),
            " does not fit in ", ShapeToString(input_shape)));
      }
    }
    in_strides[d] = stride;
    stride *= input_shape[d];
  }
  Tensor out = Tensor::Zeros(DataType::kFloat32, input_shape);
  float* pdx = out.mutable_data<float>();
  const float* pdy = dy.data<float>();
  std::vector<int64_t> index(rank, 0);
  for (int64_t i = 0; i < dy.num_elements(); ++i) {
    int64_t off = 0;
    for (int d = 0; d < rank; ++d) {
      off += (starts[d] + index[d] * steps[d]) * in_strides[d];
    }
    pdx[off] = pdy[i];
    for (int d = rank - 1; d >= 0; --d) {
      if (++index[d] < dy.dim(d)) break;
      index[d] = 0;
    }
  }
  *dx = out;
  return absl::OkStatus();
}

absl::Status ConcatBackward(const std::vector<Shape>& input_shapes, int axis,
                            const Tensor& dy, std::vector<Tensor>* dxs) {
  QUANTD_RETURN_IF_ERROR(CheckF32(dy, "concat backward"));
  QUANTD_RETURN_IF_ERROR(NormalizeAxis(&axis, dy.rank(), "concat backward"));
  QUANTD_RETURN_IF_ERROR(
      CheckConcat(input_shapes, axis, dy.shape(), "concat backward"));
  int64_t outer = 1, inner = 1;
  for (int i = 0; i < axis; ++i) outer *= dy.dim(i);
  for (int i = axis + 1; i < dy.rank(); ++i) inner *= dy.dim(i);
  const int64_t row = dy.dim(axis) * inner;
  dxs->clear();
  int64_t offset = 0;
  for (const Shape& shape : input_shapes) {
    Tensor part(DataType::kFloat32, shape);
    const int64_t chunk = shape[axis] * inner;
    for (int64_t o = 0; o < outer; ++o) {
      const float* src = dy.data<float>() + o * row + offset;
      float* dst = part.mutable_data<float>() + o * chunk;
      for (int64_t i = 0; i < chunk; ++i) dst[i] = src[i];
    }
    offset += chunk;
    dxs->push_back(part);
  }
  return absl::OkStatus();
}

absl::Status SplitBackward(const std::vector<Shape>& output_shapes, int axis,
                           const std::vector<Tensor>& dys, Tensor* dx) {
  if (output_shapes.empty() || dys.size() != output_shapes.size()) {
    return absl::InvalidArgumentError(
        "split backward: one dy (possibly undefined) per output shape");
  }
  const int rank = static_cast<int>(output_shapes[0].size());
  QUANTD_RETURN_IF_ERROR(NormalizeAxis(&axis, rank, "split backward"));
  Shape whole = output_shapes[0];
  whole[axis] = 0;
  for (size_t i = 0; i < dys.size(); ++i) {
    whole[axis] += output_shapes[i][axis];
    if (!dys[i].defined()) continue;
    QUANTD_RETURN_IF_ERROR(CheckF32(dys[i], "split backward"));
    if (dys[i].shape() != output_shapes[i]) {
      return absl::InvalidArgumentError(
          absl::StrCat("split backward: dy ", i, " has shape ",
                       ShapeToString(dys[i].shape()), ", expected ",
                       ShapeToString(output_shapes[i])));
    }
  }
  QUANTD_RETURN_IF_ERROR(
      CheckConcat(output_shapes, axis, whole, "split backward"));
  int64_t outer = 1, inner = 1;
  for (int i = 0; i < axis; ++i) outer *= whole[i];
  for (int i = axis + 1; i < rank; ++i) inner *= whole[i];
  const int64_t row = whole[axis] * inner;
  Tensor out = Tensor::Zeros(DataType::kFloat32, whole);
  int64_t offset = 0;
  for (size_t p = 0; p < dys.size(); ++p) {
    const int64_t chunk = output_shapes[p][axis] * inner;
    if (dys[p].defined()) {
      for (int64_t o = 0; o < outer; ++o) {
        const float* src = dys[p].data<float>() + o * chunk;
        float* dst = out.mutable_data<float>() + o * row + offset;
        for (int64_t i = 0; i < chunk; ++i) dst[i] = src[i];
      }
    }
    offset += chunk;
  }
  *dx = out;
  return absl::OkStatus();
}

absl::Status GatherBackward(const Shape& data_shape, const Tensor& indices,
                            int axis, const Tensor& dy, Tensor* dx) {
  QUANTD_RETURN_IF_ERROR(CheckF32(dy, "gather backward"));
  const int rank = static_cast<int>(data_shape.size());
  QUANTD_RETURN_IF_ERROR(NormalizeAxis(&axis, rank, "gather backward"));
  if (indices.dtype() != DataType::kInt64 &&
      indices.dtype() != DataType::kInt32) {
    return absl::InvalidArgumentError(
        absl::StrCat("gather backward: indices must be int64 or int32, got ",
                     indices.DebugString()));
  }
  Shape expected(data_shape.begin(), data_shape.begin() + axis);
  expected.insert(expected.end(), indices.shape().begin(),
                  indices.shape().end());
  expected.insert(expected.end(), data_shape.begin() + axis + 1,
                  data_shape.end());
  if (dy.shape() != expected) {
    return absl::InvalidArgumentError(absl::StrCat(
        "gather backward: dy has shape ", ShapeToString(dy.shape()),
        ", the forward output is ", ShapeToString(expected)));
  }
  int64_t outer = 1, inner = 1;
  for (int i = 0; i < axis; ++i) outer *= data_shape[i];
  for (int i = axis + 1; i < rank; ++i) inner *= data_shape[i];
  const int64_t n = data_shape[axis];
  const int64_t count = indices.num_elements();
  Tensor out = Tensor::Zeros(DataType::kFloat32, data_shape);
  float* pdx = out.mutable_data<float>();
  const float* pdy = dy.data<float>();
  for (int64_t j = 0; j < count; ++j) {
    int64_t idx = indices.dtype() == DataType::kInt64
                      ? indices.data<int64_t>()[j]
                      : indices.data<int32_t>()[j];
    if (idx < 0) idx += n;
    if (idx < 0 || idx >= n) {
      return absl::InvalidArgumentError(absl::StrCat(
          "gather backward: index ", idx, " out of range for axis size ", n));
    }
    for (int64_t o = 0; o < outer; ++o) {
      const float* src = pdy + (o * count + j) * inner;
      float* dst = pdx + (o * n + idx) * inner;
      for (int64_t i = 0; i < inner; ++i) dst[i] += src[i];
    }
  }
  *dx = out;
  return absl::OkStatus();
}

}  // namespace quantd
