// Data-movement ops that write elements not taken from a plain sub-view of
// their input: Pad, Tile, Trilu, Where.
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
#include "absl/strings/str_join.h"
#include "engine/runtime/ops/data_movement_ops_internal.h"
#include "engine/runtime/ops/op_util.h"
#include "engine/runtime/ops/shape_util.h"
#include "kernels/binary.h"
#include "kernels/reorder.h"
#include "util/status_macros.h"

namespace quantd {
namespace {

using KernelOr = absl::StatusOr<std::unique_ptr<OpKernel>>;

// -------------------------------------------------------------------- Pad

enum class PadMode { kConstant, kReflect, kEdge };

// Pads of one axis. Negative pads crop first; positive pads then extend
// what is left, so 'edge' and 'reflect' use the cropped tensor's borders.
struct AxisPads {
  int64_t crop_before = 0;
  int64_t kept = 0;   // input elements left after cropping
  int64_t front = 0;  // elements added before them
  int64_t back = 0;   // and after them
  int64_t size() const { return front + kept + back; }
};

absl::StatusOr<AxisPads> ResolveAxisPads(int axis, int64_t dim, int64_t before,
                                         int64_t after, PadMode mode) {
  AxisPads p;
  p.crop_before = std::max<int64_t>(0, -before);
  const int64_t crop_after = std::max<int64_t>(0, -after);
  if (p.crop_before > dim || crop_after > dim - p.crop_before) {
    return absl::InvalidArgumentError(
        absl::StrCat("pads (", before, ", ", after, ") for axis ", axis,
                     " crop more than its ", dim, " elements"));
  }
  p.kept = dim - p.crop_before - crop_after;
  p.front = std::max<int64_t>(0, before);
  p.back = std::max<int64_t>(0, after);
  if (p.front > kMaxOpOutputElements || p.back > kMaxOpOutputElements) {
    return absl::ResourceExhaustedError(
        absl::StrCat("pads (", before, ", ", after, ") for axis ", axis,
                     " exceed the output size limit of ", kMaxOpOutputElements,
                     " elements"));
  }
  if (p.kept == 0 && (p.front > 0 || p.back > 0) &&
      mode != PadMode::kConstant) {
    return absl::InvalidArgumentError(
        absl::StrCat("cannot pad axis ", axis, " in '",
                     mode == PadMode::kEdge ? "edge" : "reflect",
                     "' mode: it has no elements to copy"));
  }
  return p;
}

// For one axis, the input index each output index reads, or -1 where the
// constant goes.
std::vector<int64_t> PadAxisMap(const AxisPads& pads, PadMode mode) {
  std::vector<int64_t> map(pads.size());
  for (int64_t j = 0; j < pads.size(); ++j) {
    int64_t p = j - pads.front;  // position in the cropped axis
    if (p < 0 || p >= pads.kept) {
      switch (mode) {
        case PadMode::kConstant:
          map[j] = -1;
          continue;
        case PadMode::kEdge:
          p = std::clamp<int64_t>(p, 0, pads.kept - 1);
          break;
        case PadMode::kReflect:
          // Mirror about the borders without repeating them; pads longer
          // than the axis keep reflecting (as numpy.pad does).
          if (pads.kept == 1) {
            p = 0;
          } else {
            const int64_t period = 2 * (pads.kept - 1);
            p %= period;
            if (p < 0) p += period;
            if (p >= pads.kept) p = period - p;
          }
          break;
      }
    }
    map[j] = pads.crop_before + p;
  }
  return map;
}

absl::StatusOr<PadMode> ParsePadMode(const std::string& mode) {
  if (mode == "constant") return PadMode::kConstant;
  if (mode == "reflect") return PadMode::kReflect;
  if (mode == "edge") return PadMode::kEdge;
  return absl::InvalidArgumentError(
      absl::StrCat("Pad mode '", mode,
                   "' is not supported (constant, reflect and edge are)"));
}

// `value` points at one element of the output's type.
absl::Status PadCopy(const Tensor& x, const std::vector<int64_t>& pads,
                     PadMode mode, const void* value, Tensor* y) {
  const int rank = x.rank();
  if (static_cast<int>(pads.size()) != 2 * rank) {
    return absl::InvalidArgumentError(absl::StrCat(
        "pads ", ShapeToString(pads), " must have 2 * rank = ", 2 * rank,
        " entries for input ", x.DebugString()));
  }
  std::vector<AxisPads> axis_pads(rank);
  Shape out(rank);
  for (int a = 0; a < rank; ++a) {
    QUANTD_ASSIGN_OR_RETURN(AxisPads p, ResolveAxisPads(a, x.dim(a), pads[a],
                                                        pads[a + rank], mode));
    axis_pads[a] = p;
    out[a] = p.size();
  }
  QUANTD_ASSIGN_OR_RETURN(Tensor t, AllocateOutput(x.dtype(), out));
  *y = std::move(t);
  const size_t elem = DataTypeSize(x.dtype());
  if (rank == 0) {
    std::memcpy(y->mutable_raw_data(), x.raw_data(), elem);
    return absl::OkStatus();
  }
  if (y->num_elements() == 0) return absl::OkStatus();
  std::vector<std::vector<int64_t>> maps(rank);
  for (int a = 0; a < rank; ++a) maps[a] = PadAxisMap(axis_pads[a], mode);

  // One output row (last axis) at a time. The middle of a row that reads a
  // contiguous input run moves with one memcpy.
  const std::vector<int64_t> strides = RowMajorStrides(x.shape());
  const std::vector<int64_t>& last = maps[rank - 1];
  const int64_t row_len = out[rank - 1];
  const int64_t run_begin = axis_pads[rank - 1].front;
  const int64_t run_len = axis_pads[rank - 1].kept;
  const int64_t rows = y->num_elements() / row_len;
  const char* src = static_cast<const char*>(x.raw_data());
  char* dst = static_cast<char*>(y->mutable_raw_data());
  std::vector<int64_t> index(rank - 1, 0);
  for (int64_t r = 0; r < rows; ++r, dst += row_len * elem) {
    int64_t offset = 0;
    bool fill = false;
    for (int a = 0; a < rank - 1 && !fill; ++a) {
      const int64_t m = maps[a][index[a]];
      fill = m < 0;
      offset += m * strides[a];
    }
    for (int a = rank - 2; a >= 0; --a) {
      if (++index[a] < out[a]) break;
      index[a] = 0;
    }
    if (fill) {
      FillElements(dst, value, elem, row_len);
      continue;
    }
    const char* row = src + offset * elem;
    for (int64_t j = 0; j < row_len; ++j) {
      if (j == run_begin && run_len > 0) {
        std::memcpy(dst + j * elem, row + last[j] * elem, run_len * elem);
        j += run_len - 1;
      } else if (last[j] < 0) {
        std::memcpy(dst + j * elem, value, elem);
      } else {
        std::memcpy(dst + j * elem, row + last[j] * elem, elem);
      }
    }
  }
  return absl::OkStatus();
}

KernelOr CreatePad(const OpKernelInfo& info) {
  QUANTD_ASSIGN_OR_RETURN(
      PadMode mode,
      ParsePadMode(info.node.attributes.GetString("mode", "constant")));
  // Before opset 11, pads and the constant were attributes.
  const bool from_attr = info.opset < 11;
  const std::vector<int64_t> pads_attr = info.node.attributes.GetInts("pads");
  const float value_attr = info.node.attributes.GetFloat("value", 0.0f);
  if (from_attr && !info.node.attributes.Has("pads")) {
    return absl::InvalidArgumentError(
        "Pad before opset 11 requires the 'pads' attribute");
  }
  const PadMode m = mode;
  return MakeFunctionKernel([=](OpKernelContext& ctx) -> absl::Status {
    QUANTD_ASSIGN_OR_RETURN(const Tensor* x, ctx.required_input(0));
    std::vector<int64_t> pads = pads_attr;
    // Zero bytes are zero in every supported type.
    Tensor value = Tensor::Zeros((x)->dtype(), {});
    if (from_attr) {
      if (value_attr != 0.0f) {
        Tensor v;
        CastForward to_type((x)->dtype());
        absl::Status s = to_type.Forward(Tensor::Scalar<float>(value_attr), &v);
        if (!s.ok()) return s;
        value = v;
      }
    } else {
      QUANTD_ASSIGN_OR_RETURN(const Tensor* p, ctx.required_input(1));
      if ((p)->rank() != 1) {
        return absl::InvalidArgumentError(absl::StrCat(
            "'pads' must be a 1-D tensor, got ", (p)->DebugString()));
      }
      QUANTD_ASSIGN_OR_RETURN(std::vector<int64_t> v, ReadInt64s(*p, "'pads'"));
      pads = std::move(v);
      if (const Tensor* c = ctx.input(2); c != nullptr && c->defined()) {
        if (c->dtype() != (x)->dtype() || c->num_elements() != 1) {
          return absl::InvalidArgumentError(absl::StrCat(
              "'constant_value' must be one element of the data's type ",
              DataTypeName((x)->dtype()), ", got ", c->DebugString()));
        }
        value = *c;
      }
      if (const Tensor* axes = ctx.input(3);
          axes != nullptr && axes->defined()) {
        return absl::UnimplementedError(
            "Pad's 'axes' input (opset 18) is not supported");
      }
    }
    Tensor y;
    absl::Status s = PadCopy(*x, pads, m, value.raw_data(), &y);
    if (!s.ok()) return s;
    ctx.set_output(0, std::move(y));
    return absl::OkStatus();
  });
}

// ------------------------------------------------------------------- Tile

absl::Status TileCompute(OpKernelContext& ctx) {
  QUANTD_ASSIGN_OR_RETURN(const Tensor* x, ctx.required_input(0));
  QUANTD_ASSIGN_OR_RETURN(const Tensor* r, ctx.required_input(1));
  QUANTD_ASSIGN_OR_RETURN(std::vector<int64_t> repeats,
                          ReadInt64s(*r, "the 'repeats' input"));
  const int rank = (x)->rank();
  if ((r)->rank() != 1 || static_cast<int>(repeats.size()) != rank) {
    return absl::InvalidArgumentError(absl::StrCat(
        "'repeats' must be a 1-D tensor with one entry per input dim (", rank,
        "), got ", (r)->DebugString()));
  }
  // Tiling is a strided copy of the output viewed as [r0, d0, r1, d1, ...]
  // reading the input with strides [0, s0, 0, s1, ...].
  const std::vector<int64_t> dense = RowMajorStrides((x)->shape());
  Shape out(rank), view, strides;
  for (int a = 0; a < rank; ++a) {
    const int64_t d = (x)->dim(a), rep = (repeats)[a];
    if (rep < 0) {
      return absl::InvalidArgumentError(absl::StrCat(
          "'repeats' ", ShapeToString(repeats), " has a negative entry"));
    }
    if (d != 0 && rep > std::numeric_limits<int64_t>::max() / d) {
      return absl::ResourceExhaustedError(
          absl::StrCat("tiling ", (x)->DebugString(), " by ",
                       ShapeToString(repeats), " overflows"));
    }
    out[a] = d * rep;
    view.insert(view.end(), {rep, d});
    strides.insert(strides.end(), {0, dense[a]});
  }
  QUANTD_ASSIGN_OR_RETURN(Tensor y, AllocateOutput((x)->dtype(), out));
  StridedCopy((x)->raw_data(), y.mutable_raw_data(), DataTypeSize((x)->dtype()),
              view, strides);
  ctx.set_output(0, std::move(y));
  return absl::OkStatus();
}

// ------------------------------------------------------------------ Trilu

KernelOr CreateTrilu(const OpKernelInfo& info) {
  const bool upper = info.node.attributes.GetInt("upper", 1) != 0;
  return MakeFunctionKernel([=](OpKernelContext& ctx) -> absl::Status {
    QUANTD_ASSIGN_OR_RETURN(const Tensor* x, ctx.required_input(0));
    if ((x)->rank() < 2) {
      return absl::InvalidArgumentError(absl::StrCat(
          "Trilu needs an input of rank >= 2, got ", (x)->DebugString()));
    }
    int64_t k = 0;
    if (const Tensor* kt = ctx.input(1); kt != nullptr && kt->defined()) {
      QUANTD_ASSIGN_OR_RETURN(int64_t v, ReadScalarInt(*kt, "the 'k' input"));
      k = v;
    }
    const int64_t rows = (x)->dim(-2), cols = (x)->dim(-1);
    // Beyond these bounds k keeps everything or nothing; clamping keeps
    // row + k from overflowing.
    k = std::clamp<int64_t>(k, -rows - 1, cols + 1);
    QUANTD_ASSIGN_OR_RETURN(Tensor y,
                            AllocateOutput((x)->dtype(), (x)->shape()));
    const size_t elem = DataTypeSize((x)->dtype());
    const int64_t total_rows = cols == 0 ? 0 : (x)->num_elements() / cols;
    const char* src = static_cast<const char*>((x)->raw_data());
    char* dst = static_cast<char*>(y.mutable_raw_data());
    for (int64_t r = 0; r < total_rows; ++r) {
      const int64_t i = r % rows;
      // Keep columns j with j - i >= k (upper) or j - i <= k (lower).
      const int64_t lo = upper ? std::clamp<int64_t>(i + k, 0, cols) : 0;
      const int64_t hi = upper ? cols : std::clamp<int64_t>(i + k + 1, 0, cols);
      const int64_t base = r * cols * elem;
      std::memset(dst + base, 0, lo * elem);
      if (hi > lo) {
        std::memcpy(dst + base + lo * elem, src + base + lo * elem,
                    (hi - lo) * elem);
      }
      std::memset(dst + base + std::max(hi, lo) * elem, 0,
                  (cols - std::max(hi, lo)) * elem);
    }
    ctx.set_output(0, std::move(y));
    return absl::OkStatus();
  });
}

// ------------------------------------------------------------------ Where

template <typename T>
void WhereLoop(const uint8_t* c, const char* x, const char* y, char* out,
               const Shape& shape, const std::vector<int64_t>& cs,
               const std::vector<int64_t>& xs, const std::vector<int64_t>& ys) {
  const int rank = static_cast<int>(shape.size());
  const int64_t n = shape.back();
  const int64_t rows = NumElements(shape) / n;
  std::vector<int64_t> index(rank - 1, 0);
  int64_t co = 0, xo = 0, yo = 0;
  T* o = reinterpret_cast<T*>(out);
  const int64_t cl = cs.back(), xl = xs.back(), yl = ys.back();
  for (int64_t r = 0; r < rows; ++r) {
    for (int64_t j = 0; j < n; ++j) {
      const char* from = c[co + j * cl] ? x + (xo + j * xl) * sizeof(T)
                                        : y + (yo + j * yl) * sizeof(T);
      std::memcpy(o++, from, sizeof(T));
    }
    for (int a = rank - 2; a >= 0; --a) {
      co += cs[a];
      xo += xs[a];
      yo += ys[a];
      if (++index[a] < shape[a]) break;
      co -= cs[a] * shape[a];
      xo -= xs[a] * shape[a];
      yo -= ys[a] * shape[a];
      index[a] = 0;
    }
  }
}

absl::Status WhereCompute(OpKernelContext& ctx) {
  const Tensor* in[3];
  for (int i = 0; i < 3; ++i) {
    QUANTD_ASSIGN_OR_RETURN(const Tensor* t, ctx.required_input(i));
    in[i] = t;
  }
  const Tensor &c = *in[0], &x = *in[1], &y = *in[2];
  if (c.dtype() != DataType::kBool) {
    return absl::InvalidArgumentError(absl::StrCat(
        "'condition' must be bool, got ", DataTypeName(c.dtype())));
  }
  if (x.dtype() != y.dtype()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "X and Y must have one type, got ", DataTypeName(x.dtype()), " and ",
        DataTypeName(y.dtype())));
  }
  QUANTD_ASSIGN_OR_RETURN(Shape cx, BroadcastShapes(c.shape(), x.shape()));
  QUANTD_ASSIGN_OR_RETURN(Shape shape, BroadcastShapes(cx, y.shape()));
  QUANTD_ASSIGN_OR_RETURN(Tensor out, AllocateOutput(x.dtype(), shape));
  if (out.num_elements() > 0) {
    // A scalar output loops as shape [1].
    Shape loop = shape.empty() ? Shape{1} : shape;
    std::vector<int64_t> cs = BroadcastStrides(c.shape(), loop);
    std::vector<int64_t> xs = BroadcastStrides(x.shape(), loop);
    std::vector<int64_t> ys = BroadcastStrides(y.shape(), loop);
    const auto* cp = static_cast<const uint8_t*>(c.raw_data());
    const auto* xp = static_cast<const char*>(x.raw_data());
    const auto* yp = static_cast<const char*>(y.raw_data());
    auto* op = static_cast<char*>(out.mutable_raw_data());
    switch (DataTypeSize(x.dtype())) {
      case 1:
        WhereLoop<uint8_t>(cp, xp, yp, op, loop, cs, xs, ys);
        break;
      case 2:
        WhereLoop<uint16_t>(cp, xp, yp, op, loop, cs, xs, ys);
        break;
      case 4:
        WhereLoop<uint32_t>(cp, xp, yp, op, loop, cs, xs, ys);
        break;
      case 8:
        WhereLoop<uint64_t>(cp, xp, yp, op, loop, cs, xs, ys);
        break;
      default:
        return absl::InvalidArgumentError(absl::StrCat(
            "Where of type ", DataTypeName(x.dtype()), " is not supported"));
    }
  }
  ctx.set_output(0, std::move(out));
  return absl::OkStatus();
}

}  // namespace

void RegisterPadTileTriluWhereOps(OpRegistry& registry) {
  registry.Register("Pad", CreatePad);
  registry.Register("Tile", FunctionFactory(TileCompute));
  registry.Register("Trilu", CreateTrilu);
  registry.Register("Where", FunctionFactory(WhereCompute));
}

}  // namespace quantd
