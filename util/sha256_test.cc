#include "util/sha256.h"

#include <cstdio>

#include "gtest/gtest.h"

namespace quantd {
namespace {

TEST(Sha256Test, KnownDigests) {
  EXPECT_EQ(Sha256Hex(""),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  EXPECT_EQ(Sha256Hex("abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
}

TEST(Sha256Test, FileMatchesBytes) {
  const std::string path = "/tmp/quantd_sha256_test.bin";
  std::string data(3 << 20, 'x');  // spans several read chunks
  FILE* f = std::fopen(path.c_str(), "wb");
  std::fwrite(data.data(), 1, data.size(), f);
  std::fclose(f);
  absl::StatusOr<std::string> d = Sha256File(path);
  ASSERT_TRUE(d.ok());
  EXPECT_EQ(*d, Sha256Hex(data));
  std::remove(path.c_str());
  EXPECT_FALSE(Sha256File("/nonexistent/file").ok());
}

TEST(Sha256Test, IncrementalMatchesOneShotAtEverySplit) {
  std::string data;
  for (int i = 0; i < 300; ++i) data.push_back(static_cast<char>(i * 7 + 3));
  for (size_t split : {size_t{0}, size_t{1}, size_t{63}, size_t{64}, size_t{65},
                       size_t{128}, size_t{299}, size_t{300}}) {
    Sha256 h;
    h.Update(absl::string_view(data).substr(0, split));
    EXPECT_EQ(h.HexDigest(), Sha256Hex(data.substr(0, split)));  // keeps state
    h.Update(absl::string_view(data).substr(split));
    EXPECT_EQ(h.HexDigest(), Sha256Hex(data)) << "split at " << split;
    EXPECT_EQ(h.bytes(), 300);
  }
  Sha256 empty;
  EXPECT_EQ(empty.HexDigest(), Sha256Hex(""));
  Sha256 moved = std::move(empty);
  moved.Update("abc");
  EXPECT_EQ(moved.HexDigest(), Sha256Hex("abc"));
}

TEST(Sha256Test, UpdateFromFileResumesAStateFromAPrefix) {
  const std::string path = "/tmp/quantd_sha256_prefix_test.bin";
  std::string data(3 << 20, '\0');
  for (size_t i = 0; i < data.size(); ++i) data[i] = static_cast<char>(i % 251);
  FILE* f = std::fopen(path.c_str(), "wb");
  std::fwrite(data.data(), 1, data.size(), f);
  std::fclose(f);
  Sha256 h;
  ASSERT_TRUE(h.UpdateFromFile(path, (1 << 20) + 5).ok());
  h.Update(absl::string_view(data).substr((1 << 20) + 5));
  EXPECT_EQ(h.HexDigest(), Sha256Hex(data));
  Sha256 whole;
  ASSERT_TRUE(whole.UpdateFromFile(path).ok());
  EXPECT_EQ(whole.HexDigest(), Sha256Hex(data));
  Sha256 too_long;
  EXPECT_EQ(too_long.UpdateFromFile(path, (3 << 20) + 1).code(),
            absl::StatusCode::kDataLoss);
  std::remove(path.c_str());
  EXPECT_EQ(Sha256().UpdateFromFile("/nonexistent/file").code(),
            absl::StatusCode::kNotFound);
}

}  // namespace
}  // namespace quantd
