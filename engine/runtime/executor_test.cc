#include "engine/runtime/executor.h"

#include <atomic>

#include "engine/testing/op_test_util.h"
#include "engine/testing/test_graphs.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace quantd {
namespace {

using ::testing::HasSubstr;

Tensor X() { return Tensor::FromVector<float>({2, 3}, {-1, 2, -3, 4, -5, 6}); }

TEST(ExecutorTest, SortsAndRuns) {
  Graph g = ReluAddGraph();
  std::swap(g.nodes[0], g.nodes[1]);  // add before relu: Create must sort
  absl::StatusOr<std::unique_ptr<Executor>> ex = Executor::Create(g);
  ASSERT_TRUE(ex.ok()) << ex.status();
  absl::StatusOr<std::vector<Tensor>> out = (*ex)->RunOutputs({{"x", X()}});
  ASSERT_TRUE(out.ok()) << out.status();
  EXPECT_EQ((*out)[0].ToVector<float>(),
            (std::vector<float>{-1, 4, -3, 8, -5, 12}));
}

TEST(ExecutorTest, HookSeesEveryValueAndCanReplaceIt) {
  absl::StatusOr<std::unique_ptr<Executor>> ex =
      Executor::Create(ReluAddGraph());
  ASSERT_TRUE(ex.ok());
  std::vector<std::string> seen;
  RunOptions options;
  options.tensor_hook = [&](const Node* producer, const std::string& name,
                            Tensor& value) {
    seen.push_back(name);
    if (name == "r") value = Tensor::Zeros(DataType::kFloat32, value.shape());
    return absl::OkStatus();
  };
  absl::StatusOr<RunResult> r = (*ex)->Run({{"x", X()}}, options);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(seen, (std::vector<std::string>{"x", "r", "y"}));
  EXPECT_EQ(r->outputs[0].ToVector<float>(), X().ToVector<float>());
}

TEST(ExecutorTest, KeepsIntermediatesWhenAsked) {
  absl::StatusOr<std::unique_ptr<Executor>> ex =
      Executor::Create(ReluAddGraph());
  ASSERT_TRUE(ex.ok());
  RunOptions options;
  options.keep_all_values = true;
  absl::StatusOr<RunResult> r = (*ex)->Run({{"x", X()}}, options);
  ASSERT_TRUE(r.ok());
  EXPECT_TRUE(r->values.contains("r"));
  options.keep_all_values = false;
  options.extra_outputs = {"r"};
  r = (*ex)->Run({{"x", X()}}, options);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->values.size(), 1u);
}

TEST(ExecutorTest, ExplainsBadFeeds) {
  absl::StatusOr<std::unique_ptr<Executor>> ex =
      Executor::Create(ReluAddGraph());
  ASSERT_TRUE(ex.ok());
  auto message = [&](const TensorMap& feeds) {
    return std::string((*ex)->RunOutputs(feeds).status().message());
  };
  EXPECT_THAT(message({}), HasSubstr("input 'x' was not provided"));
  EXPECT_THAT(message({{"x", X()}, {"z", X()}}),
              HasSubstr("no input named 'z'"));
  EXPECT_THAT(message({{"x", Tensor::FromVector<int64_t>({2, 3}, {})}}),
              HasSubstr("expects element type f32, got s64"));
  EXPECT_THAT(message({{"x", Tensor(DataType::kFloat32, {6})}}),
              HasSubstr("expects 2 dims"));
  EXPECT_THAT(message({{"x", Tensor(DataType::kFloat32, {2, 4})}}),
              HasSubstr("expects dim 1 to be 3"));
}

TEST(ExecutorTest, StopsWhenCancelled) {
  absl::StatusOr<std::unique_ptr<Executor>> ex =
      Executor::Create(ReluAddGraph());
  ASSERT_TRUE(ex.ok());
  std::atomic<bool> cancelled{true};
  RunOptions options;
  options.cancelled = &cancelled;
  EXPECT_EQ((*ex)->Run({{"x", X()}}, options).status().code(),
            absl::StatusCode::kCancelled);
}

TEST(ExecutorTest, RefusesCyclesAndUnknownOps) {
  Graph g = ReluAddGraph();
  g.nodes[0].inputs = {"y"};  // relu reads add's output, add reads relu's
  EXPECT_FALSE(Executor::Create(g).ok());
  g = ReluAddGraph();
  g.nodes[0].op_type = "NoSuchOp";
  absl::StatusOr<std::unique_ptr<Executor>> ex = Executor::Create(g);
  EXPECT_EQ(ex.status().code(), absl::StatusCode::kUnimplemented);
  EXPECT_THAT(ex.status().message(), HasSubstr("NoSuchOp (x1)"));
}

TEST(ExecutorTest, ReplacesInitializersOnlyWithTheSameTypeAndShape) {
  Graph g = ReluAddGraph();
  g.initializers["k"] = Tensor::FromVector<float>({3}, {1, 2, 3});
  absl::StatusOr<std::unique_ptr<Executor>> ex = Executor::Create(g);
  ASSERT_TRUE(ex.ok());
  EXPECT_TRUE(
      (*ex)->ReplaceInitializer("k", Tensor(DataType::kFloat32, {3})).ok());
  EXPECT_FALSE(
      (*ex)->ReplaceInitializer("k", Tensor(DataType::kFloat32, {4})).ok());
  EXPECT_FALSE((*ex)->ReplaceInitializer("nope", Tensor()).ok());
}

}  // namespace
}  // namespace quantd
