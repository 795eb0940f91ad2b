// The bad-input catalogue: every kind of hostile or broken request a client
// can send, sent through the generated stub to a real gRPC service on
// loopback, with the status code and the words each one gets. The table in
// docs/BAD_INPUTS.md is this test's output: the test fails when the two
// differ, so the catalogue cannot drift from what the server does.
// Regenerate after a deliberate change with
//   QUANTD_UPDATE_CATALOGUE=1 build/server/server_bad_inputs_test
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <functional>
#include <sstream>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "engine/data/array_file.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "server/bad_inputs_cases.h"
#include "server/grpc_test_server.h"

namespace quantd {
namespace {

constexpr char kBegin[] = "<!-- catalogue:begin (generated) -->\n";
constexpr char kEnd[] = "<!-- catalogue:end -->\n";

std::string ReadFile(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  std::stringstream s;
  s << f.rdbuf();
  return s.str();
}

std::string CodeName(grpc::StatusCode code) {
  static const char* kNames[] = {"OK",
                                 "CANCELLED",
                                 "UNKNOWN",
                                 "INVALID_ARGUMENT",
                                 "DEADLINE_EXCEEDED",
                                 "NOT_FOUND",
                                 "ALREADY_EXISTS",
                                 "PERMISSION_DENIED",
                                 "RESOURCE_EXHAUSTED",
                                 "FAILED_PRECONDITION",
                                 "ABORTED",
                                 "OUT_OF_RANGE",
                                 "UNIMPLEMENTED",
                                 "INTERNAL",
                                 "UNAVAILABLE",
                                 "DATA_LOSS",
                                 "UNAUTHENTICATED"};
  const int i = static_cast<int>(code);
  return i >= 0 && i <= 16 ? kNames[i] : absl::StrCat("code ", i);
}

}  // namespace

namespace server_test {

std::vector<BadInput> BadInputCases::SpecCases() {
  auto spec = [this](const std::string& input, const std::string& says,
                     std::function<void(v1::JobSpec&)> edit,
                     const std::string& code = "INVALID_ARGUMENT") {
    return BadInput{"CreateJob", input, code, says,
                    CreateEdited([edit](v1::CreateJobRequest& r) {
                      edit(*r.mutable_spec());
                    })};
  };
  return {
      spec("no model", "model", [](v1::JobSpec& s) { s.clear_model(); }),
      spec("model.path (a server file) instead of an upload",
           "model.path is only accepted by quantd run-job",
           [](v1::JobSpec& s) { s.mutable_model()->set_path("/etc/passwd"); }),
      spec("model.blob_sha256 of a blob nobody uploaded",
           "model.blob_sha256: no blob",
           [](v1::JobSpec& s) {
             s.mutable_model()->set_blob_sha256(std::string(64, 'a'));
           }),
      spec("a dataset blob as the model", "not a valid ONNX model",
           [](v1::JobSpec& s) {
             s.mutable_model()->set_blob_sha256(
                 s.evaluation_data().blob_sha256());
           }),
      spec("mode = 99", "mode",
           [](v1::JobSpec& s) { s.set_mode(static_cast<v1::QuantMode>(99)); }),
      spec("method = 7", "method",
           [](v1::JobSpec& s) { s.set_method(static_cast<v1::Method>(7)); }),
      spec("calibration.method = 42", "calibration.method",
           [](v1::JobSpec& s) {
             s.mutable_calibration()->set_method(
                 static_cast<v1::CalibrationMethod>(42));
           }),
      spec("weights.type = 9", "weights.type",
           [](v1::JobSpec& s) {
             s.mutable_weights()->set_type(static_cast<v1::QuantDataType>(9));
           }),
      spec("weights.granularity = 17", "weights.granularity",
           [](v1::JobSpec& s) {
             s.mutable_weights()->set_granularity(
                 static_cast<v1::Granularity>(17));
           }),
      spec("a label value of 100 characters", "label",
           [](v1::JobSpec& s) {
             (*s.mutable_labels())["model"] = std::string(100, 'm');
           }),
      BadInput{"CreateJob", "request_id with spaces", "INVALID_ARGUMENT",
               "request_id", CreateEdited([](v1::CreateJobRequest& r) {
                 r.set_request_id("not an id");
               })},
      BadInput{"CreateJob", "request_id again with another priority",
               "ALREADY_EXISTS", "request_id",
               [this] {
                 v1::CreateJobRequest r = MlpJob("tenant-a");
                 r.set_request_id("same-request");
                 EXPECT_TRUE(Create("tenant-a", r).ok());
                 r.set_priority(5);
                 return Create("tenant-a", r);
               }},
  };
}

std::vector<BadInput> BadInputCases::DataCases() {
  // fmnist/eval.npz (the MLP's 10 classes) with one value changed, uploaded
  // as tenant a's evaluation data.
  auto eval_with = [this](const std::string& input, const std::string& says,
                          std::function<void(Tensor&, Tensor&)> edit) {
    return BadInput{
        "CreateJob", input, "INVALID_ARGUMENT", says, [this, edit] {
          std::unique_ptr<ArrayFile> eval = std::move(*ArrayFile::Open(
              absl::StrCat(QUANTD_TESTDATA_DIR, "/fmnist/eval.npz")));
          Tensor images = *eval->ReadArray("input");
          Tensor labels = *eval->ReadArray("label");
          edit(images, labels);
          const std::string path = absl::StrCat(root_, "/edited.npz");
          EXPECT_TRUE(
              WriteNpz(path, {{"input", images}, {"label", labels}}).ok());
          v1::CreateJobRequest r = MlpJob("tenant-a");
          r.mutable_spec()->mutable_evaluation_data()->set_blob_sha256(
              UploadBytesOrDie("tenant-a", ReadFile(path),
                               v1::BLOB_KIND_DATASET));
          return Create("tenant-a", r);
        }};
  };
  return {
      eval_with("evaluation data with a NaN", "has NaN at flat index 1234",
                [](Tensor& images, Tensor&) {
                  images.mutable_data<float>()[1234] = std::nanf("");
                }),
      eval_with("evaluation data with an Inf", "has Inf",
                [](Tensor& images, Tensor&) {
                  images.mutable_data<float>()[7] = HUGE_VALF;
                }),
      eval_with("a label 10 for a model with 10 classes",
                "has class id 10 but the model's output has 10 classes",
                [](Tensor&, Tensor& labels) {
                  labels.mutable_data<int64_t>()[17] = 10;
                }),
      eval_with("a negative label", "class id -1",
                [](Tensor&, Tensor& labels) {
                  labels.mutable_data<int64_t>()[3] = -1;
                }),
      BadInput{
          "CreateJob", "evaluation data cut off in the middle (truncated zip)",
          "INVALID_ARGUMENT", "evaluation_data",
          CreateEdited([this](v1::CreateJobRequest& r) {
            const std::string whole = ReadTestdata("fmnist/eval.npz");
            r.mutable_spec()->mutable_evaluation_data()->set_blob_sha256(
                UploadBytesOrDie("tenant-a", whole.substr(0, whole.size() / 2),
                                 v1::BLOB_KIND_DATASET));
          })},
  };
}

std::vector<BadInput> BadInputCases::TenantCases() {
  // Tenant b names tenant a's uploads in every DataRef field.
  auto other_tenants =
      [this](const std::string& field,
             std::function<void(v1::JobSpec&, const std::string&)> set) {
        return BadInput{
            "CreateJob", absl::StrCat(field, " = another tenant's upload"),
            "INVALID_ARGUMENT", absl::StrCat(field, ": no blob"), [this, set] {
              // Bytes only tenant a uploaded (b's job uses eval.npz).
              const std::string theirs = UploadOrDie(
                  "tenant-a", "fmnist/calib.npz", v1::BLOB_KIND_DATASET);
              v1::CreateJobRequest r = MlpJob("tenant-b");
              set(*r.mutable_spec(), theirs);
              return Create("tenant-b", r);
            }};
      };
  return {
      BadInput{"CreateJob", "model.blob_sha256 = another tenant's upload",
               "INVALID_ARGUMENT", "model.blob_sha256: no blob",
               [this] {
                 const std::string theirs =
                     UploadOrDie("tenant-a", "fmnist_cnn/model.onnx");
                 v1::CreateJobRequest r = MlpJob("tenant-b");
                 r.mutable_spec()->mutable_model()->set_blob_sha256(theirs);
                 return Create("tenant-b", r);
               }},
      other_tenants("calibration_data.blob_sha256",
                    [](v1::JobSpec& s, const std::string& d) {
                      s.set_mode(v1::QUANT_MODE_STATIC);
                      s.mutable_calibration_data()->set_blob_sha256(d);
                    }),
      other_tenants("evaluation_data.blob_sha256",
                    [](v1::JobSpec& s, const std::string& d) {
                      s.mutable_evaluation_data()->set_blob_sha256(d);
                    }),
      other_tenants("qat.train_data.blob_sha256",
                    [](v1::JobSpec& s, const std::string& d) {
                      s.set_method(v1::METHOD_QAT);
                      s.set_mode(v1::QUANT_MODE_STATIC);
                      *s.mutable_calibration_data() = s.evaluation_data();
                      s.mutable_qat()->mutable_train_data()->set_blob_sha256(d);
                    }),
      BadInput{"GetBlob", "another tenant's digest", "NOT_FOUND", "no blob",
               [this] {
                 v1::GetBlobRequest req;
                 req.set_sha256(
                     UploadOrDie("tenant-a", "fmnist_cnn/model.onnx"));
                 v1::Blob blob;
                 auto ctx = Context("tenant-b");
                 return stub_->GetBlob(ctx.get(), req, &blob);
               }},
      BadInput{"GetJob", "another tenant's job", "NOT_FOUND", "not found",
               [this] { return GetJob("tenant-b", FinishedJob().name()); }},
      BadInput{"CancelJob", "another tenant's job", "NOT_FOUND", "not found",
               [this] {
                 v1::CancelJobRequest req;
                 req.set_name(FinishedJob().name());
                 v1::Job job;
                 auto ctx = Context("tenant-b");
                 return stub_->CancelJob(ctx.get(), req, &job);
               }},
      BadInput{"DeleteJob", "another tenant's job", "NOT_FOUND", "not found",
               [this] {
                 v1::DeleteJobRequest req;
                 req.set_name(FinishedJob().name());
                 google::protobuf::Empty empty;
                 auto ctx = Context("tenant-b");
                 return stub_->DeleteJob(ctx.get(), req, &empty);
               }},
      BadInput{"WatchJob", "another tenant's job", "NOT_FOUND", "not found",
               [this] {
                 grpc::Status s;
                 Watch("tenant-b", FinishedJob().name(), 0, &s);
                 return s;
               }},
      BadInput{"DownloadArtifact", "another tenant's job", "NOT_FOUND",
               "not found",
               [this] { return Download("tenant-b", FinishedJob().name()); }},
      BadInput{"GetUploadStatus", "another tenant's upload id", "NOT_FOUND",
               "no upload in progress",
               [this] {
                 UploadHeader([](auto& h) { h.set_upload_id("half-done"); },
                              {"he"});
                 v1::GetUploadStatusRequest req;
                 req.set_upload_id("half-done");
                 v1::UploadStatus status;
                 auto ctx = Context("tenant-b");
                 return stub_->GetUploadStatus(ctx.get(), req, &status);
               }},
      BadInput{"ListJobs", "a page token issued to another tenant",
               "INVALID_ARGUMENT", "page_token",
               [this] {
                 FinishedJob();
                 EXPECT_TRUE(Create("tenant-a", MlpJob("tenant-a")).ok());
                 v1::ListJobsRequest req;
                 req.set_page_size(1);
                 v1::ListJobsResponse page;
                 auto a = Context("tenant-a");
                 EXPECT_TRUE(stub_->ListJobs(a.get(), req, &page).ok());
                 req.set_page_token(page.next_page_token());
                 auto b = Context("tenant-b");
                 return stub_->ListJobs(b.get(), req, &page);
               }},
  };
}

std::vector<BadInput> BadInputCases::JobCases() {
  return {
      BadInput{"GetJob", "name \"jobs/../etc\"", "INVALID_ARGUMENT", "name",
               [this] { return GetJob("tenant-a", "jobs/../etc"); }},
      BadInput{"GetJob", "a job that does not exist", "NOT_FOUND", "not found",
               [this] { return GetJob("tenant-a", "jobs/job-doesnotexist"); }},
      BadInput{"ListJobs", "a made-up page token", "INVALID_ARGUMENT",
               "page_token",
               [this] {
                 v1::ListJobsRequest req;
                 req.set_page_token("tampered");
                 v1::ListJobsResponse page;
                 auto ctx = Context("tenant-a");
                 return stub_->ListJobs(ctx.get(), req, &page);
               }},
      BadInput{"ListJobs", "page_size 5000", "INVALID_ARGUMENT", "page_size",
               [this] {
                 v1::ListJobsRequest req;
                 req.set_page_size(5000);
                 v1::ListJobsResponse page;
                 auto ctx = Context("tenant-a");
                 return stub_->ListJobs(ctx.get(), req, &page);
               }},
      BadInput{"WatchJob", "after_sequence -1", "INVALID_ARGUMENT",
               "after_sequence",
               [this] {
                 grpc::Status s;
                 Watch("tenant-a", FinishedJob().name(), -1, &s);
                 return s;
               }},
      BadInput{"CancelJob", "a job that already SUCCEEDED",
               "FAILED_PRECONDITION", "SUCCEEDED",
               [this] {
                 v1::CancelJobRequest req;
                 req.set_name(FinishedJob().name());
                 v1::Job job;
                 auto ctx = Context("tenant-a");
                 return stub_->CancelJob(ctx.get(), req, &job);
               }},
      BadInput{"DownloadArtifact", "kind unspecified", "INVALID_ARGUMENT",
               "kind",
               [this] {
                 return Download("tenant-a", FinishedJob().name(),
                                 v1::ARTIFACT_KIND_UNSPECIFIED);
               }},
  };
}

}  // namespace server_test

namespace {

class BadInputsTest : public ::testing::Test,
                      protected server_test::BadInputCases {
 protected:
  // Room for the fixtures; uploads up to 8 MiB, 20 MiB per tenant.
  void SetUp() override {
    ServiceLimits limits;
    limits.max_upload_bytes = 8 << 20;
    limits.max_tenant_storage_bytes = 20 << 20;
    StartServer(limits);
  }
  void TearDown() override { StopServer(); }
};

TEST_F(BadInputsTest, EveryBadInputGetsItsStatusAndTheCatalogueIsCurrent) {
  std::string table =
      "| # | area | bad input | status | the message says |\n"
      "|---|---|---|---|---|\n";
  int n = 0;
  for (const server_test::BadInput& c : Cases()) {
    SCOPED_TRACE(c.input);
    const grpc::Status s = c.send();
    if (std::getenv("QUANTD_CATALOGUE_VERBOSE") != nullptr) {
      std::printf("%s -> %s: %s\n", c.input.c_str(),
                  CodeName(s.error_code()).c_str(), s.error_message().c_str());
    }
    EXPECT_EQ(CodeName(s.error_code()), c.code) << s.error_message();
    EXPECT_THAT(s.error_message(), ::testing::HasSubstr(c.says));
    // Never a server path in what a client sees.
    EXPECT_THAT(s.error_message(), ::testing::Not(::testing::HasSubstr(root_)));
    absl::StrAppend(&table, "| ", ++n, " | ", c.area, " | ",
                    absl::StrReplaceAll(c.input, {{"|", "\\|"}}), " | `",
                    CodeName(s.error_code()), "` | ",
                    c.says.empty() ? "" : absl::StrCat("\"", c.says, "\""),
                    " |\n");
  }
  const std::string path =
      absl::StrCat(QUANTD_SOURCE_DIR, "/docs/BAD_INPUTS.md");
  std::string doc = ReadFile(path);
  const size_t begin = doc.find(kBegin);
  const size_t end = doc.find(kEnd);
  ASSERT_NE(begin, std::string::npos) << path << " lacks " << kBegin;
  ASSERT_NE(end, std::string::npos) << path << " lacks " << kEnd;
  const size_t from = begin + std::string(kBegin).size();
  const std::string current = doc.substr(from, end - from);
  if (std::getenv("QUANTD_UPDATE_CATALOGUE") != nullptr) {
    doc.replace(from, end - from, table);
    std::ofstream(path, std::ios::binary) << doc;
    return;
  }
  EXPECT_EQ(current, table)
      << path << " is out of date; regenerate it with "
      << "QUANTD_UPDATE_CATALOGUE=1 build/server/server_bad_inputs_test";
}

}  // namespace
}  // namespace quantd
