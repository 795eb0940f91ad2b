// Reduce*, Softmax and BatchNormalization ops through the executor,
// including the opset-dependent forms (axes as attribute or input).
#include <cmath>

#include "engine/runtime/ops/op_util.h"
#include "engine/testing/op_test_util.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace quantd {
namespace {

Tensor X() {  // [2, 3]
  return Tensor::FromVector<float>({2, 3}, {1, 2, 3, 4, 5, 6});
}

std::vector<float> RunOp(absl::string_view op, std::vector<Tensor> inputs,
                         AttributeMap attrs, int64_t opset) {
  absl::StatusOr<std::vector<Tensor>> out =
      RunSingleOp(op, inputs, attrs, opset);
  EXPECT_TRUE(out.ok()) << out.status();
  return out.ok() ? (*out)[0].ToVector<float>() : std::vector<float>{};
}

TEST(ReduceOpsTest, AxesAttributeBeforeOpset18) {
  EXPECT_EQ(
      RunOp("ReduceMean", {X()},
            Attrs({{"axes", IntsAttr({1})}, {"keepdims", IntAttr(0)}}), 17),
      (std::vector<float>{2, 5}));
  EXPECT_EQ(RunOp("ReduceMax", {X()}, Attrs({{"axes", IntsAttr({0})}}), 13),
            (std::vector<float>{4, 5, 6}));
}

TEST(ReduceOpsTest, AxesInputFromOpset18AndForReduceSumFrom13) {
  EXPECT_EQ(RunOp("ReduceMean", {X(), Int64Vector({-1})},
                  Attrs({{"keepdims", IntAttr(0)}}), 18),
            (std::vector<float>{2, 5}));
  EXPECT_EQ(RunOp("ReduceMin", {X(), Int64Vector({0})}, {}, 21),
            (std::vector<float>{1, 2, 3}));
  EXPECT_EQ(RunOp("ReduceSum", {X(), Int64Vector({1})}, {}, 13),
            (std::vector<float>{6, 15}));
  // No axes: everything, unless noop_with_empty_axes.
  EXPECT_EQ(RunOp("ReduceSum", {X()}, {}, 13), (std::vector<float>{21}));
  EXPECT_EQ(RunOp("ReduceSum", {X()},
                  Attrs({{"noop_with_empty_axes", IntAttr(1)}}), 13),
            X().ToVector<float>());
}

TEST(SoftmaxOpsTest, Opset13NormalizesOneAxisOlderOpsetsTheFlattenedTail) {
  Tensor x = Tensor::FromVector<float>({1, 2, 2}, {0, 0, 0, 0});
  // Opset 13, axis 1: each pair along dim 1 sums to 1 -> 0.5 each.
  for (float v : RunOp("Softmax", {x}, Attrs({{"axis", IntAttr(1)}}), 13)) {
    EXPECT_FLOAT_EQ(v, 0.5f);
  }
  // Opset 11, axis 1: the trailing 2x2 block is one distribution.
  for (float v : RunOp("Softmax", {x}, Attrs({{"axis", IntAttr(1)}}), 11)) {
    EXPECT_FLOAT_EQ(v, 0.25f);
  }
}

TEST(BatchNormOpsTest, InferenceFormAndTrainingModeRefused) {
  Tensor x = Tensor::FromVector<float>({1, 2, 1, 1}, {1, 2});
  Tensor scale = Tensor::FromVector<float>({2}, {2, 1});
  Tensor bias = Tensor::FromVector<float>({2}, {0, 1});
  Tensor mean = Tensor::FromVector<float>({2}, {1, 0});
  Tensor var = Tensor::FromVector<float>({2}, {1, 4});
  std::vector<float> y =
      RunOp("BatchNormalization", {x, scale, bias, mean, var},
            Attrs({{"epsilon", FloatAttr(0)}}), 15);
  EXPECT_FLOAT_EQ(y[0], 0.f);  // (1 - 1) / 1 * 2 + 0
  EXPECT_FLOAT_EQ(y[1], 2.f);  // (2 - 0) / 2 * 1 + 1
  absl::StatusOr<std::vector<Tensor>> training =
      RunSingleOp("BatchNormalization", {x, scale, bias, mean, var},
                  Attrs({{"training_mode", IntAttr(1)}}), 15);
  EXPECT_EQ(training.status().code(), absl::StatusCode::kUnimplemented);
}

}  // namespace
}  // namespace quantd
