#include "engine/runtime/ops/pool_attributes.h"

#include "absl/strings/str_cat.h"

namespace quantd {
namespace {

absl::StatusOr<AutoPad> ParseAutoPad(const std::string& s) {
  if (s == "NOTSET" || s.empty()) return AutoPad::kNotSet;
  if (s == "VALID") return AutoPad::kValid;
  if (s == "SAME_UPPER") return AutoPad::kSameUpper;
  if (s == "SAME_LOWER") return AutoPad::kSameLower;
  return absl::InvalidArgumentError(
      absl::StrCat("auto_pad '", s,
                   "' is not one of NOTSET, VALID, SAME_UPPER, SAME_LOWER"));
}

}  // namespace

absl::StatusOr<PoolParams> ReadPoolParams(const Node& node, PoolKind kind) {
  const AttributeMap& a = node.attributes;
  if (kind == PoolKind::kMax && node.outputs.size() > 1 &&
      !node.outputs[1].empty()) {
    return absl::UnimplementedError(
        "MaxPool's Indices output is not supported");
  }
  if (a.GetInt("storage_order", 0) != 0) {
    return absl::UnimplementedError(
        "MaxPool with storage_order = 1 (column major) is not supported");
  }
  PoolParams p;
  p.kind = kind;
  p.kernel = a.GetInts("kernel_shape");
  if (p.kernel.empty()) {
    return absl::InvalidArgumentError("kernel_shape is required");
  }
  p.strides = a.GetInts("strides");
  p.dilations = a.GetInts("dilations");
  p.pads = a.GetInts("pads");
  absl::StatusOr<AutoPad> auto_pad =
      ParseAutoPad(a.GetString("auto_pad", "NOTSET"));
  if (!auto_pad.ok()) return auto_pad.status();
  p.auto_pad = *auto_pad;
  p.ceil_mode = a.GetInt("ceil_mode", 0) != 0;
  p.count_include_pad = a.GetInt("count_include_pad", 0) != 0;
  return p;
}

}  // namespace quantd
