#include "engine/onnx/opset_adapters.h"

#include <cmath>
#include <map>
#include <optional>
#include <set>
#include <vector>

#include "absl/container/flat_hash_set.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "engine/onnx/onnx_convert.h"

namespace quantd {
namespace {

bool IsDefaultDomain(const onnx::NodeProto& n) {
  return n.domain().empty() || n.domain() == "ai.onnx";
}

const onnx::AttributeProto* FindAttribute(const onnx::NodeProto& n,
                                          const std::string& name) {
  for (const onnx::AttributeProto& a : n.attribute()) {
    if (a.name() == name) return &a;
  }
  return nullptr;
}

void RemoveAttribute(onnx::NodeProto& n, const std::string& name) {
  auto* attrs = n.mutable_attribute();
  for (int i = 0; i < attrs->size(); ++i) {
    if (attrs->Get(i).name() == name) {
      attrs->DeleteSubrange(i, 1);
      return;
    }
  }
}

void SetInt(onnx::NodeProto& n, const std::string& name, int64_t v) {
  RemoveAttribute(n, name);
  onnx::AttributeProto* a = n.add_attribute();
  a->set_name(name);
  a->set_type(onnx::AttributeProto::INT);
  a->set_i(v);
}

void SetInts(onnx::NodeProto& n, const std::string& name,
             const std::vector<int64_t>& v) {
  RemoveAttribute(n, name);
  onnx::AttributeProto* a = n.add_attribute();
  a->set_name(name);
  a->set_type(onnx::AttributeProto::INTS);
  for (int64_t x : v) a->add_ints(x);
}

int64_t IntOr(const onnx::NodeProto& n, const std::string& name, int64_t d) {
  const onnx::AttributeProto* a = FindAttribute(n, name);
  return a != nullptr ? a->i() : d;
}

std::string StringOr(const onnx::NodeProto& n, const std::string& name,
                     const std::string& d) {
  const onnx::AttributeProto* a = FindAttribute(n, name);
  return a != nullptr ? a->s() : d;
}

std::string NodeLabel(const onnx::NodeProto& n) {
  return absl::StrCat(n.op_type(), " node '",
                      n.name().empty() ? n.output(0) : n.name(), "'");
}

// Names unique in the model: `base` plus a counter.
class NameMaker {
 public:
  explicit NameMaker(const onnx::GraphProto& g) {
    for (const onnx::NodeProto& n : g.node()) {
      used_.insert(n.name());
      used_.insert(n.output().begin(), n.output().end());
    }
    for (const onnx::ValueInfoProto& v : g.input()) used_.insert(v.name());
    for (const onnx::TensorProto& t : g.initializer()) used_.insert(t.name());
  }
  std::string Make(const std::string& base) {
    std::string name = base;
    for (int i = 1; used_.contains(name); ++i)
      name = absl::StrCat(base, "_", i);
    used_.insert(name);
    return name;
  }

 private:
  absl::flat_hash_set<std::string> used_;
};

onnx::NodeProto MakeNode(const std::string& op,
                         const std::vector<std::string>& inputs,
                         const std::string& output, const std::string& name) {
  onnx::NodeProto n;
  n.set_op_type(op);
  n.set_name(name);
  for (const std::string& in : inputs) n.add_input(in);
  n.add_output(output);
  return n;
}

// A scalar f32 initializer named `name`.
void AddScalar(onnx::GraphProto& g, const std::string& name, float v) {
  onnx::TensorProto* t = g.add_initializer();
  t->set_name(name);
  t->set_data_type(onnx::TensorProto::FLOAT);
  t->add_float_data(v);
}

// The int64 values of a constant (initializer or Constant node output).
std::optional<std::vector<int64_t>> ConstantInts(const onnx::GraphProto& g,
                                                 const std::string& name) {
  absl::StatusOr<Tensor> tensor = ConstantTensor(g, name);
  if (!tensor.ok() || tensor->dtype() != DataType::kInt64) return std::nullopt;
  return tensor->ToVector<int64_t>();
}

// ---------------------------------------------------------- old Softmax

}  // namespace

int RewriteOldSoftmax(onnx::ModelProto& model) {
  int64_t opset = 0;
  for (const auto& o : model.opset_import()) {
    if (o.domain().empty() || o.domain() == "ai.onnx") opset = o.version();
  }
  if (opset >= 13) return 0;
  onnx::GraphProto& g = *model.mutable_graph();
  NameMaker names(g);
  google::protobuf::RepeatedPtrField<onnx::NodeProto> rewritten;
  int count = 0;
  for (onnx::NodeProto& node : *g.mutable_node()) {
    const std::string& op = node.op_type();
    const int64_t axis = IntOr(node, "axis", 1);
    if (!IsDefaultDomain(node) || node.input_size() < 1 ||
        node.output_size() < 1 ||
        (op != "Softmax" && op != "LogSoftmax" && op != "Hardmax") ||
        (axis < 0 && opset < 11)) {
      *rewritten.Add() = std::move(node);
      continue;
    }
    const std::string x = node.input(0), y = node.output(0);
    const std::string base = names.Make(absl::StrCat(y, "_quantd_2d"));
    const std::string flat = names.Make(base + "_in");
    const std::string out2d = names.Make(base + "_out");
    const std::string shape = names.Make(base + "_shape");
    onnx::NodeProto flatten = MakeNode("Flatten", {x}, flat, flat);
    SetInt(flatten, "axis", axis);
    onnx::NodeProto op2d = node;
    op2d.set_input(0, flat);
    op2d.set_output(0, out2d);
    SetInt(op2d, "axis", 1);
    *rewritten.Add() = std::move(flatten);
    *rewritten.Add() = std::move(op2d);
    *rewritten.Add() = MakeNode("Shape", {x}, shape, shape);
    *rewritten.Add() = MakeNode("Reshape", {out2d, shape}, y, out2d + "_back");
    // Rank 2, dims unknown: enough for the 12->13 adapter.
    onnx::ValueInfoProto* info = g.add_value_info();
    info->set_name(flat);
    auto* tt = info->mutable_type()->mutable_tensor_type();
    tt->set_elem_type(onnx::TensorProto::FLOAT);
    tt->mutable_shape()->add_dim();
    tt->mutable_shape()->add_dim();
    ++count;
  }
  g.mutable_node()->Swap(&rewritten);
  return count;
}

namespace {

// ---------------------------------------------------------- opset 18+

// What LowerToOpset17 did, by op: "ReduceMean" -> {"axes input ->
// attribute" x12}.
using Notes = std::map<std::string, std::map<std::string, int>>;

const std::set<std::string>& ReduceOpsWithAxesInputFrom18() {
  static const auto* ops = new std::set<std::string>{
      "ReduceL1",   "ReduceL2",  "ReduceLogSum", "ReduceLogSumExp", "ReduceMax",
      "ReduceMean", "ReduceMin", "ReduceProd",   "ReduceSumSquare"};
  return *ops;
}

absl::Status Refuse(const onnx::NodeProto& n, const std::string& why) {
  return absl::UnimplementedError(absl::StrCat(
      NodeLabel(n), ": ", why,
      "; quantd runs opset 17 semantics and cannot express this. Re-export "
      "the model with opset_version=17"));
}

// Drops `name` when it has its default meaning (`is_default`), else refuses.
absl::Status DropIfDefault(onnx::NodeProto& n, const std::string& name,
                           bool is_default, const std::string& why,
                           Notes& notes) {
  if (FindAttribute(n, name) == nullptr) return absl::OkStatus();
  if (!is_default) return Refuse(n, why);
  RemoveAttribute(n, name);
  ++notes[n.op_type()][absl::StrCat("default '", name, "' dropped")];
  return absl::OkStatus();
}

// Reduce ops: axes input (a constant) back to the attribute.
absl::Status LowerReduce(onnx::NodeProto& n, const onnx::GraphProto& g,
                         Notes& notes) {
  const bool noop_if_empty = IntOr(n, "noop_with_empty_axes", 0) != 0;
  RemoveAttribute(n, "noop_with_empty_axes");
  if (n.input_size() < 2 || n.input(1).empty()) {
    if (noop_if_empty) {
      n.set_op_type("Identity");
      n.clear_attribute();
      n.mutable_input()->DeleteSubrange(1, n.input_size() - 1);
      ++notes["Reduce*"]["no axes with noop_with_empty_axes -> Identity"];
    }
    return absl::OkStatus();
  }
  std::optional<std::vector<int64_t>> axes = ConstantInts(g, n.input(1));
  if (!axes.has_value()) {
    return Refuse(n, "its axes are computed at run time, not a constant");
  }
  n.mutable_input()->DeleteSubrange(1, n.input_size() - 1);
  if (axes->empty() && noop_if_empty) {
    n.set_op_type("Identity");
    n.clear_attribute();
  } else if (!axes->empty()) {
    SetInts(n, "axes", *axes);
  }
  ++notes[n.op_type() == "Identity" ? "Reduce*" : n.op_type()]
         ["axes input -> attribute"];
  return absl::OkStatus();
}

// Gelu (opset 20): 0.5 x (1 + erf(x / sqrt 2)), or the tanh form.
absl::Status LowerGelu(const onnx::NodeProto& n, onnx::GraphProto& g,
                       NameMaker& names,
                       google::protobuf::RepeatedPtrField<onnx::NodeProto>& out,
                       Notes& notes) {
  const std::string approximate = StringOr(n, "approximate", "none");
  if (approximate != "none" && approximate != "tanh") {
    return Refuse(n, absl::StrCat("approximate='", approximate, "'"));
  }
  const std::string x = n.input(0), y = n.output(0);
  auto v = [&](const std::string& s) { return names.Make(y + "_gelu_" + s); };
  auto scalar = [&](const std::string& s, float value) {
    const std::string name = v(s);
    AddScalar(g, name, value);
    return name;
  };
  const std::string half = scalar("half", 0.5f), one = scalar("one", 1.f);
  std::string inner;  // erf(x / sqrt2) or tanh(sqrt(2/pi) (x + c x^3))
  if (approximate == "none") {
    const std::string k = scalar("rsqrt2", static_cast<float>(M_SQRT1_2));
    const std::string scaled = v("scaled"), erf = v("erf");
    *out.Add() = MakeNode("Mul", {x, k}, scaled, scaled);
    *out.Add() = MakeNode("Erf", {scaled}, erf, erf);
    inner = erf;
  } else {
    const std::string c = scalar("c", 0.044715f);
    const std::string k =
        scalar("k", static_cast<float>(std::sqrt(2.0 / M_PI)));
    const std::string x2 = v("x2"), x3 = v("x3"), cx3 = v("cx3"),
                      sum = v("sum"), arg = v("arg"), th = v("tanh");
    *out.Add() = MakeNode("Mul", {x, x}, x2, x2);
    *out.Add() = MakeNode("Mul", {x2, x}, x3, x3);
    *out.Add() = MakeNode("Mul", {x3, c}, cx3, cx3);
    *out.Add() = MakeNode("Add", {x, cx3}, sum, sum);
    *out.Add() = MakeNode("Mul", {sum, k}, arg, arg);
    *out.Add() = MakeNode("Tanh", {arg}, th, th);
    inner = th;
  }
  const std::string plus1 = v("plus1"), hx = v("halfx");
  *out.Add() = MakeNode("Add", {inner, one}, plus1, plus1);
  *out.Add() = MakeNode("Mul", {x, half}, hx, hx);
  *out.Add() = MakeNode("Mul", {hx, plus1}, y, n.name().empty() ? y : n.name());
  ++notes["Gelu"][absl::StrCat("decomposed (", approximate, ")")];
  return absl::OkStatus();
}

// RMSNormalization (opset 23): x / sqrt(mean(x^2 over axes) + eps) * scale,
// over the trailing axes from `axis` (default -1).
absl::Status LowerRmsNorm(
    const onnx::NodeProto& n, onnx::GraphProto& g, NameMaker& names,
    google::protobuf::RepeatedPtrField<onnx::NodeProto>& out, Notes& notes) {
  const int64_t axis = IntOr(n, "axis", -1);
  if (axis >= 0) {
    return Refuse(n, "a non-negative axis needs the input's rank");
  }
  if (n.input_size() < 2) return Refuse(n, "it has no scale input");
  std::vector<int64_t> axes;
  for (int64_t a = axis; a < 0; ++a) axes.push_back(a);
  const onnx::AttributeProto* eps_attr = FindAttribute(n, "epsilon");
  const float eps = eps_attr != nullptr ? eps_attr->f() : 1e-5f;
  const std::string x = n.input(0), y = n.output(0);
  auto v = [&](const std::string& s) { return names.Make(y + "_rms_" + s); };
  const std::string sq = v("sq"), mean = v("mean"), eps_name = v("eps"),
                    var = v("var"), rms = v("rms"), normed = v("normed");
  AddScalar(g, eps_name, eps);
  *out.Add() = MakeNode("Mul", {x, x}, sq, sq);
  onnx::NodeProto reduce = MakeNode("ReduceMean", {sq}, mean, mean);
  SetInts(reduce, "axes", axes);
  SetInt(reduce, "keepdims", 1);
  *out.Add() = std::move(reduce);
  *out.Add() = MakeNode("Add", {mean, eps_name}, var, var);
  *out.Add() = MakeNode("Sqrt", {var}, rms, rms);
  *out.Add() = MakeNode("Div", {x, rms}, normed, normed);
  *out.Add() =
      MakeNode("Mul", {normed, n.input(1)}, y, n.name().empty() ? y : n.name());
  ++notes["RMSNormalization"]["decomposed"];
  return absl::OkStatus();
}

// One node in place (attributes of later versions); false when it is not
// lowered in place (Gelu, RMSNormalization: see LowerToOpset17).
absl::Status LowerInPlace(onnx::NodeProto& n, const onnx::GraphProto& g,
                          Notes& notes) {
  const std::string& op = n.op_type();
  if (ReduceOpsWithAxesInputFrom18().contains(op)) {
    return LowerReduce(n, g, notes);
  }
  if (op == "Split") {
    // Without a `split` input, opset 17 splits evenly; the executor reports
    // a size that does not divide (opset 18 would make the last one short).
    return DropIfDefault(
        n, "num_outputs", IntOr(n, "num_outputs", 0) == n.output_size(),
        "num_outputs differs from the number of outputs", notes);
  }
  if (op == "Pad") {
    if (n.input_size() >= 4 && !n.input(3).empty()) {
      return Refuse(n, "its 'axes' input (opset 18) needs the input's rank");
    }
    if (StringOr(n, "mode", "constant") == "wrap") {
      return Refuse(n, "mode 'wrap' (opset 19)");
    }
    return absl::OkStatus();
  }
  if (op == "Resize") {
    if (StringOr(n, "coordinate_transformation_mode", "") ==
        "half_pixel_symmetric") {
      return Refuse(n, "coordinate_transformation_mode half_pixel_symmetric");
    }
    if (FindAttribute(n, "axes") != nullptr) {
      return Refuse(n, "its 'axes' attribute (opset 18)");
    }
    absl::Status s =
        DropIfDefault(n, "antialias", IntOr(n, "antialias", 0) == 0,
                      "antialias=1 (opset 18)", notes);
    if (!s.ok()) return s;
    return DropIfDefault(
        n, "keep_aspect_ratio_policy",
        StringOr(n, "keep_aspect_ratio_policy", "stretch") == "stretch",
        "keep_aspect_ratio_policy other than 'stretch'", notes);
  }
  if (op == "AveragePool") {
    bool ones = true;
    if (const onnx::AttributeProto* a = FindAttribute(n, "dilations")) {
      for (int64_t d : a->ints()) ones = ones && d == 1;
    }
    return DropIfDefault(n, "dilations", ones, "dilations other than 1", notes);
  }
  if (op == "LpPool") {
    return DropIfDefault(n, "ceil_mode", IntOr(n, "ceil_mode", 0) == 0,
                         "ceil_mode=1 (opset 18)", notes);
  }
  if (op == "Cast" || op == "CastLike" || op == "QuantizeLinear" ||
      op == "DequantizeLinear") {
    // saturate only affects the float8 types, which quantd does not load.
    absl::Status s = DropIfDefault(n, "saturate", true, "", notes);
    if (!s.ok()) return s;
    if (op == "Cast" || op == "CastLike") return absl::OkStatus();
    s = DropIfDefault(n, "block_size", IntOr(n, "block_size", 0) == 0,
                      "blocked quantization (opset 21)", notes);
    if (!s.ok()) return s;
    return DropIfDefault(n, "output_dtype", IntOr(n, "output_dtype", 0) == 0,
                         "output_dtype (opset 21)", notes);
  }
  if (op == "ScatterElements" || op == "ScatterND") {
    const std::string r = StringOr(n, "reduction", "none");
    if (r == "max" || r == "min") {
      return Refuse(n, absl::StrCat("reduction '", r, "' (opset 18)"));
    }
  }
  return absl::OkStatus();
}

std::string NotesText(const Notes& notes) {
  std::vector<std::string> parts;
  for (const auto& [op, what] : notes) {
    for (const auto& [change, count] : what) {
      parts.push_back(absl::StrCat(op, " x", count, " (", change, ")"));
    }
  }
  return absl::StrJoin(parts, ", ");
}

}  // namespace

absl::StatusOr<std::string> LowerToOpset17(onnx::ModelProto& model) {
  int64_t opset = 0;
  onnx::OperatorSetIdProto* default_import = nullptr;
  for (onnx::OperatorSetIdProto& o : *model.mutable_opset_import()) {
    if (o.domain().empty() || o.domain() == "ai.onnx") {
      opset = o.version();
      default_import = &o;
    }
  }
  if (opset <= 17 || default_import == nullptr) return std::string();
  if (opset > kMaxLowerableOpset) {
    return absl::UnimplementedError(absl::StrCat(
        "the model uses opset ", opset, "; quantd reads opsets up to ",
        kMaxLowerableOpset, ". Re-export with opset_version=17"));
  }
  onnx::GraphProto& g = *model.mutable_graph();
  NameMaker names(g);
  Notes notes;
  google::protobuf::RepeatedPtrField<onnx::NodeProto> lowered;
  // A copy: the lowering reads constants (axes) from g's nodes as it goes.
  const google::protobuf::RepeatedPtrField<onnx::NodeProto> nodes = g.node();
  for (onnx::NodeProto node : nodes) {
    if (!IsDefaultDomain(node) || node.output_size() < 1) {
      *lowered.Add() = std::move(node);
      continue;
    }
    absl::Status s;
    if (node.op_type() == "Gelu" && node.input_size() >= 1) {
      s = LowerGelu(node, g, names, lowered, notes);
    } else if (node.op_type() == "RMSNormalization" && node.input_size() >= 1) {
      s = LowerRmsNorm(node, g, names, lowered, notes);
    } else {
      s = LowerInPlace(node, g, notes);
      if (s.ok()) *lowered.Add() = std::move(node);
    }
    if (!s.ok()) return s;
  }
  g.mutable_node()->Swap(&lowered);
  default_import->set_version(17);
  // ONNX 1.12's checker reads IR versions up to 8; later ones added only
  // element types (float8, int4, float4) that quantd refuses when it meets
  // them in a tensor.
  if (model.ir_version() > onnx::IR_VERSION) {
    model.set_ir_version(onnx::IR_VERSION);
  }
  const std::string done = NotesText(notes);
  return absl::StrCat("lowered opset ", opset, " to 17",
                      done.empty() ? " (no op needed rewriting)" : ": ", done);
}

}  // namespace quantd
