// Datasets are scanned once at upload and CreateJob answers from the
// verdict: NaN/Inf, corrupt zip members and labels outside the model's
// classes are refused at creation, with the field, the blob's digest and
// what to fix. Real stores in a temporary folder, real .npz files.
#include "server/dataset_verdicts.h"

#include <zip.h>

#include <cmath>
#include <fstream>
#include <limits>
#include <sstream>

#include "absl/strings/str_cat.h"
#include "engine/data/array_file.h"
#include "engine/data/npy.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "server/server_test_util.h"
#include "server/sqlite_db.h"
#include "server/upload_session.h"
#include "util/sha256.h"

namespace quantd {
namespace {

using server_test::PutOwned;
using server_test::ReadTestdata;
using ::testing::HasSubstr;
using ::testing::Not;

std::string ReadFile(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  std::stringstream s;
  s << f.rdbuf();
  return s.str();
}

class DatasetVerdictsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    service_ = std::make_unique<server_test::TestService>();
    core_ = service_->core.get();
    std::unique_ptr<ArrayFile> eval = std::move(*ArrayFile::Open(
        absl::StrCat(QUANTD_TESTDATA_DIR, "/fmnist/eval.npz")));
    input_ = *eval->ReadArray("input");
    label_ = *eval->ReadArray("label");
  }

  // fmnist/eval.npz's arrays (1000 samples, 10 classes) as .npz bytes.
  std::string Npz(const Tensor& input, const Tensor& label) {
    const std::string path = absl::StrCat(service_->root, "/made.npz");
    EXPECT_TRUE(WriteNpz(path, {{"input", input}, {"label", label}}).ok());
    return ReadFile(path);
  }
  Tensor InputWith(int64_t index, float value) {
    Tensor t = input_.Clone();
    t.mutable_data<float>()[index] = value;
    return t;
  }
  Tensor LabelWith(int64_t index, int64_t value) {
    Tensor t = label_.Clone();
    t.mutable_data<int64_t>()[index] = value;
    return t;
  }

  // An upload through the protocol, as UploadBlob does it.
  v1::Blob Upload(const std::string& bytes, const std::string& id = "up") {
    v1::UploadHeader h;
    h.set_upload_id(id);
    h.set_kind(v1::BLOB_KIND_DATASET);
    h.set_name("data.npz");
    h.set_size(static_cast<int64_t>(bytes.size()));
    h.set_sha256(Sha256Hex(bytes));
    UploadSession up(core_, "a");
    EXPECT_TRUE(up.Header(h).ok());
    EXPECT_TRUE(up.Chunk(bytes).ok());
    absl::StatusOr<v1::Blob> blob = up.Commit();
    EXPECT_TRUE(blob.ok()) << blob.status();
    return blob.ok() ? *blob : v1::Blob();
  }

  // Dynamic W8A8 of the fmnist MLP (10 classes) evaluated on `eval`.
  v1::CreateJobRequest Request(const std::string& eval_digest) {
    v1::CreateJobRequest r;
    v1::JobSpec* spec = r.mutable_spec();
    spec->mutable_model()->set_blob_sha256(
        Owned(ReadTestdata("fmnist_mlp/model.onnx")));
    spec->mutable_evaluation_data()->set_blob_sha256(eval_digest);
    spec->set_mode(v1::QUANT_MODE_DYNAMIC);
    spec->mutable_sensitivity()->set_disabled(true);
    return r;
  }
  // Stored and owned without a scan, as before the server scanned uploads.
  std::string Owned(const std::string& bytes) {
    return PutOwned(*service_->blobs, *service_->index, "a", bytes);
  }
  absl::Status Create(const v1::CreateJobRequest& r) {
    return core_->CreateJob("a", r).status();
  }
  void ExpectRefused(const absl::Status& s, const std::string& what) {
    EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << s;
    EXPECT_THAT(s.message(), HasSubstr(what));
    EXPECT_THAT(s.message(), Not(HasSubstr(service_->root)));
  }

  std::unique_ptr<server_test::TestService> service_;
  ServiceCore* core_ = nullptr;
  Tensor input_, label_;
};

TEST_F(DatasetVerdictsTest, UploadSucceedsAndCarriesTheVerdict) {
  const v1::Blob bad = Upload(
      Npz(InputWith(1234, std::numeric_limits<float>::quiet_NaN()), label_));
  ASSERT_TRUE(bad.has_dataset_check());
  EXPECT_FALSE(bad.dataset_check().ok());
  EXPECT_THAT(bad.dataset_check().reason(),
              HasSubstr("array 'input' has NaN at flat index 1234 (sample 1)"));
  // Kept with the blob: GetBlob answers with it.
  absl::StatusOr<v1::Blob> again = core_->GetBlob("a", bad.sha256());
  ASSERT_TRUE(again.ok()) << again.status();
  EXPECT_FALSE(again->dataset_check().ok());

  const v1::Blob good = Upload(Npz(input_, label_), "up-2");
  ASSERT_TRUE(good.has_dataset_check());
  EXPECT_TRUE(good.dataset_check().ok()) << good.dataset_check().reason();
  EXPECT_EQ(good.dataset_check().samples(), 1000);
  EXPECT_TRUE(good.dataset_check().has_labels());
  EXPECT_EQ(good.dataset_check().label_min(), 0);
  EXPECT_EQ(good.dataset_check().label_max(), 9);
  EXPECT_EQ(good.dataset_check().arrays_size(), 2);
  EXPECT_TRUE(Create(Request(good.sha256())).ok());
}

TEST_F(DatasetVerdictsTest, NaNInCalibrationDataIsRefusedAtCreation) {
  const v1::Blob bad = Upload(
      Npz(InputWith(1234, std::numeric_limits<float>::quiet_NaN()), label_));
  v1::CreateJobRequest r = Request(Owned(ReadTestdata("fmnist/eval.npz")));
  r.mutable_spec()->set_mode(v1::QUANT_MODE_STATIC);
  r.mutable_spec()->mutable_calibration_data()->set_blob_sha256(bad.sha256());
  ExpectRefused(Create(r),
                absl::StrCat("calibration_data: blob ", bad.sha256(),
                             ": array 'input' has NaN at flat index 1234"));
  EXPECT_THAT(Create(r).message(), HasSubstr("upload it again"));
}

TEST_F(DatasetVerdictsTest, InfInEvaluationDataIsRefusedAtCreation) {
  const v1::Blob bad =
      Upload(Npz(InputWith(5, std::numeric_limits<float>::infinity()), label_));
  ExpectRefused(Create(Request(bad.sha256())),
                absl::StrCat("evaluation_data: blob ", bad.sha256(),
                             ": array 'input' has Inf at flat index 5"));
}

TEST_F(DatasetVerdictsTest, CorruptZipMemberIsRefusedAtCreation) {
  // A stored member (as numpy.savez writes) with one byte changed after
  // zipping: 1.0f becomes 1.0000001f, so only the CRC-32 tells.
  Tensor ones = input_.Clone();
  for (int64_t i = 0; i < ones.num_elements(); ++i) {
    ones.mutable_data<float>()[i] = 1.0f;
  }
  const std::string path = absl::StrCat(service_->root, "/stored.npz");
  const std::string input = SerializeNpy(ones), label = SerializeNpy(label_);
  int error = 0;
  zip_t* z = zip_open(path.c_str(), ZIP_CREATE | ZIP_TRUNCATE, &error);
  ASSERT_NE(z, nullptr);
  for (const auto& [name, bytes] :
       {std::pair<const char*, const std::string*>{"input.npy", &input},
        {"label.npy", &label}}) {
    zip_source_t* src = zip_source_buffer(z, bytes->data(), bytes->size(), 0);
    const zip_int64_t i = zip_file_add(z, name, src, 0);
    ASSERT_GE(i, 0);
    ASSERT_EQ(zip_set_file_compression(z, i, ZIP_CM_STORE, 0), 0);
  }
  ASSERT_EQ(zip_close(z), 0);
  std::string bytes = ReadFile(path);
  const size_t at = bytes.find(std::string("\x00\x00\x80\x3f", 4));
  ASSERT_NE(at, std::string::npos);
  bytes[at + 4 * 1000] = '\x01';
  const v1::Blob bad = Upload(bytes);
  ExpectRefused(Create(Request(bad.sha256())),
                absl::StrCat("evaluation_data: blob ", bad.sha256(),
                             ": zip member 'input.npy' fails its CRC-32"));
}

TEST_F(DatasetVerdictsTest, LabelsBeyondTheModelsClassesAreRefused) {
  const v1::Blob bad = Upload(Npz(input_, LabelWith(17, 10)));
  EXPECT_TRUE(bad.dataset_check().ok());  // fine for a model of 11+ classes
  EXPECT_EQ(bad.dataset_check().label_max(), 10);
  ExpectRefused(
      Create(Request(bad.sha256())),
      absl::StrCat("evaluation_data: blob ", bad.sha256(),
                   ": array 'label' has class id 10 but the model's output "
                   "has 10 classes"));
}

TEST_F(DatasetVerdictsTest, NegativeLabelsAreRefused) {
  const v1::Blob bad = Upload(Npz(input_, LabelWith(3, -1)));
  ExpectRefused(Create(Request(bad.sha256())),
                "array 'label' has class id -1 at index 3");
}

TEST_F(DatasetVerdictsTest, CalibrationLabelsTheJobDoesNotReadAreNotChecked) {
  // Static PTQ with its own evaluation set never reads the calibration
  // set's labels.
  const v1::Blob calib = Upload(Npz(input_, LabelWith(0, 99)));
  v1::CreateJobRequest r = Request(Owned(ReadTestdata("fmnist/eval.npz")));
  r.mutable_spec()->set_mode(v1::QUANT_MODE_STATIC);
  r.mutable_spec()->mutable_calibration_data()->set_blob_sha256(calib.sha256());
  EXPECT_TRUE(Create(r).ok());
  // Without an evaluation set, its held-back part is evaluated: refused.
  r.mutable_spec()->clear_evaluation_data();
  ExpectRefused(Create(r), "calibration_data: blob ");
}

TEST_F(DatasetVerdictsTest, VerdictsAreNotShownToOtherTenants) {
  // Verdicts are kept per digest, but ownership is checked first: tenant b
  // naming tenant a's bad upload learns only that it has no such blob.
  const v1::Blob bad = Upload(
      Npz(InputWith(9, std::numeric_limits<float>::quiet_NaN()), label_));
  v1::CreateJobRequest r = Request(bad.sha256());
  r.mutable_spec()->mutable_model()->set_blob_sha256(
      PutOwned(*service_->blobs, *service_->index, "b",
               ReadTestdata("fmnist_mlp/model.onnx")));
  const absl::Status s = core_->CreateJob("b", r).status();
  ExpectRefused(s, "evaluation_data.blob_sha256: no blob");
  EXPECT_THAT(s.message(), Not(HasSubstr("NaN")));
  EXPECT_EQ(core_->GetBlob("b", bad.sha256()).status().code(),
            absl::StatusCode::kNotFound);
}

TEST_F(DatasetVerdictsTest, DatasetUploadedBeforeScanningIsScannedOnce) {
  const std::string digest =
      Owned(Npz(InputWith(7, std::numeric_limits<float>::quiet_NaN()), label_));
  BlobIndex& index = *service_->index;
  ASSERT_FALSE(index.FindScan(digest)->has_value());
  ExpectRefused(Create(Request(digest)), "has NaN at flat index 7");
  absl::StatusOr<std::optional<v1::DatasetCheck>> kept = index.FindScan(digest);
  ASSERT_TRUE(kept.ok() && kept->has_value());
  EXPECT_FALSE((*kept)->ok());
  EXPECT_EQ((*kept)->scan_version(), kDatasetScanVersion);
}

TEST_F(DatasetVerdictsTest, CreateJobAnswersFromTheStoredVerdict) {
  const std::string digest = Owned(ReadTestdata("fmnist/eval.npz"));
  v1::DatasetCheck verdict;
  verdict.set_ok(false);
  verdict.set_reason("recorded verdict");
  verdict.set_scan_version(kDatasetScanVersion);
  ASSERT_TRUE(service_->index->RecordScan(digest, verdict).ok());
  ExpectRefused(Create(Request(digest)), "recorded verdict");
  // A verdict of an older scan version is redone.
  verdict.set_scan_version(kDatasetScanVersion - 1);
  ASSERT_TRUE(service_->index->RecordScan(digest, verdict).ok());
  EXPECT_TRUE(Create(Request(digest)).ok());
  EXPECT_TRUE((*service_->index->FindScan(digest))->ok());
}

TEST_F(DatasetVerdictsTest, BlobIndexWithoutTheScanTableStillOpens) {
  const std::string path = absl::StrCat(service_->root, "/old-blobs.db");
  {
    std::unique_ptr<SqliteDb> db =
        std::move(*SqliteDb::Open(path, "blob index"));
    ASSERT_TRUE(
        db->Exec("CREATE TABLE blobs (tenant TEXT NOT NULL, sha256 TEXT NOT "
                 "NULL, kind INTEGER NOT NULL, name TEXT NOT NULL, size "
                 "INTEGER NOT NULL, create_time INTEGER NOT NULL, PRIMARY "
                 "KEY (tenant, sha256));")
            .ok());
  }
  absl::StatusOr<std::unique_ptr<BlobIndex>> index = BlobIndex::Open(path);
  ASSERT_TRUE(index.ok()) << index.status();
  const std::string digest(64, 'a');
  EXPECT_FALSE((*index)->FindScan(digest)->has_value());
  v1::DatasetCheck check;
  check.set_ok(true);
  ASSERT_TRUE((*index)->RecordScan(digest, check).ok());
  EXPECT_TRUE((*(*index)->FindScan(digest))->ok());
}

}  // namespace
}  // namespace quantd
