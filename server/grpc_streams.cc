// The streaming handlers of GrpcService: UploadBlob (client stream),
// WatchJob and DownloadArtifact (server streams), as callback-API reactors.
#include <deque>
#include <memory>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "server/grpc_service.h"
#include "server/upload_session.h"

namespace quantd {
namespace {

constexpr int32_t kEventsPerRead = 100;

bool IsTerminalEvent(const v1::JobEvent& e) {
  return e.has_state_change() && (e.state_change() == v1::JOB_STATE_SUCCEEDED ||
                                  e.state_change() == v1::JOB_STATE_FAILED ||
                                  e.state_change() == v1::JOB_STATE_CANCELLED);
}

// Moves UploadBlob's messages into an UploadSession, which holds the
// protocol.
class UploadReactor : public grpc::ServerReadReactor<v1::UploadBlobRequest> {
 public:
  UploadReactor(GrpcService* service, grpc::CallbackServerContext* context,
                v1::Blob* response)
      : service_(service), response_(response) {
    absl::StatusOr<std::string> tenant = service->TenantOf(context);
    if (!tenant.ok()) {
      Done(ToGrpc(tenant.status()));
      return;
    }
    if (service->draining()) {
      Done(grpc::Status(grpc::StatusCode::UNAVAILABLE,
                        "the server is shutting down; resume the upload "
                        "after it restarts"));
      return;
    }
    session_ = std::make_unique<UploadSession>(service->core(), *tenant);
    StartRead(&request_);
  }

  void OnReadDone(bool ok) override {
    if (!ok) {  // the client finished sending
      absl::StatusOr<v1::Blob> blob = session_->Commit();
      if (blob.ok()) *response_ = std::move(*blob);
      Done(ToGrpc(blob.status()));
      return;
    }
    absl::Status s = request_.has_header() ? session_->Header(request_.header())
                                           : Chunk(request_.chunk());
    if (!s.ok()) {
      Done(ToGrpc(s));
      return;
    }
    StartRead(&request_);
  }

  void OnDone() override { delete this; }

 private:
  absl::Status Chunk(const std::string& bytes) {
    absl::Status s = session_->Chunk(bytes);
    if (s.ok() && service_->options().on_uploaded) {
      service_->options().on_uploaded(static_cast<int64_t>(bytes.size()));
    }
    return s;
  }

  void Done(const grpc::Status& status) {
    service_->Record("UploadBlob", status);
    Finish(status);
  }

  GrpcService* service_;
  v1::Blob* response_;
  v1::UploadBlobRequest request_;
  std::unique_ptr<UploadSession> session_;
};

// Replays the job's events from the store after `after_sequence`, then
// follows them live (woken by the EventHub, reading the store again), and
// finishes after the terminal event. Decisions are made under the lock and
// carried out after releasing it, so reactions never run under it.
class WatchReactor : public grpc::ServerWriteReactor<v1::JobEvent> {
 public:
  WatchReactor(GrpcService* service, grpc::CallbackServerContext* context,
               const v1::WatchJobRequest* request)
      : service_(service), state_(std::make_shared<Shared>()) {
    state_->reactor = this;
    absl::StatusOr<std::string> tenant = service->TenantOf(context);
    absl::Status s = tenant.status();
    if (s.ok() && request->after_sequence() < 0) {
      s = absl::InvalidArgumentError("after_sequence must be >= 0");
    }
    absl::StatusOr<std::string> id = JobIdFromName(request->name());
    if (s.ok()) s = id.status();
    if (s.ok()) {
      s = service->core()->GetJob(*tenant, request->name()).status();
    }
    if (!s.ok()) {
      state_->finished = true;
      Done(ToGrpc(s));
      return;
    }
    tenant_ = *tenant;
    name_ = request->name();
    after_ = request->after_sequence();
    std::shared_ptr<Shared> shared = state_;
    hub_id_ = service->hub()->Subscribe(*id, [shared](bool closing) {
      absl::MutexLock lock(&shared->mu);
      if (!shared->alive) return;
      if (closing) shared->closing = true;
      shared->reactor->PumpLocked();
    });
    absl::MutexLock lock(&state_->mu);
    PumpLocked();
  }

  void OnWriteDone(bool ok) override {
    absl::MutexLock lock(&state_->mu);
    state_->writing = false;
    if (!ok) state_->cancelled = true;
    PumpLocked();
  }

  void OnCancel() override {
    absl::MutexLock lock(&state_->mu);
    state_->cancelled = true;
    PumpLocked();
  }

  void OnDone() override {
    {
      absl::MutexLock lock(&state_->mu);
      state_->alive = false;
    }
    if (hub_id_ != 0) service_->hub()->Unsubscribe(hub_id_);
    delete this;
  }

 private:
  struct Shared {
    absl::Mutex mu;
    WatchReactor* reactor ABSL_GUARDED_BY(mu) = nullptr;
    bool alive ABSL_GUARDED_BY(mu) = true;
    bool writing ABSL_GUARDED_BY(mu) = false;
    bool finished ABSL_GUARDED_BY(mu) = false;
    bool closing ABSL_GUARDED_BY(mu) = false;
    bool cancelled ABSL_GUARDED_BY(mu) = false;
  };

  // Called with state_->mu held. Starts the next write or finishes.
  void PumpLocked() ABSL_NO_THREAD_SAFETY_ANALYSIS {
    Shared& s = *state_;
    if (s.writing || s.finished) return;
    if (s.cancelled) {
      s.finished = true;
      Done(grpc::Status(grpc::StatusCode::CANCELLED, "the client went away"));
      return;
    }
    if (buffer_.empty() && !terminal_sent_) {
      absl::StatusOr<std::vector<v1::JobEvent>> events =
          service_->core()->EventsAfter(tenant_, name_, after_, kEventsPerRead);
      if (!events.ok()) {
        s.finished = true;
        Done(ToGrpc(events.status()));
        return;
      }
      buffer_.insert(buffer_.end(), events->begin(), events->end());
    }
    if (!buffer_.empty()) {
      current_ = std::move(buffer_.front());
      buffer_.pop_front();
      after_ = current_.sequence();
      terminal_sent_ = IsTerminalEvent(current_);
      s.writing = true;
      StartWrite(&current_);
      return;
    }
    if (terminal_sent_ || JobIsTerminal()) {
      s.finished = true;
      Done(grpc::Status::OK);
      return;
    }
    if (s.closing) {
      s.finished = true;
      Done(grpc::Status(
          grpc::StatusCode::UNAVAILABLE,
          absl::StrCat("the server is shutting down; watch again with "
                       "after_sequence ",
                       after_)));
    }
    // Otherwise wait for the hub.
  }

  // A job can be terminal without its terminal event if the process died
  // between the two writes: the stream still ends.
  bool JobIsTerminal() {
    absl::StatusOr<v1::Job> job = service_->core()->GetJob(tenant_, name_);
    if (!job.ok()) return true;
    return job->state() == v1::JOB_STATE_SUCCEEDED ||
           job->state() == v1::JOB_STATE_FAILED ||
           job->state() == v1::JOB_STATE_CANCELLED;
  }

  void Done(const grpc::Status& status) {
    service_->Record("WatchJob", status);
    Finish(status);
  }

  GrpcService* service_;
  std::shared_ptr<Shared> state_;
  int64_t hub_id_ = 0;
  std::string tenant_, name_;
  int64_t after_ = 0;
  std::deque<v1::JobEvent> buffer_;
  v1::JobEvent current_;
  bool terminal_sent_ = false;
};

class DownloadReactor
    : public grpc::ServerWriteReactor<v1::DownloadArtifactResponse> {
 public:
  DownloadReactor(GrpcService* service, grpc::CallbackServerContext* context,
                  const v1::DownloadArtifactRequest* request)
      : service_(service) {
    absl::StatusOr<std::string> tenant = service->TenantOf(context);
    absl::Status s = tenant.status();
    absl::StatusOr<v1::Artifact> artifact;
    if (s.ok()) {
      artifact = service->core()->FindArtifact(*tenant, request->job(),
                                               request->kind());
      s = artifact.status();
    }
    if (s.ok() &&
        (request->offset() < 0 || request->offset() > artifact->size())) {
      s = absl::OutOfRangeError(
          absl::StrCat("offset must be in [0, ", artifact->size(), "]"));
    }
    if (!s.ok()) {
      Done(ToGrpc(s));
      return;
    }
    sha256_ = artifact->sha256();
    offset_ = request->offset();
    v1::ArtifactHeader* h = message_.mutable_header();
    h->set_kind(artifact->kind());
    h->set_sha256(artifact->sha256());
    h->set_size(artifact->size());
    h->set_offset(offset_);
    StartWrite(&message_);
  }

  void OnWriteDone(bool ok) override {
    if (!ok) {
      Done(grpc::Status(grpc::StatusCode::CANCELLED, "the client went away"));
      return;
    }
    absl::StatusOr<std::string> chunk = service_->core()->blobs()->Read(
        sha256_, offset_, service_->options().download_chunk_bytes);
    if (!chunk.ok()) {
      Done(ToGrpc(chunk.status()));
      return;
    }
    if (chunk->empty()) {
      Done(grpc::Status::OK);
      return;
    }
    offset_ += static_cast<int64_t>(chunk->size());
    if (service_->options().on_downloaded) {
      service_->options().on_downloaded(static_cast<int64_t>(chunk->size()));
    }
    message_.Clear();
    *message_.mutable_chunk() = std::move(*chunk);
    StartWrite(&message_);
  }

  void OnDone() override { delete this; }

 private:
  void Done(const grpc::Status& status) {
    service_->Record("DownloadArtifact", status);
    Finish(status);
  }

  GrpcService* service_;
  std::string sha256_;
  int64_t offset_ = 0;
  v1::DownloadArtifactResponse message_;
};

}  // namespace

grpc::ServerReadReactor<v1::UploadBlobRequest>* GrpcService::UploadBlob(
    grpc::CallbackServerContext* context, v1::Blob* response) {
  return new UploadReactor(this, context, response);
}

grpc::ServerWriteReactor<v1::JobEvent>* GrpcService::WatchJob(
    grpc::CallbackServerContext* context, const v1::WatchJobRequest* request) {
  return new WatchReactor(this, context, request);
}

grpc::ServerWriteReactor<v1::DownloadArtifactResponse>*
GrpcService::DownloadArtifact(grpc::CallbackServerContext* context,
                              const v1::DownloadArtifactRequest* request) {
  return new DownloadReactor(this, context, request);
}

}  // namespace quantd
