#include "engine/export/external_data.h"

#include <cstring>
#include <map>
#include <string>
#include <vector>

#include "gtest/gtest.h"

namespace quantd {
namespace {

onnx::ModelProto ModelWith(const std::map<std::string, std::string>& raw) {
  onnx::ModelProto model;
  for (const auto& [name, bytes] : raw) {
    onnx::TensorProto* t = model.mutable_graph()->add_initializer();
    t->set_name(name);
    t->set_data_type(onnx::TensorProto::UINT8);
    t->add_dims(static_cast<int64_t>(bytes.size()));
    t->set_raw_data(bytes);
  }
  return model;
}

std::map<std::string, std::string> Entries(const onnx::TensorProto& t) {
  std::map<std::string, std::string> out;
  for (const auto& e : t.external_data()) out[e.key()] = e.value();
  return out;
}

TEST(MoveToExternalDataTest, LargeTensorsMoveAlignedSmallOnesStay) {
  const std::string a(3000, 'a'), b(5000, 'b'), small(10, 's');
  onnx::ModelProto model = ModelWith({{"a", a}, {"b", b}, {"small", small}});
  std::string data;
  ExternalDataOptions options;
  options.min_tensor_bytes = 1024;
  options.alignment = 4096;
  ASSERT_TRUE(MoveToExternalData(&model, "m.data", options, &data).ok());

  const auto& init = model.graph().initializer();
  ASSERT_EQ(init.size(), 3);
  for (const onnx::TensorProto& t : init) {
    if (t.name() == "small") {
      EXPECT_EQ(t.data_location(), onnx::TensorProto::DEFAULT);
      EXPECT_EQ(t.raw_data(), small);
      continue;
    }
    EXPECT_EQ(t.data_location(), onnx::TensorProto::EXTERNAL);
    EXPECT_FALSE(t.has_raw_data());
    EXPECT_EQ(t.dims(0), t.name() == "a" ? 3000 : 5000);
    std::map<std::string, std::string> e = Entries(t);
    EXPECT_EQ(e["location"], "m.data");
    const size_t offset = std::stoul(e["offset"]);
    const size_t length = std::stoul(e["length"]);
    EXPECT_EQ(offset % 4096, 0u) << t.name();
    ASSERT_LE(offset + length, data.size());
    EXPECT_EQ(data.substr(offset, length), t.name() == "a" ? a : b);
  }
  EXPECT_EQ(data.size(), 4096u + 5000u);  // a, padding, b
}

TEST(MoveToExternalDataTest, AppendsAfterExistingBytes) {
  onnx::ModelProto model = ModelWith({{"w", std::string(2000, 'w')}});
  std::string data = "xyz";
  ExternalDataOptions options;
  options.alignment = 64;
  ASSERT_TRUE(MoveToExternalData(&model, "d", options, &data).ok());
  EXPECT_EQ(Entries(model.graph().initializer(0))["offset"], "64");
  EXPECT_EQ(data.substr(0, 3), "xyz");
  EXPECT_EQ(data.size(), 64u + 2000u);
}

TEST(MoveToExternalDataTest, RefusesLocationsOutsideTheModelsFolder) {
  const std::vector<std::string> locations = {"",
                                              ".",
                                              "..",
                                              "../x.data",
                                              "/tmp/x.data",
                                              "sub/x.data",
                                              std::string("x\0y", 3)};
  for (const std::string& location : locations) {
    onnx::ModelProto model = ModelWith({{"w", std::string(2000, 'w')}});
    const onnx::ModelProto before = model;
    std::string data;
    absl::Status s = MoveToExternalData(&model, location, {}, &data);
    EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << location;
    EXPECT_EQ(model.SerializeAsString(), before.SerializeAsString());
    EXPECT_TRUE(data.empty());
  }
}

TEST(MoveToExternalDataTest, RefusesTensorsAlreadyExternalAndChangesNothing) {
  onnx::ModelProto model =
      ModelWith({{"a", std::string(2000, 'a')}, {"b", std::string(2000, 'b')}});
  model.mutable_graph()->mutable_initializer(1)->set_data_location(
      onnx::TensorProto::EXTERNAL);
  const onnx::ModelProto before = model;
  std::string data;
  absl::Status s = MoveToExternalData(&model, "d", {}, &data);
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(s.message().find("'b'"), absl::string_view::npos) << s;
  EXPECT_EQ(model.SerializeAsString(), before.SerializeAsString());
  EXPECT_TRUE(data.empty());
}

TEST(MoveToExternalDataTest, TypedFieldTensorsStayInline) {
  onnx::ModelProto model;
  onnx::TensorProto* t = model.mutable_graph()->add_initializer();
  t->set_name("typed");
  t->set_data_type(onnx::TensorProto::FLOAT);
  t->add_dims(1000);
  for (int i = 0; i < 1000; ++i) t->add_float_data(1.0f * i);
  std::string data;
  ASSERT_TRUE(MoveToExternalData(&model, "d", {}, &data).ok());
  EXPECT_TRUE(data.empty());
  EXPECT_EQ(model.graph().initializer(0).float_data_size(), 1000);
}

}  // namespace
}  // namespace quantd
