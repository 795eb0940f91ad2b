// The C++ client library of quantd.v1.QuantizationService: uploads that skip
// what the server has and resume after an interruption, jobs, a watch that
// reconnects without gaps or duplicates, and resumable, verified downloads.
// Every call answers absl::Status; gRPC codes map one to one.
//
//   quantd::client::ClientOptions options;
//   options.address = "127.0.0.1:50051";
//   options.token = getenv("QUANTD_TOKEN");   // optional
//   auto client = quantd::client::Client::Connect(options);
//   if (!client.ok()) return client.status();
//   auto model = (*client)->Upload("model.onnx", quantd::v1::BLOB_KIND_MODEL);
//   auto calib = (*client)->Upload("calib.npz", quantd::v1::BLOB_KIND_DATASET);
//   quantd::v1::JobSpec spec;
//   spec.mutable_model()->set_blob_sha256(model->blob.sha256());
//   spec.mutable_calibration_data()->set_blob_sha256(calib->blob.sha256());
//   auto job = (*client)->CreateJob(spec);
//   (*client)->Watch(job->name(), 0, [](const quantd::v1::JobEvent& e) {
//     std::cout << e.sequence() << "\n";
//     return true;  // false stops watching
//   });
//   (*client)->Download(job->name(), quantd::v1::ARTIFACT_KIND_MODEL,
//                       "model.int8.onnx");
#ifndef QUANTD_CLIENT_CLIENT_H_
#define QUANTD_CLIENT_CLIENT_H_

#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "grpcpp/grpcpp.h"
#include "quantd/v1/service.grpc.pb.h"

namespace quantd::client {

struct ClientOptions {
  std::string address = "127.0.0.1:50051";
  // Sent as "authorization: Bearer <token>" when not empty.
  std::string token;
  // PEM root certificates: connect with TLS and verify the server with them.
  // Empty: plaintext.
  std::string tls_ca_file;
  // Deadline of unary calls.
  absl::Duration call_timeout = absl::Seconds(60);
  // Watch and Download reconnect after a dropped stream until the server
  // has been unreachable this long.
  absl::Duration reconnect_window = absl::Seconds(30);
};

struct UploadResult {
  v1::Blob blob;
  // The server already had the blob: nothing was sent.
  bool skipped = false;
  // Bytes an earlier, interrupted upload had already committed.
  int64_t resumed_from = 0;
};

// Called for each event; return false to stop watching.
using EventCallback = std::function<bool(const v1::JobEvent&)>;

class Client {
 public:
  static absl::StatusOr<std::unique_ptr<Client>> Connect(
      const ClientOptions& options);

  // Uploads the file unless the server already has its digest. The upload
  // id is derived from the digest, so rerunning after an interruption
  // resumes from what the server committed.
  absl::StatusOr<UploadResult> Upload(const std::string& path,
                                      v1::BlobKind kind);

  absl::StatusOr<v1::Job> CreateJob(const v1::JobSpec& spec,
                                    const std::string& request_id = "",
                                    int priority = 0);
  absl::StatusOr<v1::Job> GetJob(const std::string& name);
  absl::StatusOr<v1::ListJobsResponse> ListJobs(
      const v1::ListJobsRequest& request);
  absl::StatusOr<v1::Job> CancelJob(const std::string& name);
  absl::Status DeleteJob(const std::string& name);

  // Delivers the job's events after `after_sequence` in order, each once,
  // until the terminal state's event (OK), the callback returns false (OK),
  // or an error. A dropped stream is reopened from the last sequence seen.
  absl::Status Watch(const std::string& name, int64_t after_sequence,
                     const EventCallback& callback);

  // Downloads an artifact to `path` through `path`.partial, resuming from
  // that file's size, verifying the sha256 of the header, then renaming.
  absl::StatusOr<v1::ArtifactHeader> Download(const std::string& job,
                                              v1::ArtifactKind kind,
                                              const std::string& path);

 private:
  Client(std::shared_ptr<grpc::Channel> channel, ClientOptions options);
  std::unique_ptr<grpc::ClientContext> Context(bool deadline) const;
  absl::StatusOr<UploadResult> UploadFrom(const std::string& path,
                                          v1::BlobKind kind,
                                          const std::string& sha256,
                                          int64_t size, int64_t offset);
  // One DownloadArtifact call from `offset`, appended to `partial`.
  struct DownloadAttempt {
    grpc::Status status;
    v1::ArtifactHeader header;
    bool have_header = false;
    bool write_failed = false;
  };
  DownloadAttempt DownloadFrom(const std::string& job, v1::ArtifactKind kind,
                               int64_t offset, const std::string& partial,
                               absl::Time* last_contact);

  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<v1::QuantizationService::Stub> stub_;
  ClientOptions options_;
};

// grpc::Status -> absl::Status, same code and message.
absl::Status FromGrpc(const grpc::Status& status);

// Hex sha256 (64 lowercase characters) of a file, read in 1 MiB blocks.
absl::StatusOr<std::string> Sha256OfFile(const std::string& path);

// The upload id for a digest: the same bytes always resume one upload.
std::string UploadIdFor(const std::string& sha256);

bool IsTerminal(v1::JobState state);

}  // namespace quantd::client

#endif  // QUANTD_CLIENT_CLIENT_H_
