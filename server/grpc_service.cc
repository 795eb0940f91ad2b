#include "server/grpc_service.h"

#include "absl/strings/str_cat.h"
#include "util/status_macros.h"

namespace quantd {

grpc::Status ToGrpc(const absl::Status& s) {
  if (s.ok()) return grpc::Status::OK;
  return grpc::Status(static_cast<grpc::StatusCode>(s.code()),
                      std::string(s.message()));
}

absl::StatusOr<std::string> GrpcService::TenantOf(
    grpc::CallbackServerContext* context) {
  const auto& md = context->client_metadata();
  auto it = md.find("authorization");
  const std::string header =
      it == md.end() ? "" : std::string(it->second.data(), it->second.size());
  return auth_->Authenticate(header);
}

void ConfigureServerTransport(grpc::ServerBuilder* builder,
                              int64_t receive_window_bytes) {
  builder->AddChannelArgument(GRPC_ARG_HTTP2_BDP_PROBE, 0);
  builder->AddChannelArgument(GRPC_ARG_HTTP2_STREAM_LOOKAHEAD_BYTES,
                              static_cast<int>(receive_window_bytes));
}

void GrpcService::Record(const char* method, const grpc::Status& status) {
  if (options_.on_call) options_.on_call(method, status.error_code());
}

grpc::ServerUnaryReactor* GrpcService::Unary(
    grpc::CallbackServerContext* context, const char* method,
    const std::function<absl::Status(const std::string& tenant)>& body) {
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  absl::StatusOr<std::string> tenant = TenantOf(context);
  const grpc::Status status =
      ToGrpc(tenant.ok() ? body(*tenant) : tenant.status());
  Record(method, status);
  reactor->Finish(status);
  return reactor;
}

grpc::ServerUnaryReactor* GrpcService::GetUploadStatus(
    grpc::CallbackServerContext* context,
    const v1::GetUploadStatusRequest* request, v1::UploadStatus* response) {
  return Unary(context, "GetUploadStatus", [&](const std::string& tenant) {
    absl::StatusOr<UploadProgress> p =
        core_->blobs()->UploadStatus(UploadKey{tenant, request->upload_id()});
    if (!p.ok()) return p.status();
    response->set_upload_id(request->upload_id());
    response->set_committed_size(p->committed);
    response->set_size(p->size);
    response->set_sha256(p->sha256);
    return absl::OkStatus();
  });
}

grpc::ServerUnaryReactor* GrpcService::GetBlob(
    grpc::CallbackServerContext* context, const v1::GetBlobRequest* request,
    v1::Blob* response) {
  return Unary(context, "GetBlob", [&](const std::string& tenant) {
    QUANTD_ASSIGN_OR_RETURN(v1::Blob b,
                            core_->GetBlob(tenant, request->sha256()));
    *response = std::move(b);
    return absl::OkStatus();
  });
}

grpc::ServerUnaryReactor* GrpcService::CreateJob(
    grpc::CallbackServerContext* context, const v1::CreateJobRequest* request,
    v1::Job* response) {
  return Unary(context, "CreateJob", [&](const std::string& tenant) {
    if (draining_) {
      return absl::UnavailableError(
          "the server is shutting down; retry against another replica or "
          "after it restarts");
    }
    absl::StatusOr<v1::Job> job = core_->CreateJob(tenant, *request);
    if (!job.ok()) return job.status();
    if (options_.on_job_created && job->attempts() == 0 &&
        job->state() == v1::JOB_STATE_QUEUED) {
      options_.on_job_created(job->spec());
    }
    *response = std::move(*job);
    return absl::OkStatus();
  });
}

grpc::ServerUnaryReactor* GrpcService::GetJob(
    grpc::CallbackServerContext* context, const v1::GetJobRequest* request,
    v1::Job* response) {
  return Unary(context, "GetJob", [&](const std::string& tenant) {
    QUANTD_ASSIGN_OR_RETURN(v1::Job job,
                            core_->GetJob(tenant, request->name()));
    *response = std::move(job);
    return absl::OkStatus();
  });
}

grpc::ServerUnaryReactor* GrpcService::ListJobs(
    grpc::CallbackServerContext* context, const v1::ListJobsRequest* request,
    v1::ListJobsResponse* response) {
  return Unary(context, "ListJobs", [&](const std::string& tenant) {
    QUANTD_ASSIGN_OR_RETURN(v1::ListJobsResponse r,
                            core_->ListJobs(tenant, *request));
    *response = std::move(r);
    return absl::OkStatus();
  });
}

grpc::ServerUnaryReactor* GrpcService::CancelJob(
    grpc::CallbackServerContext* context, const v1::CancelJobRequest* request,
    v1::Job* response) {
  return Unary(context, "CancelJob", [&](const std::string& tenant) {
    QUANTD_ASSIGN_OR_RETURN(v1::Job job,
                            core_->CancelJob(tenant, request->name()));
    *response = std::move(job);
    return absl::OkStatus();
  });
}

grpc::ServerUnaryReactor* GrpcService::DeleteJob(
    grpc::CallbackServerContext* context, const v1::DeleteJobRequest* request,
    google::protobuf::Empty*) {
  return Unary(context, "DeleteJob", [&](const std::string& tenant) {
    return core_->DeleteJob(tenant, request->name());
  });
}

}  // namespace quantd
