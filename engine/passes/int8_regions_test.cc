// The int8 region rules (int8_regions.h) on graph structure alone.
#include "engine/passes/int8_regions.h"

#include <algorithm>

#include "engine/testing/test_graphs.h"
#include "gtest/gtest.h"

namespace quantd {
namespace {

bool IsLayer(const Node& n) {
  return n.op_type == "Conv" || n.op_type == "Gemm";
}

std::set<std::string> LayerInputs(const Graph& g) {
  std::set<std::string> in;
  for (const Node& n : g.nodes) {
    if (IsLayer(n)) in.insert(n.input(0));
  }
  return in;
}

std::vector<Int8RegionValue> Extend(const Graph& g) {
  return ExtendInt8Regions(
      g, IsLayer, [](const std::string&) { return true; }, LayerInputs(g));
}

std::string SameAs(const std::vector<Int8RegionValue>& v,
                   const std::string& name) {
  for (const Int8RegionValue& r : v) {
    if (r.name == name) return r.same_as.empty() ? "(own)" : r.same_as;
  }
  return "(not quantized)";
}

TEST(Int8RegionsTest, ResidualBlocksStayInt8) {
  const Graph g = ResidualCnnGraph();
  const std::vector<Int8RegionValue> v = Extend(g);
  EXPECT_EQ(SameAs(v, "stem"), "(own)");      // the stem's Relu output
  EXPECT_EQ(SameAs(v, "pooled"), "stem");     // MaxPool: its input's params
  EXPECT_EQ(SameAs(v, "b1c2_out"), "(own)");  // residual Add operands
  EXPECT_EQ(SameAs(v, "b2c2_out"), "(own)");
  EXPECT_EQ(SameAs(v, "down_out"), "(own)");
  // r1 is a layer input already; r2 is read by GlobalAveragePool (float).
  EXPECT_EQ(SameAs(v, "r1"), "(not quantized)");
  EXPECT_EQ(SameAs(v, "r2"), "(not quantized)");
  EXPECT_EQ(SameAs(v, "s1"), "(not quantized)");  // the Relu's input
  EXPECT_EQ(v.size(), 5u);
  // Calibration observes the tails (not MaxPool outputs, not layer inputs).
  const std::set<std::string> c = Int8RegionCandidates(g, IsLayer);
  EXPECT_EQ(c, (std::set<std::string>{"b1c2_out", "b2c2_out", "down_out", "r2",
                                      "stem"}));
}

TEST(Int8RegionsTest, ValuesWithoutARangeOrAFloatReaderAreNotAdded) {
  Graph g = ResidualCnnGraph();
  // Without a range for down_out the Add's other operand stays float, but
  // b2c2_out still is an int8 reader's operand candidate: both are decided
  // by the ranges the caller has.
  const std::vector<Int8RegionValue> v = ExtendInt8Regions(
      g, IsLayer, [](const std::string& name) { return name != "down_out"; },
      LayerInputs(g));
  EXPECT_EQ(SameAs(v, "down_out"), "(not quantized)");
  // A float reader (Sigmoid) of the stem keeps it out, and with it the
  // MaxPool's output keeps its own parameters (it is a layer input).
  g.nodes.push_back(MakeNode("side", "Sigmoid", {"stem"}, "z"));
  const std::vector<Int8RegionValue> w = Extend(g);
  EXPECT_EQ(SameAs(w, "stem"), "(not quantized)");
  EXPECT_EQ(SameAs(w, "pooled"), "(not quantized)");
}

TEST(Int8RegionsTest, FloatLayersEndTheRegion) {
  const Graph g = ResidualCnnGraph();
  auto not_b1c2 = [](const Node& n) { return IsLayer(n) && n.name != "b1c2"; };
  std::set<std::string> inputs;
  for (const Node& n : g.nodes) {
    if (not_b1c2(n)) inputs.insert(n.input(0));
  }
  const std::vector<Int8RegionValue> v = ExtendInt8Regions(
      g, not_b1c2, [](const std::string&) { return true; }, inputs);
  // b1c2 runs in float: its output is not quantized, so add1 is not int8.
  EXPECT_EQ(SameAs(v, "b1c2_out"), "(not quantized)");
  EXPECT_EQ(SameAs(v, "b2c2_out"), "(own)");
}

TEST(Int8RegionsTest, GraphOutputsAreNeverAdded) {
  Graph g = ResidualCnnGraph();
  ValueInfo out;
  out.name = "stem";
  g.outputs.push_back(out);
  const std::vector<Int8RegionValue> v = Extend(g);
  EXPECT_EQ(SameAs(v, "stem"), "(not quantized)");
}

}  // namespace
}  // namespace quantd
