// The engine's fp32 outputs on the committed fixtures (models trained and
// exported by PyTorch, tools/fixtures/) must match the outputs PyTorch
// computed, before and after graph preparation.
#include <cmath>
#include <string>

#include "engine/data/array_file.h"
#include "engine/onnx/model_loader.h"
#include "engine/passes/graph_cleanup.h"
#include "engine/runtime/executor.h"
#include "gtest/gtest.h"

namespace quantd {
namespace {

// Logits are O(10); float32 summation order differs between PyTorch's and
// oneDNN's kernels, so differences of a few 1e-6 are expected. 1e-4 leaves
// headroom without hiding a real error (a wrong op is off by O(0.1)+).
constexpr float kLogitTolerance = 1e-4f;

struct Fixture {
  std::string model;
  std::string io;
  std::string input;
  std::string output;
  int expected_batchnorm_folds;
};

std::string Path(const std::string& rel) {
  return std::string(QUANTD_TESTDATA_DIR) + "/" + rel;
}

float MaxAbsDiff(const Tensor& a, const Tensor& b) {
  float m = 0;
  for (int64_t i = 0; i < a.num_elements(); ++i) {
    m = std::max(m, std::fabs(a.data<float>()[i] - b.data<float>()[i]));
  }
  return m;
}

class FixtureModelTest : public ::testing::TestWithParam<Fixture> {};

TEST_P(FixtureModelTest, MatchesPyTorchBeforeAndAfterPreparation) {
  const Fixture& f = GetParam();
  absl::StatusOr<LoadedModel> model = LoadModelFromFile(Path(f.model));
  ASSERT_TRUE(model.ok()) << model.status();
  absl::StatusOr<std::unique_ptr<ArrayFile>> io = ArrayFile::Open(Path(f.io));
  ASSERT_TRUE(io.ok()) << io.status();
  absl::StatusOr<Tensor> input = (*io)->ReadArray(f.input);
  ASSERT_TRUE(input.ok()) << input.status();
  absl::StatusOr<Tensor> expected = (*io)->ReadArray(f.output);
  ASSERT_TRUE(expected.ok()) << expected.status();

  Graph prepared = model->graph;
  PrepareStats stats;
  ASSERT_TRUE(PrepareGraph(prepared, DefaultOpRegistry(), &stats).ok());
  EXPECT_EQ(stats.batchnorms_folded, f.expected_batchnorm_folds);

  for (Graph* g : {&model->graph, &prepared}) {
    absl::StatusOr<std::unique_ptr<Executor>> ex = Executor::Create(*g);
    ASSERT_TRUE(ex.ok()) << ex.status();
    absl::StatusOr<std::vector<Tensor>> out =
        (*ex)->RunOutputs({{f.input, *input}});
    ASSERT_TRUE(out.ok()) << out.status();
    ASSERT_EQ((*out)[0].shape(), expected->shape());
    EXPECT_LT(MaxAbsDiff((*out)[0], *expected), kLogitTolerance)
        << (g == &prepared ? "prepared" : "as loaded");
  }
}

TEST_P(FixtureModelTest, RunsWithAnyBatchSize) {
  const Fixture& f = GetParam();
  absl::StatusOr<LoadedModel> model = LoadModelFromFile(Path(f.model));
  ASSERT_TRUE(model.ok()) << model.status();
  ASSERT_TRUE(PrepareGraph(model->graph, DefaultOpRegistry()).ok());
  absl::StatusOr<std::unique_ptr<ArrayFile>> io = ArrayFile::Open(Path(f.io));
  ASSERT_TRUE(io.ok());
  absl::StatusOr<std::unique_ptr<ArrayStream>> stream =
      (*io)->OpenStream(f.input);
  ASSERT_TRUE(stream.ok());
  absl::StatusOr<Tensor> one = (*stream)->ReadRows(1);
  ASSERT_TRUE(one.ok());
  absl::StatusOr<Tensor> all = (*io)->ReadArray(f.input);
  ASSERT_TRUE(all.ok());
  absl::StatusOr<std::unique_ptr<Executor>> ex = Executor::Create(model->graph);
  ASSERT_TRUE(ex.ok());
  absl::StatusOr<std::vector<Tensor>> out_all =
      (*ex)->RunOutputs({{f.input, *all}});
  ASSERT_TRUE(out_all.ok()) << out_all.status();
  absl::StatusOr<std::vector<Tensor>> out_one =
      (*ex)->RunOutputs({{f.input, *one}});
  ASSERT_TRUE(out_one.ok()) << out_one.status();
  EXPECT_EQ((*out_one)[0].dim(0), 1);
  // Row 0 must not depend on what else is in the batch.
  const int64_t row = (*out_one)[0].num_elements();
  for (int64_t i = 0; i < row; ++i) {
    EXPECT_NEAR((*out_one)[0].data<float>()[i], (*out_all)[0].data<float>()[i],
                kLogitTolerance);
  }
}

INSTANTIATE_TEST_SUITE_P(
    Fixtures, FixtureModelTest,
    ::testing::Values(Fixture{"fmnist_mlp/model.onnx", "fmnist_mlp/io.npz",
                              "input", "logits", 0},
                      Fixture{"fmnist_cnn/model.onnx", "fmnist_cnn/io.npz",
                              "input", "logits", 4},
                      Fixture{"fmnist_cnn/model_opset11.onnx",
                              "fmnist_cnn/io.npz", "input", "logits", 4},
                      Fixture{"tiny_gpt/model.onnx", "tiny_gpt/io.npz",
                              "input_ids", "logits", 0}),
    [](const ::testing::TestParamInfo<Fixture>& info) {
      std::string name = info.param.model;
      for (char& c : name) {
        if (!std::isalnum(static_cast<unsigned char>(c))) c = '_';
      }
      return name;
    });

}  // namespace
}  // namespace quantd
