#include "engine/evaluation/op_profile.h"

#include "engine/testing/test_graphs.h"
#include "gtest/gtest.h"

namespace quantd {
namespace {

TEST(OpProfileTest, CountsEveryNodeOnceUnderItsType) {
  absl::StatusOr<std::unique_ptr<Executor>> ex =
      Executor::Create(LinearLayersGraph());
  ASSERT_TRUE(ex.ok()) << ex.status();
  Tensor x(DataType::kFloat32, {4, 8});
  for (float& v : x.mutable_span<float>()) v = 0.5f;
  absl::StatusOr<std::vector<OpTime>> p = ProfileOps(**ex, {{"x", x}}, 3);
  ASSERT_TRUE(p.ok()) << p.status();
  int nodes = 0;
  for (const OpTime& t : *p) {
    nodes += t.nodes;
    EXPECT_GE(t.ms, 0);
    if (t.op_type == "MatMul") {
      EXPECT_EQ(t.nodes, 3);
    }
  }
  EXPECT_EQ(nodes, static_cast<int>((*ex)->graph().nodes.size()));
  for (size_t i = 1; i < p->size(); ++i) {
    EXPECT_GE((*p)[i - 1].ms, (*p)[i].ms);  // most expensive first
  }
}

}  // namespace
}  // namespace quantd
