#include "engine/data/dataset.h"

#include <cmath>
#include <cstdlib>

#include "absl/strings/str_cat.h"
#include "engine/onnx/model_loader.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace quantd {
namespace {

using ::testing::HasSubstr;

std::string Data(const std::string& rel) {
  return absl::StrCat(QUANTD_TESTDATA_DIR, "/", rel);
}

Graph LoadGraph(const std::string& rel) {
  absl::StatusOr<LoadedModel> m = LoadModelFromFile(Data(rel));
  EXPECT_TRUE(m.ok()) << m.status();
  return m.ok() ? m->graph : Graph();
}

class DatasetTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/quantd_dataset_test_XXXXXX";
    dir_ = mkdtemp(tmpl);
    cnn_ = LoadGraph("fmnist_cnn/model.onnx");
  }
  void TearDown() override {
    std::system(absl::StrCat("rm -rf '", dir_, "'").c_str());
  }
  std::string Write(const std::string& name,
                    const std::vector<std::pair<std::string, Tensor>>& arrays) {
    std::string path = absl::StrCat(dir_, "/", name);
    EXPECT_TRUE(WriteNpz(path, arrays).ok());
    return path;
  }
  std::string OpenError(const std::string& path, const Graph& g) {
    absl::StatusOr<std::unique_ptr<Dataset>> d = Dataset::Open(path, g);
    EXPECT_FALSE(d.ok());
    return std::string(d.status().message());
  }

  std::string dir_;
  Graph cnn_;
};

TEST_F(DatasetTest, StreamsImagesAndLabelsInBatches) {
  DatasetOptions options;
  options.batch_size = 300;
  absl::StatusOr<std::unique_ptr<Dataset>> d =
      Dataset::Open(Data("fmnist/eval.npz"), cnn_, options);
  ASSERT_TRUE(d.ok()) << d.status();
  EXPECT_EQ((*d)->num_samples(), 1000);
  EXPECT_TRUE((*d)->has_labels());
  EXPECT_FALSE((*d)->is_language_model());
  std::vector<int64_t> sizes;
  int64_t label_sum = 0;
  while (true) {
    absl::StatusOr<std::optional<DataBatch>> b = (*d)->Next();
    ASSERT_TRUE(b.ok()) << b.status();
    if (!b->has_value()) break;
    sizes.push_back((*b)->size);
    EXPECT_EQ((*b)->feeds.at("input").shape(), (Shape{(*b)->size, 1, 28, 28}));
    for (int64_t l : (*b)->labels.span<int64_t>()) label_sum += l;
  }
  EXPECT_EQ(sizes, (std::vector<int64_t>{300, 300, 300, 100}));
  EXPECT_GT(label_sum, 0);
  // Rewind gives the same first batch again.
  ASSERT_TRUE((*d)->Rewind().ok());
  absl::StatusOr<std::optional<DataBatch>> again = (*d)->Next();
  ASSERT_TRUE(again.ok() && again->has_value());
  EXPECT_EQ((*again)->first, 0);
}

TEST_F(DatasetTest, SlicesASampleRange) {
  DatasetOptions tail;
  tail.first_sample = 990;
  tail.batch_size = 64;
  absl::StatusOr<std::unique_ptr<Dataset>> d =
      Dataset::Open(Data("fmnist/eval.npz"), cnn_, tail);
  ASSERT_TRUE(d.ok());
  absl::StatusOr<std::optional<DataBatch>> b = (*d)->Next();
  ASSERT_TRUE(b.ok() && b->has_value());
  EXPECT_EQ((*b)->size, 10);
  absl::StatusOr<std::unique_ptr<ArrayFile>> f =
      ArrayFile::Open(Data("fmnist/eval.npz"));
  absl::StatusOr<Tensor> all = (*f)->ReadArray("input");
  ASSERT_TRUE(all.ok());
  const int64_t row = 28 * 28;
  for (int64_t i = 0; i < 10 * row; ++i) {
    ASSERT_EQ((*b)->feeds.at("input").data<float>()[i],
              all->data<float>()[990 * row + i]);
  }
}

// Exports for streaming often fix dim 0 at 1: every batch must have the
// model's size whatever batch_size asks, and a tail that cannot fill one
// is dropped and counted, not fed short.
TEST_F(DatasetTest, AFixedBatchDimensionSetsTheBatchSize) {
  Graph fixed = cnn_;
  fixed.inputs[0].shape[0] = 4;
  DatasetOptions options;
  options.batch_size = 64;
  options.max_samples = 10;
  absl::StatusOr<std::unique_ptr<Dataset>> d =
      Dataset::Open(Data("fmnist/eval.npz"), fixed, options);
  ASSERT_TRUE(d.ok()) << d.status();
  EXPECT_EQ((*d)->fixed_batch(), 4);
  EXPECT_EQ((*d)->num_samples(), 8);
  EXPECT_EQ((*d)->dropped_samples(), 2);
  int batches = 0;
  while (true) {
    absl::StatusOr<std::optional<DataBatch>> b = (*d)->Next();
    ASSERT_TRUE(b.ok()) << b.status();
    if (!b->has_value()) break;
    EXPECT_EQ((*b)->feeds.at("input").dim(0), 4);
    ++batches;
  }
  EXPECT_EQ(batches, 2);

  options.max_samples = 3;
  d = Dataset::Open(Data("fmnist/eval.npz"), fixed, options);
  ASSERT_FALSE(d.ok());
  EXPECT_THAT(d.status().message(), HasSubstr("exactly 4 samples"));
}

TEST_F(DatasetTest, LanguageModelRowsSplitIntoInputsAndTargets) {
  Graph gpt = LoadGraph("tiny_gpt/model.onnx");
  // Not a language model unless the options say so: a BERT classifier's
  // `input_ids` were once taken for next-token rows by their name.
  absl::StatusOr<std::unique_ptr<Dataset>> d =
      Dataset::Open(Data("tiny_gpt/calib.npz"), gpt);
  ASSERT_TRUE(d.ok()) << d.status();
  EXPECT_FALSE((*d)->is_language_model());
  DatasetOptions lm;
  lm.task = OutputTask::kLanguageModel;
  lm.token_input = "input_ids";
  d = Dataset::Open(Data("tiny_gpt/calib.npz"), gpt, lm);
  ASSERT_TRUE(d.ok()) << d.status();
  EXPECT_TRUE((*d)->is_language_model());
  absl::StatusOr<std::optional<DataBatch>> b = (*d)->Next();
  ASSERT_TRUE(b.ok() && b->has_value());
  const Tensor& in = (*b)->feeds.at("input_ids");
  const Tensor& tg = (*b)->targets;
  ASSERT_EQ(in.shape(), (Shape{32, 64}));
  ASSERT_EQ(tg.shape(), (Shape{32, 64}));
  for (int64_t r = 0; r < 32; ++r) {
    for (int64_t j = 0; j + 1 < 64; ++j) {
      ASSERT_EQ(tg.data<int64_t>()[r * 64 + j],
                in.data<int64_t>()[r * 64 + j + 1]);
    }
  }
}

TEST_F(DatasetTest, ExplainsMismatchedArrays) {
  Tensor images = Tensor::Zeros(DataType::kFloat32, {4, 1, 28, 28});
  EXPECT_THAT(OpenError(Write("a.npz", {{"pixels", images}}), cnn_),
              HasSubstr("no array for model input 'input'; it has: pixels"));
  EXPECT_THAT(
      OpenError(Write("b.npz", {{"input", Tensor::Zeros(DataType::kInt64,
                                                        {4, 1, 28, 28})}}),
                cnn_),
      HasSubstr("holds s64 but model input 'input' expects f32"));
  EXPECT_THAT(
      OpenError(Write("c.npz",
                      {{"input", Tensor::Zeros(DataType::kFloat32, {4, 784})}}),
                cnn_),
      HasSubstr("expects 4 dims"));
  EXPECT_THAT(
      OpenError(Write("d.npz", {{"input", Tensor::Zeros(DataType::kFloat32,
                                                        {4, 1, 32, 32})}}),
                cnn_),
      HasSubstr("expects dim 2 to be 28"));
  EXPECT_THAT(
      OpenError(
          Write("e.npz", {{"input", images},
                          {"label", Tensor::Zeros(DataType::kInt64, {5})}}),
          cnn_),
      HasSubstr("has 5 samples but array 'input' has 4"));
  EXPECT_THAT(
      OpenError(
          Write("f.npz", {{"input", images},
                          {"label", Tensor::Zeros(DataType::kFloat32, {4})}}),
          cnn_),
      HasSubstr("1-D int64"));
  EXPECT_THAT(
      OpenError(Write("g.npz", {{"input", Tensor::Zeros(DataType::kFloat32,
                                                        {0, 1, 28, 28})}}),
                cnn_),
      HasSubstr("holds no samples"));
}

TEST_F(DatasetTest, RefusesNonFiniteData) {
  Tensor images = Tensor::Zeros(DataType::kFloat32, {4, 1, 28, 28});
  images.mutable_data<float>()[2 * 784 + 5] = NAN;
  absl::StatusOr<std::unique_ptr<Dataset>> d =
      Dataset::Open(Write("nan.npz", {{"input", images}}), cnn_);
  ASSERT_TRUE(d.ok()) << d.status();
  absl::StatusOr<std::optional<DataBatch>> b = (*d)->Next();
  ASSERT_FALSE(b.ok());
  EXPECT_THAT(b.status().message(), HasSubstr("NaN or Inf at sample 2"));
}

}  // namespace
}  // namespace quantd
