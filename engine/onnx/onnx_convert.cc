#include "engine/onnx/onnx_convert.h"

#include <cmath>
#include <cstring>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "onnx/defs/schema.h"
#include "util/status_macros.h"

namespace quantd {

namespace {

// A NaN weight poisons every output; +-Inf is allowed (attention masks).
absl::Status NaNError(absl::string_view what, int64_t index) {
  return absl::InvalidArgumentError(
      absl::StrCat(what, " contains NaN (first at flat index ", index,
                   "); fix or retrain the model before quantizing it"));
}

// IEEE half precision: an all-ones exponent and a non-zero mantissa.
bool IsHalfNaN(uint16_t bits) {
  return (bits & 0x7C00) == 0x7C00 && (bits & 0x03FF) != 0;
}

const char* OnnxTypeName(int32_t t) {
  return onnx::TensorProto_DataType_IsValid(t)
             ? onnx::TensorProto_DataType_Name(
                   static_cast<onnx::TensorProto_DataType>(t))
                   .c_str()
             : "invalid";
}

// Copies a typed repeated field into tensor storage; the count was checked.
template <typename Dst, typename Field>
void CopyTyped(const Field& field, Tensor& t) {
  Dst* out = t.mutable_data<Dst>();
  for (int i = 0; i < field.size(); ++i) out[i] = static_cast<Dst>(field[i]);
}

}  // namespace

absl::StatusOr<Tensor> TensorFromProto(const onnx::TensorProto& proto,
                                       const ModelLimits& limits,
                                       const std::string& what) {
  if (proto.data_location() == onnx::TensorProto::EXTERNAL) {
    return absl::InvalidArgumentError(absl::StrCat(
        what, " keeps its data in an external file that was not loaded"));
  }
  QUANTD_RETURN_IF_ERROR(ValidateTensorProto(proto, limits, what));
  // Validated above: the type is supported, the size within limits and the
  // stored length matches the shape.
  const DataType type = DataTypeFromOnnx(proto.data_type());
  Tensor t(type, Shape(proto.dims().begin(), proto.dims().end()));
  if (proto.has_raw_data()) {
    std::memcpy(t.mutable_raw_data(), proto.raw_data().data(), t.byte_size());
    return t;
  }
  switch (type) {
    case DataType::kFloat32:
      CopyTyped<float>(proto.float_data(), t);
      break;
    case DataType::kInt64:
      CopyTyped<int64_t>(proto.int64_data(), t);
      break;
    case DataType::kInt32:
      CopyTyped<int32_t>(proto.int32_data(), t);
      break;
    case DataType::kInt8:
      CopyTyped<int8_t>(proto.int32_data(), t);
      break;
    case DataType::kUInt8:
    case DataType::kBool:
      CopyTyped<uint8_t>(proto.int32_data(), t);
      break;
    case DataType::kFloat16:
      CopyTyped<uint16_t>(proto.int32_data(), t);
      break;
    case DataType::kUndefined:
      break;
  }
  return t;
}

absl::Status ValidateTensorProto(const onnx::TensorProto& proto,
                                 const ModelLimits& limits,
                                 const std::string& what) {
  DataType type = DataTypeFromOnnx(proto.data_type());
  if (type == DataType::kUndefined) {
    return absl::UnimplementedError(absl::StrCat(
        what, " has element type ", OnnxTypeName(proto.data_type()),
        ", which quantd does not support (supported: float, "
        "float16, int8, uint8, int32, int64, bool)"));
  }
  if (proto.dims_size() > limits.max_rank) {
    return absl::InvalidArgumentError(
        absl::StrCat(what, " has ", proto.dims_size(), " dims; at most ",
                     limits.max_rank, " are supported"));
  }
  Shape shape(proto.dims().begin(), proto.dims().end());
  absl::StatusOr<int64_t> n = CheckedNumElements(shape);
  if (!n.ok())
    return absl::InvalidArgumentError(
        absl::StrCat(what, ": ", n.status().message()));
  if (*n > limits.max_tensor_elements) {
    return absl::ResourceExhaustedError(absl::StrCat(
        what, " of shape ", ShapeToString(shape), " has ", *n,
        " elements, more than the limit of ", limits.max_tensor_elements));
  }
  if (proto.data_location() == onnx::TensorProto::EXTERNAL)
    return absl::OkStatus();
  int64_t stored;
  if (proto.has_raw_data()) {
    stored = static_cast<int64_t>(proto.raw_data().size());
    if (stored != *n * static_cast<int64_t>(DataTypeSize(type))) {
      return absl::InvalidArgumentError(
          absl::StrCat(what, " of shape ", ShapeToString(shape), " needs ",
                       *n * DataTypeSize(type), " bytes of raw data but has ",
                       stored, " (truncated or corrupt file?)"));
    }
    const char* p = proto.raw_data().data();
    for (int64_t i = 0; type == DataType::kFloat32 && i < *n; ++i) {
      float v;
      std::memcpy(&v, p + 4 * i, 4);
      if (std::isnan(v)) return NaNError(what, i);
    }
    for (int64_t i = 0; type == DataType::kFloat16 && i < *n; ++i) {
      uint16_t bits;
      std::memcpy(&bits, p + 2 * i, 2);
      if (IsHalfNaN(bits)) return NaNError(what, i);
    }
    return absl::OkStatus();
  }
  switch (type) {
    case DataType::kFloat32:
      stored = proto.float_data_size();
      for (int i = 0; i < proto.float_data_size(); ++i) {
        if (std::isnan(proto.float_data(i))) return NaNError(what, i);
      }
      break;
    case DataType::kFloat16:
      // float16 values travel as their bit patterns in int32_data.
      stored = proto.int32_data_size();
      for (int i = 0; i < proto.int32_data_size(); ++i) {
        if (IsHalfNaN(static_cast<uint16_t>(proto.int32_data(i)))) {
          return NaNError(what, i);
        }
      }
      break;
    case DataType::kInt64:
      stored = proto.int64_data_size();
      break;
    default:
      stored = proto.int32_data_size();
      break;
  }
  if (stored != *n) {
    return absl::InvalidArgumentError(
        absl::StrCat(what, " declares ", *n, " elements but stores ", stored));
  }
  return absl::OkStatus();
}

onnx::TensorProto TensorToProto(const Tensor& tensor, const std::string& name) {
  onnx::TensorProto proto;
  proto.set_name(name);
  proto.set_data_type(DataTypeToOnnx(tensor.dtype()));
  for (int64_t d : tensor.shape()) proto.add_dims(d);
  proto.set_raw_data(tensor.raw_data(), tensor.byte_size());
  return proto;
}

ValueInfo ValueInfoFromProto(const onnx::ValueInfoProto& proto) {
  ValueInfo info;
  info.name = proto.name();
  if (!proto.type().has_tensor_type()) return info;
  const auto& tt = proto.type().tensor_type();
  info.dtype = DataTypeFromOnnx(tt.elem_type());
  if (tt.has_shape()) {
    info.has_shape = true;
    for (const auto& dim : tt.shape().dim()) {
      info.shape.push_back(dim.has_dim_value() ? dim.dim_value() : -1);
      info.dim_names.push_back(dim.has_dim_param() ? dim.dim_param() : "");
    }
  }
  return info;
}

onnx::ValueInfoProto ValueInfoToProto(const ValueInfo& info) {
  onnx::ValueInfoProto proto;
  proto.set_name(info.name);
  auto* tt = proto.mutable_type()->mutable_tensor_type();
  tt->set_elem_type(DataTypeToOnnx(info.dtype));
  if (info.has_shape) {
    auto* shape = tt->mutable_shape();
    for (size_t i = 0; i < info.shape.size(); ++i) {
      auto* dim = shape->add_dim();
      if (info.shape[i] >= 0) {
        dim->set_dim_value(info.shape[i]);
      } else if (i < info.dim_names.size() && !info.dim_names[i].empty()) {
        dim->set_dim_param(info.dim_names[i]);
      }
    }
  }
  return proto;
}

namespace {

absl::StatusOr<Attribute> AttributeFromProto(const onnx::AttributeProto& a,
                                             const ModelLimits& limits,
                                             const std::string& what) {
  Attribute out;
  switch (a.type()) {
    case onnx::AttributeProto::FLOAT:
      out.type = Attribute::Type::kFloat;
      out.f = a.f();
      break;
    case onnx::AttributeProto::INT:
      out.type = Attribute::Type::kInt;
      out.i = a.i();
      break;
    case onnx::AttributeProto::STRING:
      out.type = Attribute::Type::kString;
      out.s = a.s();
      break;
    case onnx::AttributeProto::TENSOR: {
      out.type = Attribute::Type::kTensor;
      absl::StatusOr<Tensor> t = TensorFromProto(a.t(), limits, what);
      if (!t.ok()) return t.status();
      out.t = std::move(*t);
      break;
    }
    case onnx::AttributeProto::FLOATS:
      out.type = Attribute::Type::kFloats;
      out.floats.assign(a.floats().begin(), a.floats().end());
      break;
    case onnx::AttributeProto::INTS:
      out.type = Attribute::Type::kInts;
      out.ints.assign(a.ints().begin(), a.ints().end());
      break;
    case onnx::AttributeProto::STRINGS:
      out.type = Attribute::Type::kStrings;
      out.strings.assign(a.strings().begin(), a.strings().end());
      break;
    default:
      return absl::UnimplementedError(
          absl::StrCat(what, " has an attribute type (",
                       onnx::AttributeProto_AttributeType_Name(a.type()),
                       ") that quantd does not support"));
  }
  return out;
}

// Fills attributes the node omits from the op schema's declared defaults.
void FillSchemaDefaults(Node& node, int64_t opset) {
  const onnx::OpSchema* schema = onnx::OpSchemaRegistry::Schema(
      node.op_type, static_cast<int>(opset), node.domain);
  if (schema == nullptr) return;
  for (const auto& [name, attr] : schema->attributes()) {
    if (node.attributes.Has(name) || !attr.default_value.has_name()) continue;
    ModelLimits unlimited;
    absl::StatusOr<Attribute> a =
        AttributeFromProto(attr.default_value, unlimited, name);
    if (a.ok()) node.attributes.Set(name, std::move(*a));
  }
}

}  // namespace

namespace {

// The version of the default ("" or "ai.onnx") domain the model imports.
absl::StatusOr<int64_t> DefaultOpset(const onnx::ModelProto& model) {
  int64_t version = 0;
  for (const auto& opset : model.opset_import()) {
    if (opset.domain().empty() || opset.domain() == "ai.onnx") {
      version = opset.version();
    }
  }
  if (version == 0) {
    return absl::InvalidArgumentError(
        "the model does not import the default ONNX opset (opset_import has "
        "no entry for domain \"\")");
  }
  return version;
}

}  // namespace

namespace {

// Both GraphFromModelProto overloads; `release` (may be null) is the model
// itself when its initializers' data may be freed as they are converted.
absl::StatusOr<Graph> GraphFromModelProtoReleasing(
    const onnx::ModelProto& model, const ModelLimits& limits,
    onnx::ModelProto* release) {
  Graph graph;
  QUANTD_ASSIGN_OR_RETURN(graph.opset, DefaultOpset(model));
  const onnx::GraphProto& g = model.graph();
  graph.name = g.name();
  if (g.node_size() > limits.max_nodes) {
    return absl::InvalidArgumentError(
        absl::StrCat("the model has ", g.node_size(), " nodes; the limit is ",
                     limits.max_nodes));
  }
  int64_t constant_bytes = 0;
  for (int i = 0; i < g.initializer_size(); ++i) {
    const onnx::TensorProto& init = g.initializer(i);
    QUANTD_ASSIGN_OR_RETURN(
        Tensor t,
        TensorFromProto(init, limits,
                        absl::StrCat("initializer '", init.name(), "'")));
    constant_bytes += t.byte_size();
    if (constant_bytes > limits.max_total_constant_bytes) {
      return absl::ResourceExhaustedError(
          absl::StrCat("the model's initializers exceed the limit of ",
                       limits.max_total_constant_bytes, " bytes"));
    }
    const std::string name = init.name();
    graph.initializers[name] = std::move(t);
    if (release != nullptr) {
      // Swapping with an empty message frees the data (clear_raw_data()
      // would keep the string's capacity).
      onnx::TensorProto().Swap(
          release->mutable_graph()->mutable_initializer(i));
    }
  }
  for (const onnx::ValueInfoProto& in : g.input()) {
    // Before IR version 4, initializers were also listed as inputs.
    if (graph.initializers.contains(in.name())) continue;
    ValueInfo info = ValueInfoFromProto(in);
    if (info.dtype == DataType::kUndefined) {
      return absl::UnimplementedError(
          absl::StrCat("graph input '", in.name(),
                       "' has an element type quantd does not support"));
    }
    graph.inputs.push_back(std::move(info));
  }
  for (const onnx::ValueInfoProto& out : g.output()) {
    graph.outputs.push_back(ValueInfoFromProto(out));
  }
  for (const onnx::ValueInfoProto& vi : g.value_info()) {
    graph.value_info[vi.name()] = ValueInfoFromProto(vi);
  }
  int index = 0;
  for (const onnx::NodeProto& n : g.node()) {
    Node node;
    node.name =
        n.name().empty() ? absl::StrCat(n.op_type(), "_", index) : n.name();
    ++index;
    node.op_type = n.op_type();
    node.domain = n.domain() == "ai.onnx" ? "" : n.domain();
    node.inputs.assign(n.input().begin(), n.input().end());
    node.outputs.assign(n.output().begin(), n.output().end());
    for (const onnx::AttributeProto& a : n.attribute()) {
      QUANTD_ASSIGN_OR_RETURN(
          Attribute attr,
          AttributeFromProto(a, limits,
                             absl::StrCat("attribute '", a.name(),
                                          "' of node '", node.name, "'")));
      if (attr.type == Attribute::Type::kTensor) {
        constant_bytes += attr.t.byte_size();
        if (constant_bytes > limits.max_total_constant_bytes) {
          return absl::ResourceExhaustedError(
              absl::StrCat("the model's constants exceed the limit of ",
                           limits.max_total_constant_bytes, " bytes"));
        }
      }
      node.attributes.Set(a.name(), std::move(attr));
    }
    if (node.domain.empty()) FillSchemaDefaults(node, graph.opset);
    graph.nodes.push_back(std::move(node));
  }
  return graph;
}

}  // namespace

absl::StatusOr<Graph> GraphFromModelProto(onnx::ModelProto&& model,
                                          const ModelLimits& limits) {
  return GraphFromModelProtoReleasing(model, limits, &model);
}

absl::StatusOr<Graph> GraphFromModelProto(const onnx::ModelProto& model,
                                          const ModelLimits& limits) {
  return GraphFromModelProtoReleasing(model, limits, nullptr);
}

absl::StatusOr<Tensor> ConstantTensor(const onnx::GraphProto& graph,
                                      const std::string& name) {
  const onnx::TensorProto* t = nullptr;
  for (const onnx::TensorProto& init : graph.initializer()) {
    if (init.name() == name) t = &init;
  }
  for (const onnx::NodeProto& n : graph.node()) {
    if (n.op_type() != "Constant" || n.output_size() != 1 ||
        n.output(0) != name) {
      continue;
    }
    for (const onnx::AttributeProto& a : n.attribute()) {
      if (a.name() == "value") t = &a.t();
      if (a.name() == "value_ints") {
        return Tensor::FromVector<int64_t>(
            {a.ints_size()},
            std::vector<int64_t>(a.ints().begin(), a.ints().end()));
      }
    }
  }
  if (t == nullptr) {
    return absl::NotFoundError(absl::StrCat("'", name, "' is not a constant"));
  }
  return TensorFromProto(*t, ModelLimits(), name);
}

namespace {
void AttributeToProto(const std::string& name, const Attribute& a,
                      onnx::AttributeProto* p) {
  p->set_name(name);
  switch (a.type) {
    case Attribute::Type::kFloat:
      p->set_type(onnx::AttributeProto::FLOAT);
      p->set_f(a.f);
      break;
    case Attribute::Type::kInt:
      p->set_type(onnx::AttributeProto::INT);
      p->set_i(a.i);
      break;
    case Attribute::Type::kString:
      p->set_type(onnx::AttributeProto::STRING);
      p->set_s(a.s);
      break;
    case Attribute::Type::kTensor:
      p->set_type(onnx::AttributeProto::TENSOR);
      *p->mutable_t() = TensorToProto(a.t, "");
      break;
    case Attribute::Type::kFloats:
      p->set_type(onnx::AttributeProto::FLOATS);
      for (float f : a.floats) p->add_floats(f);
      break;
    case Attribute::Type::kInts:
      p->set_type(onnx::AttributeProto::INTS);
      for (int64_t i : a.ints) p->add_ints(i);
      break;
    case Attribute::Type::kStrings:
      p->set_type(onnx::AttributeProto::STRINGS);
      for (const std::string& s : a.strings) p->add_strings(s);
      break;
  }
}
}  // namespace

onnx::ModelProto GraphToModelProto(const Graph& graph, int64_t ir_version,
                                   const std::string& producer) {
  onnx::ModelProto model;
  model.set_ir_version(ir_version);
  model.set_producer_name(producer);
  auto* opset = model.add_opset_import();
  opset->set_domain("");
  opset->set_version(graph.opset);
  onnx::GraphProto* g = model.mutable_graph();
  g->set_name(graph.name.empty() ? "quantd" : graph.name);
  for (const ValueInfo& in : graph.inputs)
    *g->add_input() = ValueInfoToProto(in);
  for (const ValueInfo& out : graph.outputs) {
    *g->add_output() = ValueInfoToProto(out);
  }
  // Deterministic initializer order: sorted by name.
  std::map<std::string, const Tensor*> sorted;
  for (const auto& [name, t] : graph.initializers) sorted[name] = &t;
  for (const auto& [name, t] : sorted) {
    *g->add_initializer() = TensorToProto(*t, name);
  }
  for (const Node& node : graph.nodes) {
    onnx::NodeProto* n = g->add_node();
    n->set_name(node.name);
    n->set_op_type(node.op_type);
    if (!node.domain.empty()) n->set_domain(node.domain);
    for (const std::string& in : node.inputs) n->add_input(in);
    for (const std::string& out : node.outputs) n->add_output(out);
    for (const auto& [name, a] : node.attributes.all()) {
      AttributeToProto(name, a, n->add_attribute());
    }
  }
  return model;
}

}  // namespace quantd
