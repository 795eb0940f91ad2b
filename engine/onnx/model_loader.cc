#include "engine/onnx/model_loader.h"

#include <sys/stat.h>

#include <climits>
#include <cstdlib>
#include <fstream>

#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/status/status.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "engine/onnx/opset_adapters.h"
#include "google/protobuf/io/coded_stream.h"
#include "google/protobuf/io/zero_copy_stream_impl.h"
#include "google/protobuf/io/zero_copy_stream_impl_lite.h"
#include "onnx/checker.h"
#include "onnx/shape_inference/implementation.h"
#include "onnx/version_converter/convert.h"
#include "util/status_macros.h"

namespace quantd {

absl::StatusOr<std::string> ReadFileBounded(const std::string& path,
                                            int64_t max_bytes) {
  struct stat st;
  if (stat(path.c_str(), &st) != 0) {
    return absl::NotFoundError(absl::StrCat("cannot open '", path, "'"));
  }
  if (!S_ISREG(st.st_mode)) {
    return absl::InvalidArgumentError(
        absl::StrCat("'", path, "' is not a regular file"));
  }
  if (st.st_size > max_bytes) {
    return absl::ResourceExhaustedError(
        absl::StrCat("'", path, "' is ", st.st_size,
                     " bytes, more than the limit of ", max_bytes));
  }
  std::ifstream in(path, std::ios::binary);
  if (!in) return absl::NotFoundError(absl::StrCat("cannot open '", path, "'"));
  std::string bytes(static_cast<size_t>(st.st_size), '\0');
  in.read(bytes.data(), st.st_size);
  if (in.gcount() != st.st_size) {
    return absl::DataLossError(absl::StrCat("short read of '", path, "'"));
  }
  return bytes;
}

namespace {

absl::StatusOr<std::string> RealPath(const std::string& path) {
  char buf[PATH_MAX];
  if (realpath(path.c_str(), buf) == nullptr) {
    return absl::NotFoundError(absl::StrCat("cannot resolve '", path, "'"));
  }
  return std::string(buf);
}

// Reads one initializer's external data into raw_data, refusing any location
// that would leave `base_dir`.
absl::Status InlineExternalData(onnx::TensorProto& tensor,
                                const std::string& base_dir,
                                const ModelLimits& limits) {
  std::string location;
  int64_t offset = 0, length = -1;
  for (const auto& entry : tensor.external_data()) {
    if (entry.key() == "location") {
      location = entry.value();
    } else if (entry.key() == "offset") {
      if (!absl::SimpleAtoi(entry.value(), &offset) || offset < 0) {
        return absl::InvalidArgumentError(absl::StrCat(
            "initializer '", tensor.name(), "' has a bad external offset"));
      }
    } else if (entry.key() == "length") {
      if (!absl::SimpleAtoi(entry.value(), &length) || length < 0) {
        return absl::InvalidArgumentError(absl::StrCat(
            "initializer '", tensor.name(), "' has a bad external length"));
      }
    }
  }
  const std::string what = absl::StrCat("initializer '", tensor.name(),
                                        "' external data '", location, "'");
  if (location.empty() || location[0] == '/' ||
      location.find('\0') != std::string::npos) {
    return absl::InvalidArgumentError(
        absl::StrCat(what, ": the location must be a relative file name"));
  }
  for (absl::string_view part : absl::StrSplit(location, '/')) {
    if (part == "..") {
      return absl::PermissionDeniedError(absl::StrCat(
          what, ": the location leaves the model's folder ('..')"));
    }
  }
  QUANTD_ASSIGN_OR_RETURN(std::string base, RealPath(base_dir));
  absl::StatusOr<std::string> resolved =
      RealPath(absl::StrCat(base, "/", location));
  if (!resolved.ok()) {
    return absl::NotFoundError(absl::StrCat(what, ": file not found"));
  }
  if (!absl::StartsWith(*resolved, absl::StrCat(base, "/"))) {
    return absl::PermissionDeniedError(absl::StrCat(
        what, ": the location resolves outside the model's folder"));
  }
  struct stat st;
  if (stat(resolved->c_str(), &st) != 0 || !S_ISREG(st.st_mode)) {
    return absl::InvalidArgumentError(
        absl::StrCat(what, ": not a regular file"));
  }
  if (length < 0) length = st.st_size - offset;
  if (offset > st.st_size || length > st.st_size - offset) {
    return absl::InvalidArgumentError(
        absl::StrCat(what, ": offset ", offset, " + length ", length,
                     " exceeds the file size ", st.st_size));
  }
  if (length > limits.max_total_constant_bytes) {
    return absl::ResourceExhaustedError(
        absl::StrCat(what, ": ", length, " bytes exceeds the limit"));
  }
  std::ifstream in(*resolved, std::ios::binary);
  in.seekg(offset);
  std::string data(static_cast<size_t>(length), '\0');
  in.read(data.data(), length);
  if (in.gcount() != length) {
    return absl::DataLossError(absl::StrCat(what, ": short read"));
  }
  tensor.set_raw_data(std::move(data));
  tensor.clear_external_data();
  tensor.set_data_location(onnx::TensorProto::DEFAULT);
  return absl::OkStatus();
}

// Sets (or adds) a string attribute on a node proto.
void SetStringAttribute(onnx::NodeProto& node, const std::string& name,
                        const std::string& value) {
  for (onnx::AttributeProto& a : *node.mutable_attribute()) {
    if (a.name() == name) {
      a.set_type(onnx::AttributeProto::STRING);
      a.set_s(value);
      return;
    }
  }
  onnx::AttributeProto* a = node.add_attribute();
  a->set_name(name);
  a->set_type(onnx::AttributeProto::STRING);
  a->set_s(value);
}

// The constant float values of `name`, if an initializer or Constant node
// holds them.
std::vector<float> ConstantFloats(const onnx::GraphProto& g,
                                  const std::string& name) {
  absl::StatusOr<Tensor> tensor = ConstantTensor(g, name);
  if (!tensor.ok() || tensor->dtype() != DataType::kFloat32) return {};
  return tensor->ToVector<float>();
}

// Before opset 11, Resize (and Upsample) sampled with asymmetric coordinates
// and rounded nearest neighbours down when enlarging (up when shrinking).
// ONNX 1.12's version converter lifts them to Resize-11+ without saying so,
// which silently means half_pixel. Restore the old sampling explicitly.
void FixConvertedResize(onnx::ModelProto& model) {
  onnx::GraphProto* g = model.mutable_graph();
  for (onnx::NodeProto& node : *g->mutable_node()) {
    if (node.op_type() != "Resize") continue;
    SetStringAttribute(node, "coordinate_transformation_mode", "asymmetric");
    const std::string scales_name =
        node.input_size() >= 3 ? node.input(2)
                               : (node.input_size() == 2 ? node.input(1) : "");
    std::vector<float> scales = ConstantFloats(*g, scales_name);
    bool shrinks = !scales.empty();
    for (float f : scales) shrinks = shrinks && f <= 1.f;
    SetStringAttribute(node, "nearest_mode", shrinks ? "ceil" : "floor");
  }
}

// ONNX 1.12's Conv and ConvTranspose shape inference indexes the weight's
// dims by the input's rank and dereferences null when the weight has fewer
// (found by fuzz_model_loader); shape inference cannot be skipped for them,
// so such a model is refused first. Ranks are the declared ones (graph
// inputs, initializers, value_info); unknown ranks are left to the executor.
absl::Status CheckConvRanks(const onnx::GraphProto& g) {
  absl::flat_hash_map<std::string, int> rank;
  auto add_info = [&](const onnx::ValueInfoProto& v) {
    if (v.type().tensor_type().has_shape()) {
      rank[v.name()] = v.type().tensor_type().shape().dim_size();
    }
  };
  for (const onnx::ValueInfoProto& v : g.input()) add_info(v);
  for (const onnx::ValueInfoProto& v : g.value_info()) add_info(v);
  for (const onnx::TensorProto& t : g.initializer()) {
    rank[t.name()] = t.dims_size();
  }
  for (const onnx::NodeProto& n : g.node()) {
    // ONNX 1.12's LayerNormalization inference indexes the input's dims by
    // `axis` unchecked (null read on a rank-0 input; found by the fuzzer).
    if (n.op_type() == "LayerNormalization" && n.input_size() >= 1) {
      auto x = rank.find(n.input(0));
      int64_t axis = -1;
      for (const onnx::AttributeProto& a : n.attribute()) {
        if (a.name() == "axis") axis = a.i();
      }
      if (x != rank.end() && (axis < -x->second || axis >= x->second)) {
        return absl::InvalidArgumentError(absl::StrCat(
            "LayerNormalization node '", n.name(), "': axis ", axis,
            " is outside input '", n.input(0), "' of rank ", x->second));
      }
    }
    if ((n.op_type() != "Conv" && n.op_type() != "ConvTranspose") ||
        n.input_size() < 2) {
      continue;
    }
    auto x = rank.find(n.input(0));
    auto w = rank.find(n.input(1));
    if (x != rank.end() && w != rank.end() && x->second != w->second) {
      return absl::InvalidArgumentError(absl::StrCat(
          n.op_type(), " node '", n.name(), "': weight '", n.input(1),
          "' has rank ", w->second, " but input '", n.input(0), "' has rank ",
          x->second, "; they must be equal"));
    }
  }
  return absl::OkStatus();
}

// ONNX 1.12's shape inference for Conv and pooling divides by `strides`
// (and multiplies by `dilations`) without checking them: a stride of 0 is
// an integer division by zero that kills the process (found by
// fuzz_model_loader). Every such window attribute must be >= 1, in the main
// graph and in every subgraph (shape inference recurses into them).
absl::Status CheckWindowAttributes(const onnx::GraphProto& g) {
  static const absl::flat_hash_set<std::string> kWindowOps = {
      "Conv",    "ConvTranspose", "ConvInteger", "QLinearConv",
      "MaxPool", "AveragePool",   "LpPool",      "MaxUnpool"};
  for (const onnx::NodeProto& n : g.node()) {
    for (const onnx::AttributeProto& a : n.attribute()) {
      if (a.has_g()) QUANTD_RETURN_IF_ERROR(CheckWindowAttributes(a.g()));
      for (const onnx::GraphProto& sub : a.graphs()) {
        QUANTD_RETURN_IF_ERROR(CheckWindowAttributes(sub));
      }
      if (!kWindowOps.contains(n.op_type()) ||
          (a.name() != "strides" && a.name() != "dilations" &&
           a.name() != "kernel_shape")) {
        continue;
      }
      for (int64_t v : a.ints()) {
        if (v < 1) {
          return absl::InvalidArgumentError(
              absl::StrCat(n.op_type(), " node '", n.name(), "': ", a.name(),
                           " has ", v, "; every value must be >= 1"));
        }
      }
    }
  }
  return absl::OkStatus();
}

// Registry keys (OpKey's form) of every node, subgraphs included.
void CollectOpKeys(const onnx::GraphProto& g, std::vector<std::string>* keys) {
  for (const onnx::NodeProto& n : g.node()) {
    keys->push_back(n.domain().empty() || n.domain() == "ai.onnx"
                        ? n.op_type()
                        : absl::StrCat(n.domain(), ".", n.op_type()));
    for (const onnx::AttributeProto& a : n.attribute()) {
      if (a.has_g()) CollectOpKeys(a.g(), keys);
      for (const onnx::GraphProto& sub : a.graphs()) CollectOpKeys(sub, keys);
    }
  }
}

// Ops quantd cannot run are refused before ONNX's version converter and
// shape inference see them: those run one C++ function per op type, written
// for well-formed models, and the fuzzer keeps finding crashes in the ones
// for ops quantd never runs (STFT: a read through a wild pointer). Ops the
// version converter rewrites into supported ones pass.
absl::Status CheckOpsBeforeInference(const onnx::ModelProto& model,
                                     const LoadOptions& options,
                                     int64_t source_opset) {
  if (!options.check_ops) return absl::OkStatus();
  std::vector<std::string> keys;
  CollectOpKeys(model.graph(), &keys);
  if (options.convert_opset && source_opset < kTargetOpset) {
    std::erase_if(keys, [](const std::string& k) {
      return k == "Upsample" || k == "Scatter";
    });
  }
  return CheckOpKeysSupported(keys, options.registry != nullptr
                                        ? *options.registry
                                        : DefaultOpRegistry());
}

// ONNX's checker, plus what ONNX's own IR import (the version converter's
// first step) assumes without checking: every graph output is a graph input,
// an initializer or a node's output. ONNX 1.12 dereferences a null value
// otherwise (found by fuzz_model_loader).
absl::Status CheckModel(const onnx::ModelProto& model) {
  try {
    onnx::checker::check_model(model);
  } catch (const std::exception& e) {
    return absl::InvalidArgumentError(
        absl::StrCat("the ONNX checker rejected the model: ", e.what()));
  }
  const onnx::GraphProto& g = model.graph();
  absl::flat_hash_set<std::string> defined;
  for (const onnx::ValueInfoProto& in : g.input()) defined.insert(in.name());
  for (const onnx::TensorProto& t : g.initializer()) defined.insert(t.name());
  for (const onnx::NodeProto& n : g.node()) {
    defined.insert(n.output().begin(), n.output().end());
  }
  for (const onnx::ValueInfoProto& out : g.output()) {
    if (!defined.contains(out.name())) {
      return absl::InvalidArgumentError(absl::StrCat(
          "graph output '", out.name(),
          "' is not produced by any node and is neither a graph input nor "
          "an initializer; the model is corrupt or was edited by hand"));
    }
  }
  QUANTD_RETURN_IF_ERROR(CheckWindowAttributes(g));
  return CheckConvRanks(g);
}

// Lifts an opset 7..16 model to kTargetOpset with ONNX's version converter.
// Its Softmax 12->13 adapter throws on inputs of unknown rank; then the
// Softmax-family nodes are rewritten (RewriteOldSoftmax) and the conversion
// tried once more. A model that still cannot be lifted is refused here, not
// at the end of a job: the QDQ export needs opset >= 13.
absl::Status ConvertUp(onnx::ModelProto& model, LoadedModel& loaded) {
  std::string first_error;
  for (int attempt = 0; attempt < 2; ++attempt) {
    onnx::ModelProto candidate = model;
    int rewritten = 0;
    if (attempt == 1) {
      rewritten = RewriteOldSoftmax(candidate);
      if (rewritten == 0) break;
    }
    try {
      candidate = onnx::version_conversion::ConvertVersion(
          candidate, static_cast<int>(kTargetOpset));
    } catch (const std::exception& e) {
      if (attempt == 0) first_error = e.what();
      continue;
    }
    if (loaded.source_opset < 11) FixConvertedResize(candidate);
    model = std::move(candidate);
    if (rewritten > 0) {
      loaded.conversion_note = absl::StrCat(
          "lifted opset ", loaded.source_opset, " to ", kTargetOpset,
          "; ONNX's converter needs the input rank of Softmax-family ops (",
          first_error, "), so quantd rewrote ", rewritten,
          " of them as Flatten -> op -> Reshape, their opset-",
          loaded.source_opset, " meaning");
    }
    return absl::OkStatus();
  }
  return absl::InvalidArgumentError(absl::StrCat(
      "ONNX's version converter cannot lift this opset-", loaded.source_opset,
      " model to opset ", kTargetOpset, " (", first_error,
      "), which quantd needs to run and export it; re-export the model with "
      "opset_version between 13 and ",
      kTargetOpset));
}

absl::StatusOr<LoadedModel> LoadParsed(onnx::ModelProto model,
                                       const std::string* base_dir,
                                       const LoadOptions& options) {
  if (!model.has_graph()) {
    return absl::InvalidArgumentError("the ONNX model has no graph");
  }
  int64_t external_data_bytes = 0;
  for (onnx::TensorProto& t : *model.mutable_graph()->mutable_initializer()) {
    if (t.data_location() != onnx::TensorProto::EXTERNAL) continue;
    if (base_dir == nullptr) {
      return absl::InvalidArgumentError(absl::StrCat(
          "initializer '", t.name(),
          "' keeps its data in an external file; models uploaded as bytes "
          "must be self-contained (save with save_as_external_data=False)"));
    }
    QUANTD_RETURN_IF_ERROR(InlineExternalData(t, *base_dir, options.limits));
    external_data_bytes += static_cast<int64_t>(t.raw_data().size());
  }
  LoadedModel loaded;
  loaded.external_data_bytes = external_data_bytes;
  loaded.ir_version = model.ir_version();
  loaded.producer =
      absl::StrCat(model.producer_name(), " ", model.producer_version());
  for (const auto& opset : model.opset_import()) {
    if (opset.domain().empty() || opset.domain() == "ai.onnx") {
      loaded.source_opset = opset.version();
    }
  }
  if (loaded.source_opset < kMinSupportedOpset) {
    return absl::UnimplementedError(
        absl::StrCat("the model uses opset ", loaded.source_opset,
                     "; quantd supports opsets ", kMinSupportedOpset, " to ",
                     kMaxLowerableOpset, ". Re-export it with a newer opset."));
  }
  for (const onnx::TensorProto& t : model.graph().initializer()) {
    QUANTD_RETURN_IF_ERROR(ValidateTensorProto(
        t, options.limits, absl::StrCat("initializer '", t.name(), "'")));
  }
  if (loaded.source_opset > kTargetOpset) {
    // ONNX 1.12 knows no opset past 17: lower the model before its checker,
    // schemas and shape inference read it.
    QUANTD_ASSIGN_OR_RETURN(loaded.conversion_note, LowerToOpset17(model));
  }
  QUANTD_RETURN_IF_ERROR(
      CheckOpsBeforeInference(model, options, loaded.source_opset));
  QUANTD_RETURN_IF_ERROR(CheckModel(model));
  if (options.convert_opset && loaded.source_opset < kTargetOpset) {
    QUANTD_RETURN_IF_ERROR(ConvertUp(model, loaded));
  }
  try {
    onnx::ShapeInferenceOptions si;
    si.check_type = false;
    si.error_mode = 0;
    onnx::shape_inference::InferShapes(model,
                                       onnx::OpSchemaRegistry::Instance(), si);
  } catch (const std::exception& e) {
    // Inferred shapes only inform passes; the executor computes real shapes.
  }
  absl::StatusOr<Graph> graph =
      GraphFromModelProto(std::move(model), options.limits);
  if (!graph.ok()) return graph.status();
  QUANTD_RETURN_IF_ERROR(TopologicalSort(*graph));
  if (options.check_ops) {
    const OpRegistry& registry =
        options.registry != nullptr ? *options.registry : DefaultOpRegistry();
    QUANTD_RETURN_IF_ERROR(CheckOpsSupported(*graph, registry));
  }
  loaded.graph = std::move(*graph);
  return loaded;
}

absl::StatusOr<onnx::ModelProto> ParseStream(
    google::protobuf::io::ZeroCopyInputStream& raw, const ModelLimits& limits) {
  google::protobuf::io::CodedInputStream coded(&raw);
  coded.SetTotalBytesLimit(
      static_cast<int>(std::min<int64_t>(limits.max_model_bytes, INT_MAX)));
  coded.SetRecursionLimit(64);
  onnx::ModelProto model;
  if (!model.ParseFromCodedStream(&coded) || !coded.ConsumedEntireMessage()) {
    return absl::InvalidArgumentError(
        "the file is not a valid ONNX model (protobuf parsing failed: "
        "truncated, corrupt, or not ONNX)");
  }
  return model;
}

absl::StatusOr<onnx::ModelProto> ParseModel(absl::string_view bytes,
                                            const ModelLimits& limits) {
  if (static_cast<int64_t>(bytes.size()) > limits.max_model_bytes) {
    return absl::ResourceExhaustedError(absl::StrCat(
        "the model is ", bytes.size(), " bytes, more than the limit of ",
        limits.max_model_bytes));
  }
  if (bytes.empty()) {
    return absl::InvalidArgumentError("the model file is empty");
  }
  google::protobuf::io::ArrayInputStream raw(bytes.data(),
                                             static_cast<int>(bytes.size()));
  return ParseStream(raw, limits);
}

// Streams the file into the parser: the weights are in memory once, as the
// parsed message, not also as the file's bytes (a 649 MB model's load peak
// was 2x its size).
absl::StatusOr<onnx::ModelProto> ParseModelFile(const std::string& path,
                                                const ModelLimits& limits) {
  struct stat st;
  if (stat(path.c_str(), &st) != 0) {
    return absl::NotFoundError(absl::StrCat("cannot open '", path, "'"));
  }
  if (!S_ISREG(st.st_mode)) {
    return absl::InvalidArgumentError(
        absl::StrCat("'", path, "' is not a regular file"));
  }
  if (st.st_size > limits.max_model_bytes) {
    return absl::ResourceExhaustedError(absl::StrCat(
        "'", path, "' is ", st.st_size, " bytes, more than the limit of ",
        limits.max_model_bytes));
  }
  if (st.st_size == 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("'", path, "': the model file is empty"));
  }
  std::ifstream in(path, std::ios::binary);
  if (!in) return absl::NotFoundError(absl::StrCat("cannot open '", path, "'"));
  google::protobuf::io::IstreamInputStream raw(&in, 1 << 20);
  absl::StatusOr<onnx::ModelProto> model = ParseStream(raw, limits);
  if (!model.ok()) {
    return absl::Status(
        model.status().code(),
        absl::StrCat("'", path, "': ", model.status().message()));
  }
  return model;
}

}  // namespace

absl::StatusOr<LoadedModel> LoadModelFromBytes(absl::string_view bytes,
                                               const LoadOptions& options) {
  QUANTD_ASSIGN_OR_RETURN(onnx::ModelProto model,
                          ParseModel(bytes, options.limits));
  return LoadParsed(std::move(model), nullptr, options);
}

absl::StatusOr<LoadedModel> LoadModelFromFile(const std::string& path,
                                              const LoadOptions& options) {
  QUANTD_ASSIGN_OR_RETURN(onnx::ModelProto model,
                          ParseModelFile(path, options.limits));
  std::string dir = ".";
  if (size_t slash = path.rfind('/'); slash != std::string::npos) {
    dir = slash == 0 ? "/" : path.substr(0, slash);
  }
  return LoadParsed(std::move(model), &dir, options);
}

}  // namespace quantd
