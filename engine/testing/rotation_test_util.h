// Helpers for tests of function-preserving graph rewrites (rotations):
// run a graph, compare outputs, measure outlier channels. Header-only,
// tests only.
//
//   EXPECT_LT(RelativeError(RunGraph(before, feeds), RunGraph(g, feeds)),
//             1e-5);
#ifndef QUANTD_ENGINE_TESTING_ROTATION_TEST_UTIL_H_
#define QUANTD_ENGINE_TESTING_ROTATION_TEST_UTIL_H_

#include <algorithm>
#include <cmath>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "engine/onnx/model_loader.h"
#include "engine/passes/graph_cleanup.h"
#include "engine/runtime/executor.h"
#include "engine/runtime/op_registry.h"
#include "gtest/gtest.h"

namespace quantd {

// The graph's first output, or `value` when named, as floats.
inline std::vector<float> RunGraph(const Graph& g, const TensorMap& feeds,
                                   const std::string& value = "") {
  absl::StatusOr<std::unique_ptr<Executor>> ex = Executor::Create(g);
  EXPECT_TRUE(ex.ok()) << ex.status();
  if (!ex.ok()) return {};
  RunOptions o;
  if (!value.empty()) o.extra_outputs = {value};
  absl::StatusOr<RunResult> r = (*ex)->Run(feeds, o);
  EXPECT_TRUE(r.ok()) << r.status();
  if (!r.ok()) return {};
  return value.empty() ? r->outputs[0].ToVector<float>()
                       : r->values.at(value).ToVector<float>();
}

// max |a - b| / max |a|.
inline double RelativeError(const std::vector<float>& a,
                            const std::vector<float>& b) {
  double err = 0, scale = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    err = std::max(err, std::fabs(double{a[i]} - b[i]));
    scale = std::max(scale, std::fabs(double{a[i]}));
  }
  return err / scale;
}

// The largest channel's max |x| over the median channel's, x viewed as
// [rows, d]: 1 for a flat distribution, large with outlier channels.
inline double ChannelSpread(const std::vector<float>& x, int64_t d) {
  std::vector<double> m(d, 0.0);
  for (size_t i = 0; i < x.size(); ++i) {
    m[i % d] = std::max(m[i % d], std::fabs(double{x[i]}));
  }
  std::vector<double> sorted = m;
  std::sort(sorted.begin(), sorted.end());
  return sorted.back() / sorted[d / 2];
}

// The tiny GPT fixture as a job's stages see it: loaded, then prepared
// (constant folding turns the exporter's Constant nodes, e.g. the heads'
// [H, dh], into initializers the passes read).
inline absl::StatusOr<Graph> PreparedTinyGpt() {
  absl::StatusOr<LoadedModel> m = LoadModelFromFile(
      absl::StrCat(QUANTD_TESTDATA_DIR, "/tiny_gpt/model.onnx"));
  if (!m.ok()) return m.status();
  absl::Status prepared = PrepareGraph(m->graph, DefaultOpRegistry(), nullptr);
  if (!prepared.ok()) return prepared;
  return std::move(m->graph);
}

// Token ids [rows, len] spread over the tiny GPT's 256-symbol vocabulary.
inline Tensor TinyGptTokens(int64_t rows, int64_t len) {
  Tensor ids(DataType::kInt64, {rows, len});
  int64_t* v = ids.mutable_data<int64_t>();
  for (int64_t i = 0; i < rows * len; ++i) v[i] = (i * 37 + 11) % 256;
  return ids;
}

// How far two graphs' logits on the same tokens are apart (relative).
inline double TinyGptLogitsError(const Graph& a, const Graph& b) {
  const TensorMap feeds = {{"input_ids", TinyGptTokens(2, 64)}};
  return RelativeError(RunGraph(a, feeds), RunGraph(b, feeds));
}

}  // namespace quantd

#endif  // QUANTD_ENGINE_TESTING_ROTATION_TEST_UTIL_H_
