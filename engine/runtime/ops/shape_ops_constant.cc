// Constant and Range: shape-family ops whose output comes from attributes
// or scalar inputs rather than from a tensor they reshape.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "engine/runtime/ops/op_util.h"
#include "engine/runtime/ops/shape_ops_internal.h"
#include "engine/runtime/ops/shape_util.h"
#include "util/status_macros.h"

namespace quantd {
namespace {

using KernelOr = absl::StatusOr<std::unique_ptr<OpKernel>>;

// --------------------------------------------------------------- Constant

absl::StatusOr<Tensor> ConstantValue(const AttributeMap& attrs) {
  std::vector<std::string> set;
  for (const auto& [name, a] : attrs.all()) set.push_back(name);
  if (set.size() != 1) {
    return absl::InvalidArgumentError(absl::StrCat(
        "Constant needs exactly one value attribute, got ", set.size(),
        set.empty() ? "" : absl::StrCat(" (", absl::StrJoin(set, ", "), ")")));
  }
  const std::string& name = set[0];
  const Attribute& a = *attrs.Find(name);
  using Type = Attribute::Type;
  if (name == "value" && a.type == Type::kTensor) {
    if (!a.t.defined()) {
      return absl::InvalidArgumentError("the 'value' tensor is undefined");
    }
    return a.t;
  }
  if (name == "value_float" && a.type == Type::kFloat) {
    return Tensor::Scalar<float>(a.f);
  }
  if (name == "value_floats" && a.type == Type::kFloats) {
    return Tensor::FromVector<float>({static_cast<int64_t>(a.floats.size())},
                                     a.floats);
  }
  if (name == "value_int" && a.type == Type::kInt) {
    return Tensor::Scalar<int64_t>(a.i);
  }
  if (name == "value_ints" && a.type == Type::kInts) {
    return Int64Vector(a.ints);
  }
  if (name == "sparse_value" || name == "value_string" ||
      name == "value_strings") {
    return absl::UnimplementedError(
        absl::StrCat("Constant with '", name,
                     "' is not supported (no sparse or string ", "tensors)"));
  }
  return absl::InvalidArgumentError(
      absl::StrCat("Constant has an unknown or mistyped attribute '", name,
                   "'; expected one of value, value_float, value_floats, ",
                   "value_int, value_ints"));
}

KernelOr CreateConstant(const OpKernelInfo& info) {
  QUANTD_ASSIGN_OR_RETURN(Tensor value, ConstantValue(info.node.attributes));
  Tensor v = std::move(value);
  return MakeFunctionKernel([v](OpKernelContext& ctx) -> absl::Status {
    ctx.set_output(0, v);
    return absl::OkStatus();
  });
}

// ------------------------------------------------------------------ Range

absl::StatusOr<Tensor> RangeFloat(float start, float limit, float delta) {
  if (!std::isfinite(start) || !std::isfinite(limit) || !std::isfinite(delta)) {
    return absl::InvalidArgumentError(
        absl::StrCat("Range needs finite start, limit and delta; got ", start,
                     ", ", limit, ", ", delta));
  }
  const double count =
      std::ceil((double(limit) - double(start)) / double(delta));
  const double n = std::max(count, 0.0);
  if (n > static_cast<double>(kMaxOpOutputElements)) {
    return absl::ResourceExhaustedError(absl::StrCat(
        "Range(", start, ", ", limit, ", ", delta, ") would have ", n,
        " elements, more than the limit of ", kMaxOpOutputElements));
  }
  absl::StatusOr<Tensor> y =
      AllocateOutput(DataType::kFloat32, {static_cast<int64_t>(n)});
  if (!y.ok()) return y;
  float* out = y->mutable_data<float>();
  for (int64_t i = 0; i < y->num_elements(); ++i) {
    out[i] = static_cast<float>(double(start) + double(i) * double(delta));
  }
  return y;
}

template <typename T>
absl::StatusOr<Tensor> RangeInt(T start, T limit, T delta) {
  // 128-bit so that limit - start cannot overflow.
  const __int128 span = static_cast<__int128>(limit) - start;
  __int128 n = 0;
  if (delta > 0 && span > 0) n = (span + delta - 1) / delta;
  if (delta < 0 && span < 0)
    n = (-span + (-static_cast<__int128>(delta)) - 1) /
        (-static_cast<__int128>(delta));
  if (n > kMaxOpOutputElements) {
    return absl::ResourceExhaustedError(absl::StrCat(
        "Range(", start, ", ", limit, ", ", delta, ") would have ",
        static_cast<int64_t>(n), " elements, more than the limit of ",
        kMaxOpOutputElements));
  }
  absl::StatusOr<Tensor> y =
      AllocateOutput(DataTypeOf<T>::value, {static_cast<int64_t>(n)});
  if (!y.ok()) return y;
  T* out = y->template mutable_data<T>();
  // Every value lies between start and limit, so none overflows T.
  for (int64_t i = 0; i < y->num_elements(); ++i) {
    out[i] = static_cast<T>(start + static_cast<__int128>(i) * delta);
  }
  return y;
}

absl::Status RangeCompute(OpKernelContext& ctx) {
  const Tensor* in[3];
  const char* names[3] = {"start", "limit", "delta"};
  for (int i = 0; i < 3; ++i) {
    QUANTD_ASSIGN_OR_RETURN(const Tensor* t, ctx.required_input(i));
    in[i] = t;
    if (in[i]->num_elements() != 1 || in[i]->rank() > 1) {
      return absl::InvalidArgumentError(absl::StrCat(
          "'", names[i], "' must be a scalar, got ", in[i]->DebugString()));
    }
    if (in[i]->dtype() != in[0]->dtype()) {
      return absl::InvalidArgumentError(absl::StrCat(
          "'start', 'limit' and 'delta' must have one type; got ",
          DataTypeName(in[0]->dtype()), " and ", DataTypeName(in[i]->dtype())));
    }
  }
  absl::StatusOr<Tensor> y;
  switch (in[0]->dtype()) {
    case DataType::kFloat32: {
      const float delta = in[2]->data<float>()[0];
      if (delta == 0.0f) return absl::InvalidArgumentError("'delta' is 0");
      y = RangeFloat(in[0]->data<float>()[0], in[1]->data<float>()[0], delta);
      break;
    }
    case DataType::kInt32: {
      const int32_t delta = in[2]->data<int32_t>()[0];
      if (delta == 0) return absl::InvalidArgumentError("'delta' is 0");
      y = RangeInt<int32_t>(in[0]->data<int32_t>()[0],
                            in[1]->data<int32_t>()[0], delta);
      break;
    }
    case DataType::kInt64: {
      const int64_t delta = in[2]->data<int64_t>()[0];
      if (delta == 0) return absl::InvalidArgumentError("'delta' is 0");
      y = RangeInt<int64_t>(in[0]->data<int64_t>()[0],
                            in[1]->data<int64_t>()[0], delta);
      break;
    }
    default:
      return absl::UnimplementedError(
          absl::StrCat("Range of type ", DataTypeName(in[0]->dtype()),
                       " is not supported (f32, s32 and s64 are)"));
  }
  if (!y.ok()) return y.status();
  ctx.set_output(0, std::move(*y));
  return absl::OkStatus();
}

}  // namespace

void RegisterConstantAndRangeOps(OpRegistry& registry) {
  registry.Register("Constant", CreateConstant);
  registry.Register("Range", FunctionFactory(RangeCompute));
}

}  // namespace quantd
