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

}  // namespace
}  // namespace quantd
