// GoogleTest companion of op_test_util.h, for op kernel *_test.cc files only
// (header-only, so it stays out of quantd_engine). Each test binary defines
// TestRegistry(), the registry its ops run from:
//
//   const OpRegistry& TestRegistry() {
//     static const OpRegistry* r = [] {
//       auto* r = new OpRegistry();
//       RegisterShapeOps(*r);
//       return r;
//     }();
//     return *r;
//   }
//
//   TEST(ReshapeTest, Basic) {
//     std::vector<Tensor> y = MustRun("Reshape", {FloatIota({2, 3}),
//                                                 Int64Vector({3, 2})});
//     EXPECT_EQ(y[0].shape(), Shape({3, 2}));
//     EXPECT_EQ(RunStatus("Reshape", {FloatIota({2, 3}), Int64Vector({4})})
//                   .code(), absl::StatusCode::kInvalidArgument);
//   }
#ifndef QUANTD_ENGINE_TESTING_OP_TEST_UTIL_GTEST_H_
#define QUANTD_ENGINE_TESTING_OP_TEST_UTIL_GTEST_H_

#include <cstdint>
#include <functional>
#include <random>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "engine/testing/op_test_util.h"
#include "gtest/gtest.h"

namespace quantd {

// Defined by each test binary.
const OpRegistry& TestRegistry();

inline absl::StatusOr<std::vector<Tensor>> RunOp(
    const char* op, const std::vector<Tensor>& inputs,
    const AttributeMap& attrs = {}, int64_t opset = 17, int num_outputs = 1) {
  SingleOpOptions options;
  options.opset = opset;
  options.num_outputs = num_outputs;
  options.registry = &TestRegistry();
  return RunSingleOp(op, inputs, attrs, options);
}

// Expects success. On failure returns undefined outputs, so the caller's
// expectations fail without crashing.
inline std::vector<Tensor> MustRun(const char* op,
                                   const std::vector<Tensor>& inputs,
                                   const AttributeMap& attrs = {},
                                   int64_t opset = 17, int num_outputs = 1) {
  absl::StatusOr<std::vector<Tensor>> out =
      RunOp(op, inputs, attrs, opset, num_outputs);
  EXPECT_TRUE(out.ok()) << out.status();
  if (!out.ok()) return std::vector<Tensor>(num_outputs);
  return *out;
}

inline absl::Status RunStatus(const char* op, const std::vector<Tensor>& inputs,
                              const AttributeMap& attrs = {},
                              int64_t opset = 17, int num_outputs = 1) {
  return RunOp(op, inputs, attrs, opset, num_outputs).status();
}

// f32 tensor holding 0, 1, 2, ... in row-major order.
inline Tensor FloatIota(const Shape& shape) {
  Tensor t(DataType::kFloat32, shape);
  for (int64_t i = 0; i < t.num_elements(); ++i) {
    t.mutable_data<float>()[i] = static_cast<float>(i);
  }
  return t;
}

// For naive reference loops: visits every index of `shape` in row-major
// order, and maps an index to its row-major offset.
inline void ForEachIndex(
    const Shape& shape,
    const std::function<void(const std::vector<int64_t>&)>& f) {
  if (NumElements(shape) == 0) return;
  std::vector<int64_t> index(shape.size(), 0);
  while (true) {
    f(index);
    int a = static_cast<int>(shape.size()) - 1;
    for (; a >= 0; --a) {
      if (++index[a] < shape[a]) break;
      index[a] = 0;
    }
    if (a < 0) return;
  }
}

inline int64_t Offset(const Shape& shape, const std::vector<int64_t>& index) {
  int64_t off = 0;
  for (size_t a = 0; a < shape.size(); ++a) off = off * shape[a] + index[a];
  return off;
}

inline Tensor RandomInt32(const Shape& shape, std::mt19937& rng) {
  Tensor t(DataType::kInt32, shape);
  for (int64_t i = 0; i < t.num_elements(); ++i) {
    t.mutable_data<int32_t>()[i] = static_cast<int32_t>(rng() % 1000);
  }
  return t;
}

// Rank in [1, max_rank], dims in [min_dim, max_dim].
inline Shape RandomShape(std::mt19937& rng, int max_rank, int64_t min_dim,
                         int64_t max_dim) {
  Shape s(1 + rng() % max_rank);
  for (int64_t& d : s) d = min_dim + rng() % (max_dim - min_dim + 1);
  return s;
}

}  // namespace quantd

#endif  // QUANTD_ENGINE_TESTING_OP_TEST_UTIL_GTEST_H_
