// Shared by the data-movement op tests (data_movement_ops_test.cc and
// data_movement_ops_fill_test.cc): a registry holding just those ops, and
// short tensor builders. Include only from *_test.cc.
#ifndef QUANTD_ENGINE_TESTING_DATA_MOVEMENT_TEST_UTIL_H_
#define QUANTD_ENGINE_TESTING_DATA_MOVEMENT_TEST_UTIL_H_

#include <cstdint>
#include <limits>
#include <vector>

#include "engine/runtime/ops/op_util.h"
#include "engine/runtime/ops/register_ops.h"
#include "engine/testing/op_test_util.h"
#include "engine/testing/op_test_util_gtest.h"

namespace quantd {

inline const OpRegistry& TestRegistry() {
  static const OpRegistry* registry = [] {
    auto* r = new OpRegistry();
    RegisterDataMovementOps(*r);
    return r;
  }();
  return *registry;
}

namespace data_movement_test {

inline constexpr int64_t kInt64Max = std::numeric_limits<int64_t>::max();
inline constexpr int64_t kInt64Min = std::numeric_limits<int64_t>::min();

inline Tensor Iota(const Shape& shape) { return FloatIota(shape); }
inline Tensor F(Shape shape, std::vector<float> v) {
  return Tensor::FromVector<float>(shape, v);
}
inline Tensor I64(std::vector<int64_t> v) { return Int64Vector(v); }

}  // namespace data_movement_test
}  // namespace quantd

#endif  // QUANTD_ENGINE_TESTING_DATA_MOVEMENT_TEST_UTIL_H_
