// Finite-difference checks of the backward kernels for softmax, layer
// norm, binary ops, reductions and data movement.
#include "kernels/backward.h"
#include "kernels/backward_test_util.h"

namespace quantd {
namespace {

using namespace backward_test;  // NOLINT: the checker's vocabulary

const auto* const kPrinter =
    ::testing::AddGlobalTestEnvironment(new SummaryPrinter);

// --- Softmax / LayerNorm ---------------------------------------------------

TEST(SoftmaxBackwardTest, FiniteDifferences) {
  for (bool log : {false, true}) {
    for (int axis : {-1, 1, 0}) {
      SCOPED_TRACE(testing::Message() << "log " << log << " axis " << axis);
      std::mt19937 rng(17);
      Tensor x = RandomFloat({3, 5, 4}, rng, -2, 2);
      Tensor dy = RandomFloat(x.shape(), rng);
      Tensor y, dx;
      ASSERT_TRUE(SoftmaxReference(x, axis, log, &y).ok());
      absl::Status s = SoftmaxBackward(y, dy, axis, log, &dx);
      ASSERT_TRUE(s.ok()) << s;
      Fn f = [axis, log](const std::vector<Tensor>& in, Tensor* out) {
        return SoftmaxReference(in[0], axis, log, out);
      };
      ExpectGradients("softmax", f, {x}, dy, {dx}, 1e-3);
    }
  }
}

struct LayerNormCase {
  std::string name;
  Shape x, scale, bias;  // empty scale/bias: none
  int axis;
};

class LayerNormBackwardTest : public ::testing::TestWithParam<LayerNormCase> {};

TEST_P(LayerNormBackwardTest, FiniteDifferences) {
  const LayerNormCase& c = GetParam();
  std::mt19937 rng(19);
  Tensor x = RandomFloat(c.x, rng, -2, 2);
  Tensor scale =
      c.scale.empty() ? Tensor() : RandomFloat(c.scale, rng, 0.5, 1.5);
  Tensor bias = c.bias.empty() ? Tensor() : RandomFloat(c.bias, rng);
  Tensor dy = RandomFloat(c.x, rng);
  const float epsilon = 1e-5f;
  Tensor dx, dscale, dbias;
  const Tensor* sp = scale.defined() ? &scale : nullptr;
  const Tensor* bp = bias.defined() ? &bias : nullptr;
  absl::Status s =
      LayerNormBackward(x, sp, bp, dy, c.axis, epsilon, &dx,
                        sp ? &dscale : nullptr, bp ? &dbias : nullptr);
  ASSERT_TRUE(s.ok()) << s;
  const int axis = c.axis;
  const bool has_scale = sp != nullptr, has_bias = bp != nullptr;
  Fn f = [=](const std::vector<Tensor>& in, Tensor* y) {
    return LayerNormReference(in[0], has_scale ? &in[1] : nullptr,
                              has_bias ? &in[2] : nullptr, axis, epsilon, y);
  };
  ExpectGradients("layernorm", f, {x, scale, bias}, dy, {dx, dscale, dbias},
                  1e-3);
}

INSTANTIATE_TEST_SUITE_P(
    Shapes, LayerNormBackwardTest,
    ::testing::Values(
        LayerNormCase{"last_axis", {2, 3, 8}, {8}, {8}, -1},
        LayerNormCase{"two_axes_tiled_scale", {2, 3, 6}, {6}, {3, 6}, 1},
        LayerNormCase{"no_affine", {4, 7}, {}, {}, -1},
        LayerNormCase{"scale_only_keepdim", {3, 5}, {1, 5}, {}, 1}),
    [](const auto& info) { return info.param.name; });

// --- Binary ----------------------------------------------------------------

struct BinaryCase {
  std::string name;
  BinaryOp op;
  Shape a, b;
};

class BinaryBackwardTest : public ::testing::TestWithParam<BinaryCase> {};

TEST_P(BinaryBackwardTest, FiniteDifferences) {
  const BinaryCase& c = GetParam();
  std::mt19937 rng(23);
  Tensor a = Distinct(c.a, rng, 0.037f), b = Distinct(c.b, rng, 0.029f);
  if (c.op == BinaryOp::kDiv) {  // keep the divisor away from 0
    for (float& v : b.mutable_span<float>()) v = v < 0 ? v - 0.5f : v + 0.5f;
  }
  absl::StatusOr<Shape> out = BroadcastShapes(c.a, c.b);
  ASSERT_TRUE(out.ok());
  Tensor dy = RandomFloat(*out, rng);
  Tensor da, db;
  absl::Status s = BinaryBackward(c.op, a, b, dy, &da, &db);
  ASSERT_TRUE(s.ok()) << s;
  ASSERT_EQ(da.shape(), c.a);
  ASSERT_EQ(db.shape(), c.b);
  const BinaryOp op = c.op;
  Fn f = [op](const std::vector<Tensor>& in, Tensor* y) {
    return BinaryReference(op, in[0], in[1], y);
  };
  ExpectGradients("binary", f, {a, b}, dy, {da, db}, 1e-3);
}

INSTANTIATE_TEST_SUITE_P(
    Ops, BinaryBackwardTest,
    ::testing::Values(
        BinaryCase{"add_same", BinaryOp::kAdd, {2, 3}, {2, 3}},
        BinaryCase{"add_bcast", BinaryOp::kAdd, {2, 3, 4}, {3, 1}},
        BinaryCase{"sub_both_bcast", BinaryOp::kSub, {1, 4}, {2, 3, 1}},
        BinaryCase{"mul_bcast", BinaryOp::kMul, {2, 3, 4}, {4}},
        BinaryCase{"mul_scalar", BinaryOp::kMul, {}, {2, 3}},
        BinaryCase{"div_bcast", BinaryOp::kDiv, {2, 1, 4}, {3, 1}},
        BinaryCase{"div_same", BinaryOp::kDiv, {3, 4}, {3, 4}},
        BinaryCase{"sub_same", BinaryOp::kSub, {3, 4}, {3, 4}},
        BinaryCase{"mul_same", BinaryOp::kMul, {2, 3, 2}, {2, 3, 2}},
        BinaryCase{"max_same", BinaryOp::kMax, {3, 4}, {3, 4}},
        BinaryCase{"min_same", BinaryOp::kMin, {3, 4}, {3, 4}},
        BinaryCase{"max_bcast", BinaryOp::kMax, {2, 3}, {3}},
        BinaryCase{"min_bcast", BinaryOp::kMin, {2, 1}, {2, 4}}),
    [](const auto& info) { return info.param.name; });

TEST(SumToShapeTest, SumsBroadcastDims) {
  Tensor x = Tensor::FromVector<float>({2, 3}, {1, 2, 3, 4, 5, 6});
  Tensor out;
  ASSERT_TRUE(SumToShape(x, {3}, &out).ok());
  EXPECT_EQ(out.ToVector<float>(), std::vector<float>({5, 7, 9}));
  ASSERT_TRUE(SumToShape(x, {2, 1}, &out).ok());
  EXPECT_EQ(out.ToVector<float>(), std::vector<float>({6, 15}));
  ASSERT_TRUE(SumToShape(x, {}, &out).ok());
  EXPECT_EQ(out.ToVector<float>(), std::vector<float>({21}));
  EXPECT_FALSE(SumToShape(x, {2}, &out).ok());
  EXPECT_FALSE(SumToShape(x, {4, 2, 3}, &out).ok());
}

// --- Reductions ------------------------------------------------------------

struct ReduceCase {
  std::string name;
  ReduceOp op;
  Shape x;
  std::vector<int64_t> axes;
  bool keepdims;
};

class ReductionBackwardTest : public ::testing::TestWithParam<ReduceCase> {};

TEST_P(ReductionBackwardTest, FiniteDifferences) {
  const ReduceCase& c = GetParam();
  std::mt19937 rng(29);
  Tensor x = Distinct(c.x, rng);
  if (c.op == ReduceOp::kLogSum || c.op == ReduceOp::kL1) {
    // LogSum needs positive sums; L1 a distance from the kink at 0.
    for (float& v : x.mutable_span<float>()) v = std::fabs(v) + 0.05f;
    if (c.op == ReduceOp::kL1) {
      for (int64_t i = 0; i < x.num_elements(); i += 2) {
        x.mutable_data<float>()[i] *= -1;
      }
    }
  }
  absl::StatusOr<Shape> out = ReduceOutputShape(c.x, c.axes, c.keepdims);
  ASSERT_TRUE(out.ok()) << out.status();
  Tensor dy = RandomFloat(*out, rng);
  Tensor dx;
  absl::Status s =
      ReductionBackward(c.op, x, c.axes, c.keepdims, false, dy, &dx);
  ASSERT_TRUE(s.ok()) << s;
  const ReduceCase cc = c;
  Fn f = [cc](const std::vector<Tensor>& in, Tensor* y) {
    return ReduceReference(cc.op, in[0], cc.axes, cc.keepdims, false, y);
  };
  ExpectGradients("reduction", f, {x}, dy, {dx}, 1e-3);
}

INSTANTIATE_TEST_SUITE_P(
    Ops, ReductionBackwardTest,
    ::testing::Values(
        ReduceCase{"sum_axis1_keep", ReduceOp::kSum, {2, 3, 4}, {1}, true},
        ReduceCase{"sum_02_drop", ReduceOp::kSum, {2, 3, 4}, {0, 2}, false},
        ReduceCase{"sum_all", ReduceOp::kSum, {2, 3, 4}, {}, false},
        ReduceCase{"mean_hw", ReduceOp::kMean, {2, 3, 4, 5}, {2, 3}, true},
        ReduceCase{"mean_neg_axis", ReduceOp::kMean, {3, 4}, {-1}, false},
        ReduceCase{"max_axis1", ReduceOp::kMax, {2, 5, 3}, {1}, true},
        ReduceCase{"max_all", ReduceOp::kMax, {3, 4}, {}, false},
        ReduceCase{"min_axis0", ReduceOp::kMin, {4, 3}, {0}, false},
        ReduceCase{"l1", ReduceOp::kL1, {2, 3, 4}, {1, 2}, true},
        ReduceCase{"l2", ReduceOp::kL2, {2, 3, 4}, {-1}, false},
        ReduceCase{"sum_square", ReduceOp::kSumSquare, {3, 4}, {0}, true},
        ReduceCase{"log_sum", ReduceOp::kLogSum, {2, 3, 4}, {1}, true},
        ReduceCase{"log_sum_exp", ReduceOp::kLogSumExp, {2, 5, 3}, {1}, false}),
    [](const auto& info) { return info.param.name; });

TEST(ReductionBackwardTest, TiesGoToTheFirstMaximum) {
  Tensor x = Tensor::FromVector<float>({2, 3}, {1, 5, 5, 2, 2, 0});
  Tensor dy = Tensor::FromVector<float>({2}, {1, 10});
  Tensor dx;
  ASSERT_TRUE(
      ReductionBackward(ReduceOp::kMax, x, {1}, false, false, dy, &dx).ok());
  EXPECT_EQ(dx.ToVector<float>(), std::vector<float>({0, 1, 0, 10, 0, 0}));
  EXPECT_EQ(
      ReductionBackward(ReduceOp::kProd, x, {1}, false, false, dy, &dx).code(),
      absl::StatusCode::kUnimplemented);
}

// --- Data movement ---------------------------------------------------------

TEST(TransposeBackwardTest, FiniteDifferences) {
  std::mt19937 rng(31);
  const std::vector<int64_t> perm = {2, 0, 3, 1};
  Tensor x = RandomFloat({2, 3, 4, 5}, rng);
  absl::StatusOr<Shape> out = TransposeOutputShape(x.shape(), perm);
  ASSERT_TRUE(out.ok());
  Tensor dy = RandomFloat(*out, rng);
  Tensor dx;
  ASSERT_TRUE(TransposeBackward(perm, dy, &dx).ok());
  Fn f = [perm](const std::vector<Tensor>& in, Tensor* y) {
    return TransposeReference(in[0], perm, y);
  };
  ExpectGradients("data_movement", f, {x}, dy, {dx}, 1e-2);
}

// Test-local forwards of Slice / Concat / Gather (plain loops).
absl::Status SliceForward(const Tensor& x, const std::vector<int64_t>& starts,
                          const std::vector<int64_t>& steps, const Shape& out,
                          Tensor* y) {
  *y = Tensor(DataType::kFloat32, out);
  std::vector<int64_t> idx(out.size(), 0);
  for (int64_t i = 0; i < y->num_elements(); ++i) {
    int64_t off = 0;
    for (size_t d = 0; d < out.size(); ++d) {
      off = off * x.dim(d) + starts[d] + idx[d] * steps[d];
    }
    y->mutable_data<float>()[i] = x.data<float>()[off];
    for (int d = static_cast<int>(out.size()) - 1; d >= 0; --d) {
      if (++idx[d] < out[d]) break;
      idx[d] = 0;
    }
  }
  return absl::OkStatus();
}

TEST(SliceBackwardTest, FiniteDifferences) {
  std::mt19937 rng(37);
  Tensor x = RandomFloat({4, 5, 6}, rng);
  const std::vector<int64_t> starts = {1, 0, 5}, steps = {2, 1, -2};
  const Shape out = {2, 5, 3};
  Tensor dy = RandomFloat(out, rng);
  Tensor dx;
  absl::Status s = SliceBackward(x.shape(), starts, steps, dy, &dx);
  ASSERT_TRUE(s.ok()) << s;
  Fn f = [&](const std::vector<Tensor>& in, Tensor* y) {
    return SliceForward(in[0], starts, steps, out, y);
  };
  ExpectGradients("data_movement", f, {x}, dy, {dx}, 1e-2);
  EXPECT_FALSE(
      SliceBackward(x.shape(), {3, 0, 5}, steps, dy, &dx).ok());  // 3+2 >= 4
}

absl::Status ConcatForward(const std::vector<Tensor>& in, int axis, Tensor* y) {
  Shape shape = in[0].shape();
  shape[axis] = 0;
  for (const Tensor& t : in) shape[axis] += t.dim(axis);
  *y = Tensor(DataType::kFloat32, shape);
  int64_t outer = 1, inner = 1;
  for (int i = 0; i < axis; ++i) outer *= shape[i];
  for (size_t i = axis + 1; i < shape.size(); ++i) inner *= shape[i];
  float* p = y->mutable_data<float>();
  for (int64_t o = 0; o < outer; ++o) {
    for (const Tensor& t : in) {
      const int64_t chunk = t.dim(axis) * inner;
      for (int64_t i = 0; i < chunk; ++i) *p++ = t.data<float>()[o * chunk + i];
    }
  }
  return absl::OkStatus();
}

TEST(ConcatBackwardTest, FiniteDifferencesAndSplit) {
  std::mt19937 rng(41);
  std::vector<Tensor> in = {RandomFloat({2, 1, 3}, rng),
                            RandomFloat({2, 3, 3}, rng),
                            RandomFloat({2, 2, 3}, rng)};
  Tensor dy = RandomFloat({2, 6, 3}, rng);
  std::vector<Tensor> dxs;
  std::vector<Shape> shapes = {in[0].shape(), in[1].shape(), in[2].shape()};
  absl::Status s = ConcatBackward(shapes, 1, dy, &dxs);
  ASSERT_TRUE(s.ok()) << s;
  Fn f = [](const std::vector<Tensor>& t, Tensor* y) {
    return ConcatForward(t, 1, y);
  };
  ExpectGradients("data_movement", f, in, dy, dxs, 1e-2);
  // Split is Concat's transpose: concatenating the pieces gives dy back, and
  // a missing piece is zeros.
  Tensor back;
  ASSERT_TRUE(SplitBackward(shapes, -2, dxs, &back).ok());
  EXPECT_EQ(back.ToVector<float>(), dy.ToVector<float>());
  ASSERT_TRUE(SplitBackward(shapes, 1, {dxs[0], Tensor(), dxs[2]}, &back).ok());
  EXPECT_EQ(back.data<float>()[1 * 3], 0.f);  // [0, 1, 0] is piece 1
  EXPECT_EQ(back.data<float>()[0], dy.data<float>()[0]);
  EXPECT_FALSE(ConcatBackward({{2, 1, 3}}, 1, dy, &dxs).ok());
}

TEST(GatherBackwardTest, FiniteDifferencesWithRepeatsAndNegatives) {
  std::mt19937 rng(43);
  Tensor data = RandomFloat({3, 5, 2}, rng);
  Tensor indices =
      Tensor::FromVector<int64_t>({2, 2}, {4, 0, -1, 2});  // 4 twice
  const int axis = 1;
  Tensor dy = RandomFloat({3, 2, 2, 2}, rng);
  Tensor dx;
  absl::Status s = GatherBackward(data.shape(), indices, axis, dy, &dx);
  ASSERT_TRUE(s.ok()) << s;
  Fn f = [&](const std::vector<Tensor>& in, Tensor* y) {
    *y = Tensor(DataType::kFloat32, {3, 2, 2, 2});
    float* p = y->mutable_data<float>();
    for (int64_t o = 0; o < 3; ++o) {
      for (int64_t j = 0; j < 4; ++j) {
        int64_t idx = indices.data<int64_t>()[j];
        if (idx < 0) idx += 5;
        for (int64_t i = 0; i < 2; ++i) {
          *p++ = in[0].data<float>()[(o * 5 + idx) * 2 + i];
        }
      }
    }
    return absl::OkStatus();
  };
  ExpectGradients("data_movement", f, {data}, dy, {dx}, 1e-2);
  Tensor bad = Tensor::FromVector<int32_t>({1}, {5});
  EXPECT_FALSE(
      GatherBackward(data.shape(), bad, axis, RandomFloat({3, 1, 2}, rng), &dx)
          .ok());
}

}  // namespace
}  // namespace quantd
