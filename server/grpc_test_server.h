// A real quantd gRPC service on loopback, in process, for tests (include
// only from *_test.cc): real SQLite and blob stores in a temporary folder,
// a started scheduler, two tenants ("tenant-a", "tenant-b") with bearer
// tokens, and the generated client stub.
//
//   class MyTest : public ::testing::Test, protected GrpcTestServer {
//     void SetUp() override { StartServer(); }
//     void TearDown() override { StopServer(); }
//   };
//   auto ctx = Context("tenant-a");
//   stub_->GetJob(ctx.get(), request, &job);
#ifndef QUANTD_SERVER_GRPC_TEST_SERVER_H_
#define QUANTD_SERVER_GRPC_TEST_SERVER_H_

#include <stdlib.h>

#include <algorithm>
#include <cstdlib>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "grpcpp/grpcpp.h"
#include "gtest/gtest.h"
#include "server/auth.h"
#include "server/event_hub.h"
#include "server/grpc_service.h"
#include "server/server_test_util.h"
#include "util/sha256.h"

namespace quantd {
namespace server_test {

inline constexpr char kTestTokens[] =
    "tenant-a token-of-tenant-a-0123\ntenant-b token-of-tenant-b-0123\n";

class GrpcTestServer {
 protected:
  // Limits as the gRPC tests want them: the fixtures fit once in a tenant's
  // storage.
  static ServiceLimits TestLimits() {
    ServiceLimits limits;
    limits.max_tenant_storage_bytes = 3 << 20;
    return limits;
  }

  void StartServer(const ServiceLimits& limits = TestLimits()) {
    char tmpl[] = "/tmp/quantd_grpc_XXXXXX";
    root_ = mkdtemp(tmpl);
    blobs_ = std::move(*BlobStore::Open(root_));
    jobs_ = std::move(*JobStore::Open(root_ + "/jobs.db", "0123456789abcdef"));
    auth_ = *Authenticator::FromText(kTestTokens);
    SchedulerOptions so;
    so.runner.on_event = [this](const v1::JobEvent& e) {
      hub_.Publish(std::string(JobIdOfOwnName(e.job())));
    };
    index_ = std::move(*BlobIndex::Open(root_ + "/blobs.db"));
    scheduler_ = std::make_unique<Scheduler>(jobs_.get(), blobs_.get(),
                                             index_.get(), so);
    ASSERT_TRUE(scheduler_->Start().ok());
    core_ = std::make_unique<ServiceCore>(
        jobs_.get(), blobs_.get(), index_.get(), scheduler_.get(), limits);
    GrpcServiceOptions go;
    go.download_chunk_bytes = 4096;  // several chunks per artifact
    service_ = std::make_unique<GrpcService>(core_.get(), &auth_, &hub_, go);
    grpc::ServerBuilder builder;
    int port = 0;
    builder.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(),
                             &port);
    // The smallest window `quantd serve` accepts, so every test stream
    // larger than 64 KiB waits on HTTP/2 flow control at least once.
    ConfigureServerTransport(&builder, 65535);
    builder.RegisterService(service_.get());
    server_ = builder.BuildAndStart();
    ASSERT_NE(port, 0);
    stub_ = v1::QuantizationService::NewStub(grpc::CreateChannel(
        absl::StrCat("127.0.0.1:", port), grpc::InsecureChannelCredentials()));
  }

  void StopServer() {
    if (scheduler_ != nullptr) scheduler_->Shutdown(absl::ZeroDuration());
    hub_.CloseAll();
    if (server_ != nullptr) server_->Shutdown();
    std::system(absl::StrCat("rm -rf '", root_, "'").c_str());
  }

  // A call context with `tenant`'s token ("": no token).
  std::unique_ptr<grpc::ClientContext> Context(const std::string& tenant) {
    auto c = std::make_unique<grpc::ClientContext>();
    if (!tenant.empty()) {
      c->AddMetadata("authorization",
                     absl::StrCat("Bearer token-of-", tenant, "-0123"));
    }
    return c;
  }

  // Streams `bytes` from `offset` in chunks; `declared` overrides the
  // digest; `stop_at` ends the stream early.
  grpc::Status Upload(const std::string& tenant, const std::string& id,
                      const std::string& bytes, int64_t offset, v1::Blob* blob,
                      const std::string& declared = "",
                      size_t stop_at = std::string::npos,
                      v1::BlobKind kind = v1::BLOB_KIND_MODEL) {
    v1::UploadBlobRequest req;
    v1::UploadHeader* h = req.mutable_header();
    h->set_kind(kind);
    h->set_upload_id(id);
    h->set_size(static_cast<int64_t>(bytes.size()));
    h->set_sha256(declared.empty() ? Sha256Hex(bytes) : declared);
    h->set_offset(offset);
    std::vector<v1::UploadBlobRequest> stream = {req};
    const size_t end = std::min(stop_at, bytes.size());
    for (size_t at = offset; at < end; at += 30000) {
      v1::UploadBlobRequest chunk;
      chunk.set_chunk(bytes.substr(at, std::min<size_t>(30000, end - at)));
      stream.push_back(chunk);
    }
    return UploadStream(tenant, stream, blob);
  }

  // Sends these messages as one UploadBlob stream.
  grpc::Status UploadStream(const std::string& tenant,
                            const std::vector<v1::UploadBlobRequest>& stream,
                            v1::Blob* blob) {
    auto ctx = Context(tenant);
    auto writer = stub_->UploadBlob(ctx.get(), blob);
    for (const v1::UploadBlobRequest& m : stream) {
      if (!writer->Write(m)) break;
    }
    writer->WritesDone();
    return writer->Finish();
  }

  std::string UploadOrDie(const std::string& tenant, const std::string& rel,
                          v1::BlobKind kind = v1::BLOB_KIND_MODEL) {
    return UploadBytesOrDie(tenant, ReadTestdata(rel), kind);
  }

  std::string UploadBytesOrDie(const std::string& tenant,
                               const std::string& bytes,
                               v1::BlobKind kind = v1::BLOB_KIND_MODEL) {
    v1::Blob blob;
    const grpc::Status s = Upload(tenant, "up-" + std::to_string(++uploads_),
                                  bytes, 0, &blob, "", std::string::npos, kind);
    EXPECT_TRUE(s.ok()) << s.error_message();
    return blob.sha256();
  }

  // A small dynamic-mode job (no calibration set) on the MLP fixture.
  v1::CreateJobRequest MlpJob(const std::string& tenant) {
    v1::CreateJobRequest r;
    r.mutable_spec()->mutable_model()->set_blob_sha256(
        UploadOrDie(tenant, "fmnist_mlp/model.onnx"));
    r.mutable_spec()->mutable_evaluation_data()->set_blob_sha256(
        UploadOrDie(tenant, "fmnist/eval.npz", v1::BLOB_KIND_DATASET));
    r.mutable_spec()->set_mode(v1::QUANT_MODE_DYNAMIC);
    r.mutable_spec()->mutable_sensitivity()->set_disabled(true);
    return r;
  }

  std::vector<v1::JobEvent> Watch(const std::string& tenant,
                                  const std::string& name, int64_t after,
                                  grpc::Status* status) {
    auto ctx = Context(tenant);
    v1::WatchJobRequest req;
    req.set_name(name);
    req.set_after_sequence(after);
    auto reader = stub_->WatchJob(ctx.get(), req);
    std::vector<v1::JobEvent> out;
    v1::JobEvent e;
    while (reader->Read(&e)) out.push_back(e);
    *status = reader->Finish();
    return out;
  }

  std::string root_;
  std::unique_ptr<BlobStore> blobs_;
  std::unique_ptr<JobStore> jobs_;
  Authenticator auth_ = Authenticator::SingleTenant();
  EventHub hub_;
  std::unique_ptr<Scheduler> scheduler_;
  std::unique_ptr<BlobIndex> index_;
  std::unique_ptr<ServiceCore> core_;
  std::unique_ptr<GrpcService> service_;
  std::unique_ptr<grpc::Server> server_;
  std::unique_ptr<v1::QuantizationService::Stub> stub_;
  int uploads_ = 0;
};

}  // namespace server_test
}  // namespace quantd

#endif  // QUANTD_SERVER_GRPC_TEST_SERVER_H_
