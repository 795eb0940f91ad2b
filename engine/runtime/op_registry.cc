#include "engine/runtime/op_registry.h"

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

namespace quantd {

absl::StatusOr<const Tensor*> OpKernelContext::required_input(int i) const {
  const Tensor* t = input(i);
  if (t == nullptr || !t->defined()) {
    return absl::InvalidArgumentError(
        absl::StrCat(node_.op_type, " node '", node_.name,
                     "' is missing its required input #", i));
  }
  return t;
}

std::string OpKey(const Node& node) {
  if (node.domain.empty() || node.domain == "ai.onnx") return node.op_type;
  return absl::StrCat(node.domain, ".", node.op_type);
}

void OpRegistry::Register(const std::string& op_type, OpKernelFactory factory) {
  factories_[op_type] = std::move(factory);
}

const OpKernelFactory* OpRegistry::Find(absl::string_view op_type) const {
  auto it = factories_.find(op_type);
  return it == factories_.end() ? nullptr : &it->second;
}

std::vector<std::string> OpRegistry::OpTypes() const {
  std::vector<std::string> types;
  for (const auto& [type, f] : factories_) types.push_back(type);
  return types;
}

namespace {
class FunctionKernel : public OpKernel {
 public:
  explicit FunctionKernel(OpFunction fn) : fn_(std::move(fn)) {}
  absl::Status Compute(OpKernelContext& ctx) override { return fn_(ctx); }

 private:
  OpFunction fn_;
};
}  // namespace

OpKernelFactory FunctionFactory(OpFunction fn) {
  return
      [fn](const OpKernelInfo&) -> absl::StatusOr<std::unique_ptr<OpKernel>> {
        return std::make_unique<FunctionKernel>(fn);
      };
}

absl::Status CheckOpsSupported(const Graph& graph, const OpRegistry& registry) {
  std::vector<std::string> keys;
  keys.reserve(graph.nodes.size());
  for (const Node& node : graph.nodes) keys.push_back(OpKey(node));
  return CheckOpKeysSupported(keys, registry);
}

absl::Status CheckOpKeysSupported(const std::vector<std::string>& keys,
                                  const OpRegistry& registry) {
  std::map<std::string, int> missing;
  for (const std::string& key : keys) {
    if (!registry.Contains(key)) ++missing[key];
  }
  if (missing.empty()) return absl::OkStatus();
  std::vector<std::string> parts;
  for (const auto& [type, count] : missing) {
    parts.push_back(absl::StrCat(type, " (x", count, ")"));
  }
  return absl::UnimplementedError(absl::StrCat(
      "the model uses ", missing.size(),
      " op type(s) quantd does not support: ", absl::StrJoin(parts, ", ")));
}

}  // namespace quantd
