// The bad-input catalogue's cases (include only from bad_inputs_test.cc):
// each is one request a hostile or careless client can send, the status
// code it must get, and words its message must contain. Add a case here
// when the server learns to refuse something new; the test then tells you
// to regenerate docs/BAD_INPUTS.md.
#ifndef QUANTD_SERVER_BAD_INPUTS_CASES_H_
#define QUANTD_SERVER_BAD_INPUTS_CASES_H_

#include <functional>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "engine/data/array_file.h"
#include "server/grpc_test_server.h"

namespace quantd {
namespace server_test {

struct BadInput {
  std::string area;   // the RPC or protocol step
  std::string input;  // what is sent, in words
  std::string code;   // the gRPC status code's name
  std::string says;   // a phrase the message must contain
  std::function<grpc::Status()> send;
};

class BadInputCases : public GrpcTestServer {
 protected:
  std::vector<BadInput> Cases() {
    std::vector<BadInput> all;
    using CaseList = std::vector<BadInput> (BadInputCases::*)();
    const CaseList lists[] = {
        &BadInputCases::AuthCases,        &BadInputCases::UploadCases,
        &BadInputCases::UploadLimitCases, &BadInputCases::SpecCases,
        &BadInputCases::DataCases,        &BadInputCases::TenantCases,
        &BadInputCases::JobCases};
    for (CaseList list : lists) {
      for (BadInput& c : (this->*list)()) all.push_back(std::move(c));
    }
    return all;
  }

  // One UploadBlob stream whose header is `header` after `edit`.
  grpc::Status UploadHeader(const std::function<void(v1::UploadHeader&)>& edit,
                            const std::vector<std::string>& chunks = {}) {
    v1::UploadBlobRequest first;
    v1::UploadHeader* h = first.mutable_header();
    h->set_kind(v1::BLOB_KIND_MODEL);
    h->set_upload_id("catalogue");
    h->set_size(5);
    h->set_sha256(Sha256Hex("hello"));
    edit(*h);
    std::vector<v1::UploadBlobRequest> stream = {first};
    for (const std::string& bytes : chunks) {
      stream.emplace_back().set_chunk(bytes);
    }
    v1::Blob blob;
    return UploadStream("tenant-a", stream, &blob);
  }

  grpc::Status Create(const std::string& tenant,
                      const v1::CreateJobRequest& request,
                      v1::Job* job = nullptr) {
    v1::Job ignored;
    auto ctx = Context(tenant);
    return stub_->CreateJob(ctx.get(), request, job ? job : &ignored);
  }

  // Tenant a's request with `edit` applied.
  std::function<grpc::Status()> CreateEdited(
      const std::function<void(v1::CreateJobRequest&)>& edit) {
    return [this, edit] {
      v1::CreateJobRequest r = MlpJob("tenant-a");
      edit(r);
      return Create("tenant-a", r);
    };
  }

  grpc::Status GetJob(const std::string& tenant, const std::string& name) {
    v1::GetJobRequest req;
    req.set_name(name);
    v1::Job job;
    auto ctx = Context(tenant);
    return stub_->GetJob(ctx.get(), req, &job);
  }

  // DownloadArtifact's status (the artifact's bytes are dropped).
  grpc::Status Download(const std::string& tenant, const std::string& job,
                        v1::ArtifactKind kind = v1::ARTIFACT_KIND_MODEL) {
    v1::DownloadArtifactRequest req;
    req.set_job(job);
    req.set_kind(kind);
    auto ctx = Context(tenant);
    auto reader = stub_->DownloadArtifact(ctx.get(), req);
    v1::DownloadArtifactResponse msg;
    while (reader->Read(&msg)) {
    }
    return reader->Finish();
  }

  // A job of tenant a that has finished (SUCCEEDED), made once.
  const v1::Job& FinishedJob() {
    if (finished_.name().empty()) {
      EXPECT_TRUE(Create("tenant-a", MlpJob("tenant-a"), &finished_).ok());
      grpc::Status s;
      Watch("tenant-a", finished_.name(), 0, &s);  // until it ends
    }
    return finished_;
  }

  std::vector<BadInput> AuthCases() {
    return {
        {"auth", "GetJob without a bearer token", "UNAUTHENTICATED", "token",
         [this] { return GetJob("", "jobs/job-x"); }},
        {"auth", "GetJob with an unknown token", "UNAUTHENTICATED", "token",
         [this] {
           v1::GetJobRequest req;
           req.set_name("jobs/job-x");
           v1::Job job;
           grpc::ClientContext ctx;
           ctx.AddMetadata("authorization", "Bearer not-a-token-0123456789");
           return stub_->GetJob(&ctx, req, &job);
         }},
    };
  }

  std::vector<BadInput> UploadCases() {
    return {
        {"UploadBlob", "first message is a chunk, not a header",
         "INVALID_ARGUMENT", "UploadHeader",
         [this] {
           std::vector<v1::UploadBlobRequest> stream(1);
           stream[0].set_chunk("bytes");
           v1::Blob blob;
           return UploadStream("tenant-a", stream, &blob);
         }},
        {"UploadBlob", "upload_id with a slash (\"../x\")", "INVALID_ARGUMENT",
         "upload_id",
         [this] {
           return UploadHeader([](auto& h) { h.set_upload_id("../x"); });
         }},
        {"UploadBlob", "kind unspecified", "INVALID_ARGUMENT", "kind",
         [this] {
           return UploadHeader(
               [](auto& h) { h.set_kind(v1::BLOB_KIND_UNSPECIFIED); });
         }},
        {"UploadBlob", "kind = 77 (no such enum value)", "INVALID_ARGUMENT",
         "kind",
         [this] {
           return UploadHeader(
               [](auto& h) { h.set_kind(static_cast<v1::BlobKind>(77)); });
         }},
        {"UploadBlob", "name of 300 bytes", "INVALID_ARGUMENT", "name",
         [this] {
           return UploadHeader(
               [](auto& h) { h.set_name(std::string(300, 'n')); });
         }},
        {"UploadBlob", "sha256 that is not 64 hex characters",
         "INVALID_ARGUMENT", "sha256",
         [this] { return UploadHeader([](auto& h) { h.set_sha256("abc"); }); }},
        {"UploadBlob", "negative size", "INVALID_ARGUMENT", "size",
         [this] { return UploadHeader([](auto& h) { h.set_size(-1); }); }},
    };
  }

  std::vector<BadInput> UploadLimitCases() {
    return {
        {"UploadBlob", "size past --max-upload-bytes (8 MiB here)",
         "RESOURCE_EXHAUSTED", "the limit is",
         [this] {
           return UploadHeader([](auto& h) { h.set_size(10 << 20); });
         }},
        {"UploadBlob",
         "a third unfinished 7 MiB upload under a 20 MiB quota (uploads in "
         "progress count)",
         "RESOURCE_EXHAUSTED", "limit",
         [this] {
           grpc::Status s;
           for (const char* id : {"held-1", "held-2", "held-3"}) {
             v1::UploadBlobRequest header;
             v1::UploadHeader* h = header.mutable_header();
             h->set_kind(v1::BLOB_KIND_DATASET);
             h->set_upload_id(id);
             h->set_size(7 << 20);
             h->set_sha256(std::string(64, 'c'));
             v1::UploadBlobRequest chunk;
             chunk.set_chunk("abandoned");
             v1::Blob blob;
             s = UploadStream("tenant-b", {header, chunk}, &blob);
           }
           return s;
         }},
        {"UploadBlob", "bytes that do not match the declared sha256",
         "INVALID_ARGUMENT", "sha256",
         [this] {
           return UploadHeader([](auto& h) { h.set_upload_id("wrong-digest"); },
                               {"HELLO"});
         }},
        {"UploadBlob", "more bytes than the declared size", "INVALID_ARGUMENT",
         "goes past",
         [this] {
           return UploadHeader([](auto& h) { h.set_upload_id("too-long"); },
                               {"hello", "!"});
         }},
        {"UploadBlob", "resume from an offset the server does not have",
         "FAILED_PRECONDITION", "from offset 0",
         [this] {
           return UploadHeader([](auto& h) {
             h.set_upload_id("resume-wrong");
             h.set_offset(3);
           });
         }},
        {"UploadBlob", "a second header in the same stream", "INVALID_ARGUMENT",
         "header",
         [this] {
           v1::UploadBlobRequest first;
           v1::UploadHeader* h = first.mutable_header();
           h->set_kind(v1::BLOB_KIND_MODEL);
           h->set_upload_id("two-headers");
           h->set_size(5);
           h->set_sha256(Sha256Hex("hello"));
           v1::Blob blob;
           return UploadStream("tenant-a", {first, first}, &blob);
         }},
    };
  }

  // Defined in bad_inputs_test.cc (spec fields, datasets, other tenants'
  // resources, job reads and changes).
  std::vector<BadInput> SpecCases();
  std::vector<BadInput> DataCases();
  std::vector<BadInput> TenantCases();
  std::vector<BadInput> JobCases();

  v1::Job finished_;
};

}  // namespace server_test
}  // namespace quantd

#endif  // QUANTD_SERVER_BAD_INPUTS_CASES_H_
