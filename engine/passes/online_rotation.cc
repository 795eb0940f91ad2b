#include "engine/passes/online_rotation.h"

#include <map>
#include <set>

#include "absl/strings/str_cat.h"
#include "engine/passes/layer_norm_folding.h"
#include "engine/passes/mean_preserving_rotation.h"
#include "util/status_macros.h"

namespace quantd {
namespace {

// Ops after which no weight can absorb a rotation of their output.
bool IsActivation(const std::string& op) {
  static const std::set<std::string>* ops = new std::set<std::string>{
      "Gelu",    "Relu",        "LeakyRelu", "Elu",  "Selu",
      "Sigmoid", "Tanh",        "Softplus",  "Mul",  "HardSwish",
      "Erf",     "HardSigmoid", "Mish",      "Celu", "ThresholdedRelu"};
  return ops->contains(op);
}

// K = a * b, b the largest power of two dividing K with b^2 <= K.
void Factor(int64_t k, int64_t& a, int64_t& b) {
  b = 1;
  while (k % (b * 2) == 0 && (b * 2) * (b * 2) <= k) b *= 2;
  a = k / b;
}

// R^T W for R = A (x) B, W [a * b, n]: W'[k, l, :] = sum_ij A[i, k] B[j, l]
// W[i, j, :]. A new tensor (initializers share storage with graph copies).
Tensor RotateRows(const Tensor& w, const Tensor& a_mat, const Tensor& b_mat) {
  const int64_t a = a_mat.dim(0), b = b_mat.dim(0), n = w.dim(1);
  const float* A = a_mat.data<float>();
  const float* B = b_mat.data<float>();
  const float* W = w.data<float>();
  std::vector<double> t(a * b * n, 0.0);  // T[i, l, :] = sum_j B[j, l] W[i, j]
  for (int64_t i = 0; i < a; ++i) {
    for (int64_t j = 0; j < b; ++j) {
      const float* row = W + (i * b + j) * n;
      for (int64_t l = 0; l < b; ++l) {
        const double f = B[j * b + l];
        double* out = &t[(i * b + l) * n];
        for (int64_t c = 0; c < n; ++c) out[c] += f * row[c];
      }
    }
  }
  Tensor out(DataType::kFloat32, w.shape());
  float* o = out.mutable_data<float>();
  std::vector<double> acc(n);
  for (int64_t k = 0; k < a; ++k) {
    for (int64_t l = 0; l < b; ++l) {
      std::fill(acc.begin(), acc.end(), 0.0);
      for (int64_t i = 0; i < a; ++i) {
        const double f = A[i * a + k];
        const double* in = &t[(i * b + l) * n];
        for (int64_t c = 0; c < n; ++c) acc[c] += f * in[c];
      }
      for (int64_t c = 0; c < n; ++c) o[(k * b + l) * n + c] = acc[c];
    }
  }
  return out;
}

Tensor Transposed(const Tensor& m) {
  const int64_t r = m.dim(0), c = m.dim(1);
  Tensor t(DataType::kFloat32, {c, r});
  for (int64_t i = 0; i < r; ++i) {
    for (int64_t j = 0; j < c; ++j) {
      t.mutable_data<float>()[j * r + i] = m.data<float>()[i * c + j];
    }
  }
  return t;
}

Node NewNode(const std::string& name, const std::string& op,
             std::vector<std::string> inputs, const std::string& output) {
  Node n;
  n.name = name;
  n.op_type = op;
  n.inputs = std::move(inputs);
  n.outputs = {output};
  return n;
}

// Inserts the rotation before node `at` (a MatMul reading `x` with weight
// [K, N]) and rotates its weight.
absl::Status Rotate(Graph& graph, size_t at, int64_t a, int64_t b,
                    uint64_t seed, absl::flat_hash_map<std::string, int>& uses,
                    OnlineRotationOutcome& outcome) {
  QUANTD_ASSIGN_OR_RETURN(const Tensor a_mat, RandomizedHadamard(a, seed));
  QUANTD_ASSIGN_OR_RETURN(const Tensor b_mat, RandomizedHadamard(b, seed + 1));
  const std::string layer = graph.nodes[at].name;
  const std::string x = graph.nodes[at].input(0);
  const std::string base = layer + "/online_rotation";
  auto name = [&](const std::string& suffix) {
    return graph.UniqueName(absl::StrCat(base, "/", suffix));
  };
  const std::string split_shape = name("split_shape");
  graph.initializers[split_shape] =
      Tensor::FromVector<int64_t>({3}, {-1, a, b});
  const std::string b_name = name("B");
  graph.initializers[b_name] = b_mat;
  const std::string at_name = name("A_transposed");
  graph.initializers[at_name] = Transposed(a_mat);
  std::vector<Node> added;
  const std::string shape = name("shape"), split = name("split"),
                    right = name("times_B"), left = name("times_A"),
                    rotated = name("rotated");
  added.push_back(NewNode(shape, "Shape", {x}, shape));
  added.push_back(NewNode(split, "Reshape", {x, split_shape}, split));
  added.push_back(NewNode(right, "MatMul", {split, b_name}, right));
  added.push_back(NewNode(left, "MatMul", {at_name, right}, left));
  added.push_back(NewNode(rotated, "Reshape", {left, shape}, rotated));
  graph.nodes[at].inputs[0] = rotated;
  Tensor& w = PrivateInitializer(graph, at, 1, uses);
  w = RotateRows(w, a_mat, b_mat);
  const int64_t k = a * b, n = w.dim(1);
  graph.nodes.insert(graph.nodes.begin() + at, added.begin(), added.end());
  outcome.float_nodes.push_back(right);
  outcome.added_macs_per_row += k * (a + b);
  const std::string how =
      absl::StrCat("online Hadamard ", a, " x ", b, " on its ", k, " inputs, ",
                   k * (a + b), " float multiply-adds per row (",
                   100.0 * (a + b) / n, "% of the layer's)");
  outcome.notes.push_back(absl::StrCat("'", layer, "': ", how));
  outcome.changed_nodes.emplace_back(
      layer, absl::StrCat("rotation: ", how, ", W -> R^T W"));
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<OnlineRotationOutcome> InsertOnlineRotations(Graph& graph,
                                                            uint64_t seed) {
  OnlineRotationOutcome outcome;
  std::map<std::string, size_t> producer;
  for (size_t i = 0; i < graph.nodes.size(); ++i) {
    for (const std::string& o : graph.nodes[i].outputs) producer[o] = i;
  }
  std::vector<std::string> layers;
  for (const Node& n : graph.nodes) {
    if (n.op_type != "MatMul" || !n.domain.empty() || n.inputs.size() != 2) {
      continue;
    }
    const Tensor* w = graph.FindInitializer(n.input(1));
    auto p = producer.find(n.input(0));
    if (w == nullptr || w->dtype() != DataType::kFloat32 || w->rank() != 2 ||
        p == producer.end() || !graph.nodes[p->second].domain.empty() ||
        !IsActivation(graph.nodes[p->second].op_type)) {
      continue;
    }
    layers.push_back(n.name);
  }
  if (layers.empty()) {
    outcome.skipped.push_back(
        "no MatMul layer reads an activation's output (an MLP down "
        "projection); nothing rotated online");
  }
  absl::flat_hash_map<std::string, int> uses = ConsumerCounts(graph);
  for (const std::string& layer : layers) {
    size_t at = 0;
    while (graph.nodes[at].name != layer) ++at;
    const int64_t k = graph.FindInitializer(graph.nodes[at].input(1))->dim(0);
    int64_t a = 0, b = 0;
    Factor(k, a, b);
    if (b < 2 || a > kMaxRotationDim) {
      outcome.skipped.push_back(
          absl::StrCat("'", layer, "': no online rotation for its ", k,
                       " inputs (needs an even width with a factor pair <= ",
                       kMaxRotationDim, ")"));
      continue;
    }
    QUANTD_RETURN_IF_ERROR(
        Rotate(graph, at, a, b, seed + 2 * at, uses, outcome));
  }
  return outcome;
}

}  // namespace quantd
