// The streaming handlers of GrpcService: UploadBlob (client stream),
// WatchJob and DownloadArtifact (server streams), as callback-API reactors.
#include <pthread.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
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

// Blocking work of upload streams (disk writes, hashing, fsync, the commit
// and its checks) runs on these threads, never on gRPC's callback threads,
// which also serve every other call: a busy disk must not delay GetJob.
// They run at nice 10: bulk data yields the CPU to gRPC's network threads
// and to jobs' control calls (on 2 cores, GetJob p99 during 50 uploads was
// 95-130 ms at the same priority, 20-60 ms below it; bench/README.md).
// Process-wide and never destroyed; tasks only exist while their reactor
// does (a reactor is deleted only after the task that finishes it).
class UploadWorkers {
 public:
  static constexpr int kUploadNice = 10;

  static UploadWorkers& Get() {
    static UploadWorkers* const workers = new UploadWorkers(8);
    return *workers;
  }

  void Run(std::function<void()> task) {
    absl::MutexLock lock(&mu_);
    tasks_.push_back(std::move(task));
  }

 private:
  explicit UploadWorkers(int n) {
    for (int i = 0; i < n; ++i) std::thread([this] { Loop(); }).detach();
  }

  void Loop() {
    pthread_setname_np(pthread_self(), "quantd-upload");
    // Per thread on Linux: PRIO_PROCESS with a thread id. Failure (a
    // sandbox forbidding it) only costs other calls' latency: said once.
    if (setpriority(PRIO_PROCESS, static_cast<id_t>(syscall(SYS_gettid)),
                    kUploadNice) != 0) {
      static std::once_flag once;
      const int error = errno;
      std::call_once(once, [error] {
        std::fprintf(stderr,
                     "quantd: upload threads keep normal priority "
                     "(setpriority: %s)\n",
                     std::strerror(error));
      });
    }
    for (;;) {
      std::function<void()> task;
      {
        absl::MutexLock lock(&mu_);
        mu_.Await(absl::Condition(
            +[](std::deque<std::function<void()>>* q) { return !q->empty(); },
            &tasks_));
        task = std::move(tasks_.front());
        tasks_.pop_front();
      }
      task();
    }
  }

  absl::Mutex mu_;
  std::deque<std::function<void()>> tasks_ ABSL_GUARDED_BY(mu_);
};

class UploadReactor;

// What an upload stream's reactor shares with the idle watchdog.
struct UploadStreamState {
  absl::Mutex mu;
  UploadReactor* reactor ABSL_GUARDED_BY(mu) = nullptr;  // null after OnDone
  bool finished ABSL_GUARDED_BY(mu) = false;             // Finish was called
  bool reading ABSL_GUARDED_BY(mu) = false;  // waiting for the client
  absl::Time read_since ABSL_GUARDED_BY(mu);
  absl::Duration idle_timeout;  // fixed at creation
};

// Ends upload streams that wait for their client longer than their idle
// timeout. One thread for all streams, checking four times a second.
class UploadWatchdog {
 public:
  static UploadWatchdog& Get() {
    static UploadWatchdog* const dog = new UploadWatchdog();
    return *dog;
  }

  void Watch(std::weak_ptr<UploadStreamState> state) {
    absl::MutexLock lock(&mu_);
    streams_.push_back(std::move(state));
  }

 private:
  UploadWatchdog() {
    std::thread([this] {
      for (;;) {
        absl::SleepFor(absl::Milliseconds(250));
        Check();
      }
    }).detach();
  }

  void Check();

  absl::Mutex mu_;
  std::vector<std::weak_ptr<UploadStreamState>> streams_ ABSL_GUARDED_BY(mu_);
};

// Moves UploadBlob's messages into an UploadSession, which holds the
// protocol. Each message is handled on UploadWorkers; reads, the finish and
// the idle check are decided under state_->mu, so Finish is called once.
class UploadReactor : public grpc::ServerReadReactor<v1::UploadBlobRequest> {
 public:
  UploadReactor(GrpcService* service, grpc::CallbackServerContext* context,
                v1::Blob* response)
      : service_(service),
        response_(response),
        state_(std::make_shared<UploadStreamState>()) {
    state_->idle_timeout = service->options().upload_idle_timeout;
    absl::MutexLock lock(&state_->mu);
    state_->reactor = this;
    absl::StatusOr<std::string> tenant = service->TenantOf(context);
    if (!tenant.ok()) {
      DoneLocked(ToGrpc(tenant.status()));
      return;
    }
    if (service->draining()) {
      DoneLocked(grpc::Status(grpc::StatusCode::UNAVAILABLE,
                              "the server is shutting down; resume the upload "
                              "after it restarts"));
      return;
    }
    session_ = std::make_unique<UploadSession>(service->core(), *tenant);
    UploadWatchdog::Get().Watch(state_);
    ReadLocked();
  }

  void OnReadDone(bool ok) override {
    {
      absl::MutexLock lock(&state_->mu);
      state_->reading = false;
      if (state_->finished) return;  // the watchdog ended the stream
    }
    UploadWorkers::Get().Run([this, ok] { Handle(ok); });
  }

  void OnDone() override {
    {
      absl::MutexLock lock(&state_->mu);
      state_->reactor = nullptr;
    }
    delete this;
  }

  // Called by the watchdog with state_->mu held (it reaches this reactor
  // through that state), when the client has sent nothing for the idle
  // timeout.
  void TimeOutLocked() {
    state_->mu.AssertHeld();
    DoneLocked(grpc::Status(
        grpc::StatusCode::ABORTED,
        absl::StrCat("no upload message for ",
                     absl::FormatDuration(state_->idle_timeout),
                     "; the stream was closed. Resume the upload with a new "
                     "stream from offset ",
                     session_->offset(), " (GetUploadStatus tells it)")));
  }

 private:
  // On an upload worker: one message, or the end of the stream.
  void Handle(bool ok) {
    grpc::Status status;
    if (!ok) {  // the client finished sending
      absl::StatusOr<v1::Blob> blob = session_->Commit();
      if (blob.ok()) *response_ = std::move(*blob);
      status = ToGrpc(blob.status());
    } else {
      status =
          ToGrpc(request_.has_header() ? session_->Header(request_.header())
                                       : Chunk(request_.chunk()));
    }
    absl::MutexLock lock(&state_->mu);
    if (state_->finished) return;
    if (!ok || !status.ok()) {
      DoneLocked(status);
    } else {
      ReadLocked();
    }
  }

  absl::Status Chunk(const std::string& bytes) {
    absl::Status s = session_->Chunk(bytes);
    if (s.ok() && service_->options().on_uploaded) {
      service_->options().on_uploaded(static_cast<int64_t>(bytes.size()));
    }
    return s;
  }

  // gRPC runs OnReadDone and OnDone on other threads (never inline), so
  // these may be called with the lock held.
  void ReadLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(state_->mu) {
    state_->reading = true;
    state_->read_since = absl::Now();
    StartRead(&request_);
  }

  void DoneLocked(const grpc::Status& status)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(state_->mu) {
    state_->finished = true;
    service_->Record("UploadBlob", status);
    Finish(status);
  }

  GrpcService* service_;
  v1::Blob* response_;
  v1::UploadBlobRequest request_;
  std::unique_ptr<UploadSession> session_;
  const std::shared_ptr<UploadStreamState> state_;
};

void UploadWatchdog::Check() {
  std::vector<std::shared_ptr<UploadStreamState>> live;
  {
    absl::MutexLock lock(&mu_);
    std::vector<std::weak_ptr<UploadStreamState>> kept;
    for (const std::weak_ptr<UploadStreamState>& w : streams_) {
      if (std::shared_ptr<UploadStreamState> s = w.lock()) {
        live.push_back(s);
        kept.push_back(w);
      }
    }
    streams_ = std::move(kept);
  }
  const absl::Time now = absl::Now();
  for (const std::shared_ptr<UploadStreamState>& s : live) {
    absl::MutexLock lock(&s->mu);
    if (s->reactor == nullptr || s->finished || !s->reading) continue;
    if (now - s->read_since < s->idle_timeout) continue;
    s->reactor->TimeOutLocked();
  }
}

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
