#include "engine/data/npy.h"

#include <cstdlib>
#include <fstream>
#include <string>

#include "absl/strings/str_cat.h"
#include "engine/data/array_file.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace quantd {
namespace {

using ::testing::HasSubstr;

// A version 1.0 .npy header (no data) with the given dict.
std::string NpyHeaderBytes(const std::string& dict) {
  std::string d = dict;
  d.append(118 - d.size(), ' ');
  d.push_back('\n');
  std::string out = "\x93NUMPY";
  out.push_back('\x01');
  out.push_back('\x00');
  out.push_back(static_cast<char>(d.size() & 0xff));
  out.push_back(static_cast<char>(d.size() >> 8));
  return out + d;
}

TEST(NpyTest, ParsesAHeaderNumpyWrites) {
  const std::string bytes = NpyHeaderBytes(
      "{'descr': '<f8', 'fortran_order': False, 'shape': (3, 4), }");
  int64_t needed = 0;
  absl::StatusOr<NpyHeader> h = ParseNpyHeader(bytes, &needed);
  ASSERT_TRUE(h.ok()) << h.status();
  EXPECT_EQ(h->dtype, DataType::kFloat32);
  EXPECT_TRUE(h->stored_float64);
  EXPECT_EQ(h->shape, (Shape{3, 4}));
  EXPECT_EQ(h->header_bytes, 129);  // 10-byte preamble + 119-byte dict
}

// Found by fuzz_npz (UBSan: signed overflow in SourceStream::Create): the
// element count fits int64 but its byte size does not.
TEST(NpyTest, RefusesAShapeWhoseByteSizeOverflows) {
  const std::string bytes = NpyHeaderBytes(
      "{'descr': '<f8', 'fortran_order': False, "
      "'shape': (2305843009213693952,), }");
  int64_t needed = 0;
  absl::StatusOr<NpyHeader> h = ParseNpyHeader(bytes, &needed);
  ASSERT_FALSE(h.ok());
  EXPECT_EQ(h.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(h.status().message(), HasSubstr("bytes of data"));
}

TEST(NpyTest, ArrayFileRefusesAnArrayTooLargeToAddress) {
  char tmpl[] = "/tmp/quantd_npy_test_XXXXXX";
  const std::string dir = mkdtemp(tmpl);
  const std::string path = dir + "/huge.npy";
  {
    std::ofstream f(path, std::ios::binary);
    f << NpyHeaderBytes(
        "{'descr': '<i8', 'fortran_order': False, "
        "'shape': (1152921504606846976, 2), }");
  }
  absl::StatusOr<std::unique_ptr<ArrayFile>> file = ArrayFile::Open(path);
  ASSERT_TRUE(file.ok()) << file.status();
  absl::StatusOr<std::unique_ptr<ArrayStream>> s = (*file)->OpenStream("");
  EXPECT_FALSE(s.ok());
  EXPECT_THAT(s.status().message(), HasSubstr("bytes of data"));
  std::system(absl::StrCat("rm -rf '", dir, "'").c_str());
}

}  // namespace
}  // namespace quantd
