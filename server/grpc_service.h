// The gRPC handlers of quantd.v1.QuantizationService (callback API). They
// authenticate the caller, translate between gRPC and absl::Status, and
// call ServiceCore, BlobStore and EventHub: no job logic lives here.
//
//   GrpcService service(&core, &auth, &hub, {});
//   grpc::ServerBuilder builder;
//   builder.RegisterService(&service);
//   ...
//   service.StartDraining();   // SIGTERM: new work is refused (UNAVAILABLE)
#ifndef QUANTD_SERVER_GRPC_SERVICE_H_
#define QUANTD_SERVER_GRPC_SERVICE_H_

#include <atomic>
#include <functional>
#include <string>

#include "absl/time/time.h"
#include "grpcpp/grpcpp.h"
#include "quantd/v1/service.grpc.pb.h"
#include "server/auth.h"
#include "server/event_hub.h"
#include "server/service_core.h"

namespace quantd {

struct GrpcServiceOptions {
  // Bytes per DownloadArtifact chunk.
  int64_t download_chunk_bytes = 3 << 20;
  // Called after every call with the method name and the status code name
  // (metrics).
  std::function<void(const std::string& method, grpc::StatusCode code)> on_call;
  std::function<void(int64_t bytes)> on_uploaded;
  // After a job was created (not for idempotent repeats), with its spec.
  std::function<void(const v1::JobSpec&)> on_job_created;
  std::function<void(int64_t bytes)> on_downloaded;
  // An UploadBlob stream with no message for this long is ended (ABORTED,
  // telling the client to resume), so a stalled client holds nothing.
  absl::Duration upload_idle_timeout = absl::Minutes(2);
};

// absl::Status -> grpc::Status (the canonical codes share their numbers).
grpc::Status ToGrpc(const absl::Status& s);

class GrpcService final : public v1::QuantizationService::CallbackService {
 public:
  GrpcService(ServiceCore* core, const Authenticator* auth, EventHub* hub,
              GrpcServiceOptions options)
      : core_(core), auth_(auth), hub_(hub), options_(std::move(options)) {}

  // Refuse new uploads and jobs with UNAVAILABLE (the server is stopping).
  void StartDraining() { draining_ = true; }

  grpc::ServerReadReactor<v1::UploadBlobRequest>* UploadBlob(
      grpc::CallbackServerContext* context, v1::Blob* response) override;
  grpc::ServerUnaryReactor* GetUploadStatus(
      grpc::CallbackServerContext* context,
      const v1::GetUploadStatusRequest* request,
      v1::UploadStatus* response) override;
  grpc::ServerUnaryReactor* GetBlob(grpc::CallbackServerContext* context,
                                    const v1::GetBlobRequest* request,
                                    v1::Blob* response) override;
  grpc::ServerUnaryReactor* CreateJob(grpc::CallbackServerContext* context,
                                      const v1::CreateJobRequest* request,
                                      v1::Job* response) override;
  grpc::ServerUnaryReactor* GetJob(grpc::CallbackServerContext* context,
                                   const v1::GetJobRequest* request,
                                   v1::Job* response) override;
  grpc::ServerUnaryReactor* ListJobs(grpc::CallbackServerContext* context,
                                     const v1::ListJobsRequest* request,
                                     v1::ListJobsResponse* response) override;
  grpc::ServerUnaryReactor* CancelJob(grpc::CallbackServerContext* context,
                                      const v1::CancelJobRequest* request,
                                      v1::Job* response) override;
  grpc::ServerUnaryReactor* DeleteJob(
      grpc::CallbackServerContext* context, const v1::DeleteJobRequest* request,
      google::protobuf::Empty* response) override;
  grpc::ServerWriteReactor<v1::JobEvent>* WatchJob(
      grpc::CallbackServerContext* context,
      const v1::WatchJobRequest* request) override;
  grpc::ServerWriteReactor<v1::DownloadArtifactResponse>* DownloadArtifact(
      grpc::CallbackServerContext* context,
      const v1::DownloadArtifactRequest* request) override;

  // For the reactors (grpc_service.cc).
  absl::StatusOr<std::string> TenantOf(grpc::CallbackServerContext* context);
  void Record(const char* method, const grpc::Status& status);
  ServiceCore* core() { return core_; }
  EventHub* hub() { return hub_; }
  const GrpcServiceOptions& options() const { return options_; }
  bool draining() const { return draining_; }

 private:
  // Runs a unary call: authenticate, then `body(tenant)`.
  grpc::ServerUnaryReactor* Unary(
      grpc::CallbackServerContext* context, const char* method,
      const std::function<absl::Status(const std::string& tenant)>& body);

  ServiceCore* core_;
  const Authenticator* auth_;
  EventHub* hub_;
  GrpcServiceOptions options_;
  std::atomic<bool> draining_{false};
};

// Applies quantd's transport settings to `builder` (quantd serve and the
// service benchmark use the same ones): a fixed HTTP/2 receive window of
// `receive_window_bytes` per stream. gRPC's default grows the window by
// bandwidth probing to many MiB per stream; 50 uploads then put hundreds of
// MiB on gRPC's few network threads per polling round, and a GetJob behind
// them waited 0.1-0.8 s (bench/README.md, "Uploads under load"). A fixed
// window bounds that round; its cost is one stream's upload rate, at most
// window / round-trip time.
void ConfigureServerTransport(grpc::ServerBuilder* builder,
                              int64_t receive_window_bytes);

}  // namespace quantd

#endif  // QUANTD_SERVER_GRPC_SERVICE_H_
