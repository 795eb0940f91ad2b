#include "engine/data/dataset_scan.h"

#include <zip.h>

#include <cmath>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <limits>
#include <sstream>

#include "absl/strings/str_cat.h"
#include "engine/data/array_file.h"
#include "engine/data/npy.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace quantd {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

Tensor Floats(Shape shape, float fill = 0.5f) {
  Tensor t(DataType::kFloat32, std::move(shape));
  float* p = t.mutable_data<float>();
  for (int64_t i = 0; i < t.num_elements(); ++i) p[i] = fill;
  return t;
}

Tensor Labels(const std::vector<int64_t>& ids) {
  Tensor t(DataType::kInt64, {static_cast<int64_t>(ids.size())});
  std::memcpy(t.mutable_raw_data(), ids.data(), ids.size() * 8);
  return t;
}

// A version 1.0 .npy of raw little-endian bytes with the given descr.
std::string RawNpy(const std::string& descr, const Shape& shape,
                   const std::string& data) {
  std::string dims;
  for (int64_t d : shape) absl::StrAppend(&dims, d, ",");
  std::string dict =
      absl::StrCat("{'descr': '", descr,
                   "', 'fortran_order': False, 'shape': (", dims, "), }");
  const size_t total = 10 + dict.size() + 1;
  dict.append((total + 63) / 64 * 64 - total, ' ');
  dict.push_back('\n');
  std::string out("\x93NUMPY\x01\x00", 8);
  out.push_back(static_cast<char>(dict.size() & 0xff));
  out.push_back(static_cast<char>(dict.size() >> 8));
  return out + dict + data;
}

class DatasetScanTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/quantd_dataset_scan_test_XXXXXX";
    dir_ = mkdtemp(tmpl);
  }
  void TearDown() override {
    std::system(absl::StrCat("rm -rf '", dir_, "'").c_str());
  }
  std::string Path(const std::string& name) {
    return absl::StrCat(dir_, "/", name);
  }
  std::string Npz(const std::string& name,
                  const std::vector<std::pair<std::string, Tensor>>& arrays) {
    EXPECT_TRUE(WriteNpz(Path(name), arrays).ok());
    return Path(name);
  }
  // An .npz whose members are stored (not deflated), as numpy.savez writes.
  std::string StoredNpz(
      const std::string& name,
      const std::vector<std::pair<std::string, std::string>>& members) {
    int error = 0;
    zip_t* z = zip_open(Path(name).c_str(), ZIP_CREATE | ZIP_TRUNCATE, &error);
    EXPECT_NE(z, nullptr);
    for (const auto& [member, bytes] : members) {
      zip_source_t* src = zip_source_buffer(z, bytes.data(), bytes.size(), 0);
      const zip_int64_t i = zip_file_add(z, member.c_str(), src, 0);
      EXPECT_GE(i, 0);
      EXPECT_EQ(zip_set_file_compression(z, i, ZIP_CM_STORE, 0), 0);
    }
    EXPECT_EQ(zip_close(z), 0);
    return Path(name);
  }
  std::string WriteFile(const std::string& name, const std::string& bytes) {
    std::ofstream(Path(name), std::ios::binary) << bytes;
    return Path(name);
  }
  static std::string ReadFile(const std::string& path) {
    std::ifstream f(path, std::ios::binary);
    std::stringstream s;
    s << f.rdbuf();
    return s.str();
  }
  DatasetScan Scan(const std::string& path, const ScanOptions& options = {}) {
    absl::StatusOr<DatasetScan> scan = ScanDatasetFile(path, options);
    EXPECT_TRUE(scan.ok()) << scan.status();
    return scan.ok() ? *scan : DatasetScan{};
  }

  std::string dir_;
};

TEST_F(DatasetScanTest, GoodFileRecordsArraysSamplesAndLabelRange) {
  DatasetScan scan =
      Scan(Npz("good.npz", {{"input", Floats({6, 3})},
                            {"label", Labels({2, 0, 4, 1, 4, 3})}}));
  EXPECT_TRUE(scan.ok) << scan.reason;
  EXPECT_EQ(scan.samples, 6);
  EXPECT_TRUE(scan.has_labels);
  EXPECT_EQ(scan.label_min, 0);
  EXPECT_EQ(scan.label_max, 4);
  ASSERT_EQ(scan.arrays.size(), 2u);
  EXPECT_EQ(scan.arrays[0].name, "input");
  EXPECT_EQ(scan.arrays[0].dtype, "f32");
  EXPECT_EQ(scan.arrays[0].shape, (Shape{6, 3}));
  EXPECT_EQ(scan.arrays[1].shape, (Shape{6}));
}

TEST_F(DatasetScanTest, DeflatedFixtureIsClean) {
  DatasetScan scan =
      Scan(absl::StrCat(QUANTD_TESTDATA_DIR, "/fmnist/calib.npz"));
  EXPECT_TRUE(scan.ok) << scan.reason;
  EXPECT_TRUE(scan.has_labels);
  EXPECT_EQ(scan.label_min, 0);
  EXPECT_EQ(scan.label_max, 9);
  EXPECT_GT(scan.samples, 0);
}

TEST_F(DatasetScanTest, NaNNamesArrayFlatIndexAndSample) {
  Tensor x = Floats({3, 4});
  x.mutable_data<float>()[7] = std::numeric_limits<float>::quiet_NaN();
  DatasetScan scan = Scan(Npz("nan.npz", {{"input", x}}));
  EXPECT_FALSE(scan.ok);
  EXPECT_THAT(scan.reason,
              HasSubstr("array 'input' has NaN at flat index 7 (sample 1)"));
  EXPECT_THAT(scan.reason, Not(HasSubstr(dir_)));
}

TEST_F(DatasetScanTest, InfInStoredMemberIsFound) {
  Tensor x = Floats({2, 2});
  x.mutable_data<float>()[3] = -std::numeric_limits<float>::infinity();
  DatasetScan scan =
      Scan(StoredNpz("inf.npz", {{"input.npy", SerializeNpy(x)},
                                 {"label.npy", SerializeNpy(Labels({0, 1}))}}));
  EXPECT_FALSE(scan.ok);
  EXPECT_THAT(scan.reason,
              HasSubstr("array 'input' has -Inf at flat index 3 (sample 1)"));
}

TEST_F(DatasetScanTest, Float64BeyondFloat32RangeIsRefused) {
  const double values[] = {1.0, 1e300};
  DatasetScan scan = Scan(WriteFile(
      "big.npy", RawNpy("<f8", {2},
                        std::string(reinterpret_cast<const char*>(values),
                                    sizeof(values)))));
  EXPECT_FALSE(scan.ok);
  EXPECT_THAT(scan.reason, HasSubstr("flat index 1"));
  EXPECT_THAT(scan.reason, HasSubstr("beyond float32's range"));
}

TEST_F(DatasetScanTest, Float16InfIsFound) {
  const uint16_t values[] = {0x3c00, 0x7c00};  // 1.0, +Inf
  DatasetScan scan = Scan(WriteFile(
      "half.npy", RawNpy("<f2", {2},
                         std::string(reinterpret_cast<const char*>(values),
                                     sizeof(values)))));
  EXPECT_FALSE(scan.ok);
  EXPECT_THAT(scan.reason, HasSubstr("has Inf at flat index 1"));
}

TEST_F(DatasetScanTest, CorruptByteInStoredMemberFailsCrc) {
  Tensor x = Floats({64, 16}, 1.0f);
  const std::string path =
      StoredNpz("crc.npz", {{"input.npy", SerializeNpy(x)}});
  ASSERT_TRUE(Scan(path).ok);
  // 1.0f is 00 00 80 3f: make one value 1.0000001f, still finite, so
  // only the CRC can tell.
  std::string bytes = ReadFile(path);
  const std::string one("\x00\x00\x80\x3f", 4);
  const size_t at = bytes.find(one + one + one + one);
  ASSERT_NE(at, std::string::npos);
  bytes[at + 4 * 100] = '\x01';
  WriteFile("crc.npz", bytes);
  DatasetScan scan = Scan(path);
  EXPECT_FALSE(scan.ok);
  EXPECT_THAT(scan.reason, HasSubstr("zip member 'input.npy'"));
  EXPECT_THAT(scan.reason, HasSubstr("CRC-32"));
}

TEST_F(DatasetScanTest, CorruptByteInDeflatedMemberIsFound) {
  const std::string path =
      Npz("deflated.npz", {{"input", Floats({256, 64}, 1.0f)}});
  ASSERT_TRUE(Scan(path).ok);
  // The member's compressed bytes start after its local header (30 bytes,
  // the name, no extra field here); damage one in the middle.
  std::string bytes = ReadFile(path);
  ASSERT_GT(bytes.size(), 200u);
  bytes[30 + std::strlen("input.npy") + 20] ^= 0x55;
  WriteFile("deflated.npz", bytes);
  DatasetScan scan = Scan(path);
  EXPECT_FALSE(scan.ok);
  EXPECT_THAT(scan.reason, HasSubstr("zip member 'input.npy'"));
}

TEST_F(DatasetScanTest, SingleNpyFileIsScanned) {
  DatasetScan scan = Scan(WriteFile("one.npy", SerializeNpy(Floats({5, 3}))));
  EXPECT_TRUE(scan.ok) << scan.reason;
  EXPECT_EQ(scan.samples, 5);
  ASSERT_EQ(scan.arrays.size(), 1u);
  EXPECT_EQ(scan.arrays[0].name, "");
  EXPECT_FALSE(scan.has_labels);
}

TEST_F(DatasetScanTest, NegativeLabelIsRefused) {
  DatasetScan scan = Scan(Npz("neg.npz", {{"input", Floats({4, 2})},
                                          {"label", Labels({0, 1, -3, 1})}}));
  EXPECT_FALSE(scan.ok);
  EXPECT_THAT(scan.reason,
              HasSubstr("array 'label' has class id -3 at index 2"));
}

TEST_F(DatasetScanTest, FloatLabelsAreRefused) {
  DatasetScan scan = Scan(
      Npz("flabel.npz", {{"input", Floats({4, 2})}, {"label", Floats({4})}}));
  EXPECT_FALSE(scan.ok);
  EXPECT_THAT(scan.reason, HasSubstr("must be a 1-D int64 (or int32)"));
}

TEST_F(DatasetScanTest, SampleCountsMustAgree) {
  DatasetScan scan = Scan(
      Npz("count.npz", {{"input", Floats({5, 2})}, {"label", Labels({0})}}));
  EXPECT_FALSE(scan.ok);
  EXPECT_THAT(scan.reason,
              HasSubstr("array 'label' has 1 samples but array 'input' "
                        "has 5"));
}

TEST_F(DatasetScanTest, NotADatasetIsAVerdictNotAnError) {
  DatasetScan scan = Scan(WriteFile("junk.npz", "this is not a zip file"));
  EXPECT_FALSE(scan.ok);
  EXPECT_THAT(scan.reason, HasSubstr("neither a .npy array nor"));
  EXPECT_THAT(scan.reason, Not(HasSubstr(dir_)));
}

TEST_F(DatasetScanTest, MissingFileIsAnError) {
  EXPECT_FALSE(ScanDatasetFile(Path("absent.npz")).ok());
}

TEST_F(DatasetScanTest, ReadsInChunksOfTheConfiguredSize) {
  // 4 MB of floats, read with 64 KiB chunks: the bad value past the
  // first chunks is found at its true index, and no read asks for more.
  Tensor x = Floats({1000, 1000});
  x.mutable_data<float>()[654321] = std::numeric_limits<float>::quiet_NaN();
  ScanOptions options;
  options.chunk_bytes = 64 * 1024;
  const std::string good = StoredNpz(
      "big_good.npz", {{"input.npy", SerializeNpy(Floats({1000, 1000}))}});
  DatasetScan scan = Scan(good, options);
  EXPECT_TRUE(scan.ok) << scan.reason;
  EXPECT_GE(scan.stats.bytes_read, 4000000);
  EXPECT_LE(scan.stats.largest_read, 64 * 1024);
  EXPECT_GE(scan.stats.reads, 4000000 / (64 * 1024));

  DatasetScan bad = Scan(Npz("big_bad.npz", {{"input", x}}), options);
  EXPECT_FALSE(bad.ok);
  EXPECT_THAT(bad.reason, HasSubstr("NaN at flat index 654321 (sample 654)"));
  EXPECT_LE(bad.stats.largest_read, 64 * 1024);
}

TEST_F(DatasetScanTest, LabelRangeAgainstClasses) {
  DatasetScan scan = Scan(Npz(
      "range.npz", {{"input", Floats({3, 2})}, {"label", Labels({0, 9, 3})}}));
  ASSERT_TRUE(scan.ok) << scan.reason;
  EXPECT_TRUE(CheckLabelRange(scan, 10).ok());
  EXPECT_TRUE(CheckLabelRange(scan, 0).ok());  // unknown
  absl::Status s = CheckLabelRange(scan, 5);
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(s.message(), HasSubstr("class id 9"));
  EXPECT_THAT(s.message(), HasSubstr("5 classes"));
}

}  // namespace
}  // namespace quantd
