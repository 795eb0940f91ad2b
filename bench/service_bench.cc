// Service benchmarks over loopback against a quantd service (real stores in
// a temporary folder, real gRPC): GetJob latency while many uploads run at
// once (server in a child process: gRPC shares its network threads between
// one process's clients and servers), then, in-process, upload and download
// throughput, CreateJob latency under concurrent clients and event delivery
// latency to concurrent watchers. Figures go to bench/README.md; never timed in
// tests (ctest runs `service_bench --quick` to prove it works).
//
//   build/bench/service_bench [--quick] [--uploads-only] [--uploader-nice=N]
//       [--dir=PATH]
#include <stdlib.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <random>
#include <sstream>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "grpcpp/grpcpp.h"
#include "server/grpc_service.h"
#include "server/serve_flags.h"
#include "util/sha256.h"

namespace quantd {
namespace {

struct Options {
  int64_t transfer_bytes = int64_t{512} << 20;
  int clients = 50;
  int jobs_per_client = 20;
  int watchers = 100;
  int events = 50;
  int uploads = 50;                          // concurrent upload streams
  int64_t upload_bytes = int64_t{20} << 20;  // each
  // Upload client threads run at this nice level (0: as the server). 50
  // clients would be 50 machines in production; here they share the cores.
  // Nice 19 did not lower GetJob's latency (bench/README.md), so 0.
  int uploader_nice = 0;
  std::string dir = "/tmp";  // the stores' parent folder (its disk matters)
};

double Percentile(std::vector<double> v, double p) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  return v[std::min(v.size() - 1, static_cast<size_t>(p * v.size()))];
}

// A channel with its own connection (`id` keeps gRPC from sharing one).
std::shared_ptr<grpc::Channel> NewChannelTo(int port, int id) {
  grpc::ChannelArguments args;
  args.SetInt("quantd.bench.connection", id);
  args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);
  return grpc::CreateCustomChannel(absl::StrCat("127.0.0.1:", port),
                                   grpc::InsecureChannelCredentials(), args);
}

// `uploads` streams, each on its own connection, upload `upload_bytes`
// of distinct data in 1 MiB chunks at once, while one more client calls
// GetJob back to back: GetJob's latency shows whether uploads hold up
// the server's callback threads.
void RunUploadsUnderLoad(const Options& options, int port,
                         const std::string& name) {
  std::string base(1 << 20, '\0');
  std::mt19937_64 rng(2);
  for (size_t i = 0; i + 8 <= base.size(); i += 8) {
    const uint64_t v = rng();
    std::memcpy(&base[i], &v, 8);
  }
  // Chunk j of upload u: the base chunk stamped with (u, j).
  auto chunk = [&](int u, int64_t j, int64_t n) {
    std::string c = base.substr(0, n);
    const int64_t stamp[2] = {u, j};
    std::memcpy(c.data(), stamp, std::min<size_t>(n, sizeof(stamp)));
    return c;
  };
  const int64_t chunks = (options.upload_bytes + base.size() - 1) >> 20;
  auto chunk_size = [&](int64_t j) {
    return std::min<int64_t>(1 << 20, options.upload_bytes - (j << 20));
  };
  std::vector<std::string> digests(options.uploads);
  for (int u = 0; u < options.uploads; ++u) {
    Sha256 h;
    for (int64_t j = 0; j < chunks; ++j) h.Update(chunk(u, j, chunk_size(j)));
    digests[u] = h.HexDigest();
  }
  std::atomic<int> done{0}, failures{0};
  std::vector<double> latencies;
  // The GetJob client connects (one call, not timed) before uploads start,
  // so the figures are of calls during uploads, not of a TCP connect.
  auto getter_stub = v1::QuantizationService::NewStub(NewChannelTo(port, -1));
  {
    grpc::ClientContext ctx;
    v1::GetJobRequest req;
    req.set_name(name);
    v1::Job job;
    if (!getter_stub->GetJob(&ctx, req, &job).ok()) ++failures;
  }
  // Upload connections are made before the clock starts too: a storm of 50
  // TCP and HTTP/2 handshakes is a different benchmark.
  std::vector<std::shared_ptr<grpc::Channel>> channels;
  for (int u = 0; u < options.uploads; ++u) {
    channels.push_back(NewChannelTo(port, u));
    if (!channels.back()->WaitForConnected(
            gpr_time_add(gpr_now(GPR_CLOCK_REALTIME),
                         gpr_time_from_seconds(60, GPR_TIMESPAN)))) {
      ++failures;
    }
  }
  const absl::Time t0 = absl::Now();
  std::thread getter([&] {
    auto& stub = getter_stub;
    while (done < options.uploads) {
      grpc::ClientContext ctx;
      v1::GetJobRequest req;
      req.set_name(name);
      v1::Job job;
      const absl::Time start = absl::Now();
      const grpc::Status status = stub->GetJob(&ctx, req, &job);
      if (!status.ok()) {
        ++failures;
        std::fprintf(stderr, "GetJob: %s\n", status.error_message().c_str());
      }
      latencies.push_back(absl::ToDoubleMilliseconds(absl::Now() - start));
      absl::SleepFor(absl::Milliseconds(1));
    }
  });
  std::vector<std::thread> threads;
  for (int u = 0; u < options.uploads; ++u) {
    threads.emplace_back([&, u] {
      // Per-thread on Linux: PRIO_PROCESS with a thread id.
      (void)setpriority(PRIO_PROCESS, static_cast<id_t>(syscall(SYS_gettid)),
                        options.uploader_nice);
      auto stub = v1::QuantizationService::NewStub(channels[u]);
      grpc::ClientContext ctx;
      v1::Blob blob;
      auto writer = stub->UploadBlob(&ctx, &blob);
      v1::UploadBlobRequest req;
      req.mutable_header()->set_kind(v1::BLOB_KIND_DATASET);
      req.mutable_header()->set_upload_id(absl::StrCat("load-", u));
      req.mutable_header()->set_size(options.upload_bytes);
      req.mutable_header()->set_sha256(digests[u]);
      writer->Write(req);
      for (int64_t j = 0; j < chunks; ++j) {
        v1::UploadBlobRequest c;
        c.set_chunk(chunk(u, j, chunk_size(j)));
        if (!writer->Write(c)) break;
      }
      writer->WritesDone();
      const grpc::Status status = writer->Finish();
      if (!status.ok()) {
        ++failures;
        std::fprintf(stderr, "upload %d: %s\n", u,
                     status.error_message().c_str());
      }
      ++done;
    });
  }
  for (std::thread& t : threads) t.join();
  const double seconds = absl::ToDoubleSeconds(absl::Now() - t0);
  getter.join();
  const double mb = options.uploads * (options.upload_bytes / 1e6);
  const auto over_20ms = std::count_if(latencies.begin(), latencies.end(),
                                       [](double ms) { return ms > 20; });
  std::printf(
      "uploads   %d x %lld MiB at once: %.1f s, %.0f "
      "MB/s; GetJob during them (%zu calls): p50 %.2f ms, p99 %.2f ms, max "
      "%.2f ms, %lld over 20 ms; %d failed; upload clients at nice %d\n",
      options.uploads, static_cast<long long>(options.upload_bytes >> 20),
      seconds, mb / seconds, latencies.size(), Percentile(latencies, 0.5),
      Percentile(latencies, 0.99), Percentile(latencies, 1.0),
      static_cast<long long>(over_20ms), failures.load(),
      options.uploader_nice);
}

class Bench {
 public:
  explicit Bench(const Options& o) : options_(o) {
    std::string tmpl = o.dir + "/quantd_service_bench_XXXXXX";
    root_ = mkdtemp(tmpl.data());
    blobs_ = std::move(*BlobStore::Open(root_));
    jobs_ =
        std::move(*JobStore::Open(root_ + "/jobs.db", "bench-page-key-0123"));
    index_ = std::move(*BlobIndex::Open(root_ + "/blobs.db"));
    SchedulerOptions so;
    scheduler_ = std::make_unique<Scheduler>(jobs_.get(), blobs_.get(),
                                             index_.get(), so);
    ServiceLimits limits;
    limits.max_queued_jobs = 1 << 30;
    limits.max_queued_jobs_per_tenant = 1 << 30;
    limits.max_upload_bytes = int64_t{1} << 40;
    core_ = std::make_unique<ServiceCore>(
        jobs_.get(), blobs_.get(), index_.get(), scheduler_.get(), limits);
    JobRunnerOptions ro;
    ro.on_event = [this](const v1::JobEvent& e) {
      hub_.Publish(std::string(JobIdOfOwnName(e.job())));
    };
    runner_ = std::make_unique<JobRunner>(jobs_.get(), blobs_.get(),
                                          index_.get(), ro);
    service_ = std::make_unique<GrpcService>(core_.get(), &auth_, &hub_,
                                             GrpcServiceOptions{});
    grpc::ServerBuilder builder;
    builder.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(),
                             &port_);
    builder.SetMaxReceiveMessageSize(8 << 20);
    ConfigureServerTransport(&builder, ServeFlags{}.receive_window_bytes);
    builder.RegisterService(service_.get());
    server_ = builder.BuildAndStart();
    channel_ = grpc::CreateChannel(absl::StrCat("127.0.0.1:", port_),
                                   grpc::InsecureChannelCredentials());
  }
  ~Bench() {
    hub_.CloseAll();
    server_->Shutdown();
    std::system(absl::StrCat("rm -rf '", root_, "'").c_str());
  }

  // Upload then download `transfer_bytes` of random data in 1 MiB chunks.
  void Transfer() {
    std::string data(options_.transfer_bytes, '\0');
    std::mt19937_64 rng(1);
    for (size_t i = 0; i + 8 <= data.size(); i += 8) {
      const uint64_t r = rng();
      std::memcpy(&data[i], &r, 8);
    }
    const std::string digest = Sha256Hex(data);
    auto stub = v1::QuantizationService::NewStub(channel_);
    grpc::ClientContext ctx;
    v1::Blob blob;
    const absl::Time t0 = absl::Now();
    auto writer = stub->UploadBlob(&ctx, &blob);
    v1::UploadBlobRequest req;
    req.mutable_header()->set_kind(v1::BLOB_KIND_DATASET);
    req.mutable_header()->set_upload_id("bench");
    req.mutable_header()->set_size(static_cast<int64_t>(data.size()));
    req.mutable_header()->set_sha256(digest);
    writer->Write(req);
    for (size_t at = 0; at < data.size(); at += 1 << 20) {
      v1::UploadBlobRequest chunk;
      chunk.set_chunk(data.substr(at, 1 << 20));
      writer->Write(chunk);
    }
    writer->WritesDone();
    const grpc::Status s = writer->Finish();
    const double up = absl::ToDoubleSeconds(absl::Now() - t0);
    if (!s.ok()) {
      std::printf("upload failed: %s\n", s.error_message().c_str());
      return;
    }
    // A finished job whose model artifact is this blob.
    JobRecord r;
    r.tenant = "default";
    v1::JobSpec spec;
    spec.mutable_model()->set_blob_sha256(digest);
    r.spec = spec.SerializeAsString();
    const std::string id = jobs_->Create(r)->first.id;
    (void)jobs_->Transition(id, {JobState::kQueued}, JobState::kRunning);
    (void)jobs_->SetArtifacts(id, digest, data.size(), digest, data.size());
    (void)jobs_->Transition(id, {JobState::kRunning}, JobState::kSucceeded);
    grpc::ClientContext dctx;
    v1::DownloadArtifactRequest dreq;
    dreq.set_job(JobName(id));
    dreq.set_kind(v1::ARTIFACT_KIND_MODEL);
    const absl::Time t1 = absl::Now();
    auto reader = stub->DownloadArtifact(&dctx, dreq);
    v1::DownloadArtifactResponse msg;
    int64_t got = 0;
    while (reader->Read(&msg)) got += msg.chunk().size();
    (void)reader->Finish();
    const double down = absl::ToDoubleSeconds(absl::Now() - t1);
    const double mb = data.size() / 1e6;
    std::printf(
        "upload    %lld MB: %.3f s, %.0f MB/s (includes sha256 and fsync)\n"
        "download  %lld MB: %.3f s, %.0f MB/s (%s)\n",
        static_cast<long long>(mb), up, mb / up, static_cast<long long>(mb),
        down, mb / down,
        got == static_cast<int64_t>(data.size()) ? "complete" : "SHORT");
  }

  // GetJob's target for UploadsUnderLoad: a queued job nobody runs.
  std::string CreateIdleJob() {
    JobRecord r;
    r.tenant = "default";
    v1::JobSpec spec;
    spec.mutable_model()->set_blob_sha256(std::string(64, 'a'));
    r.spec = spec.SerializeAsString();
    return JobName(jobs_->Create(r)->first.id);
  }

  int port() const { return port_; }

  // `clients` threads, each with its own stub, create jobs back to back.
  void CreateJobLatency() {
    // A real job (CreateJob loads the model and checks the data against
    // it): the fixture MLP in dynamic mode.
    auto put = [&](const std::string& rel) {
      std::ifstream f(absl::StrCat(QUANTD_TESTDATA_DIR, "/", rel),
                      std::ios::binary);
      std::stringstream bytes;
      bytes << f.rdbuf();
      v1::Blob b;
      b.set_sha256(*blobs_->Put(bytes.str()));
      (void)index_->Record("default", b);
      return b.sha256();
    };
    v1::CreateJobRequest req;
    req.mutable_spec()->mutable_model()->set_blob_sha256(
        put("fmnist_mlp/model.onnx"));
    req.mutable_spec()->set_mode(v1::QUANT_MODE_DYNAMIC);
    req.mutable_spec()->mutable_evaluation_data()->set_blob_sha256(
        put("fmnist/eval.npz"));
    std::vector<std::vector<double>> per(options_.clients);
    std::atomic<int> failures{0};
    std::vector<std::thread> threads;
    const absl::Time t0 = absl::Now();
    for (int c = 0; c < options_.clients; ++c) {
      threads.emplace_back([&, c] {
        auto stub = v1::QuantizationService::NewStub(channel_);
        for (int i = 0; i < options_.jobs_per_client; ++i) {
          grpc::ClientContext ctx;
          v1::Job job;
          const absl::Time start = absl::Now();
          if (!stub->CreateJob(&ctx, req, &job).ok()) ++failures;
          per[c].push_back(absl::ToDoubleMilliseconds(absl::Now() - start));
        }
      });
    }
    for (std::thread& t : threads) t.join();
    const double total = absl::ToDoubleSeconds(absl::Now() - t0);
    std::vector<double> all;
    for (const auto& v : per) all.insert(all.end(), v.begin(), v.end());
    std::printf(
        "CreateJob %d clients x %d: p50 %.2f ms, p99 %.2f ms, %.0f calls/s, "
        "%d failed\n",
        options_.clients, options_.jobs_per_client, Percentile(all, 0.5),
        Percentile(all, 0.99), all.size() / total, failures.load());
  }

  // `watchers` streams on one job; events are appended (durable, then
  // published) and each watcher measures now - event time.
  void EventLatency() {
    JobRecord r;
    r.tenant = "default";
    v1::JobSpec spec;
    spec.mutable_model()->set_blob_sha256(std::string(64, 'a'));
    r.spec = spec.SerializeAsString();
    const std::string id = jobs_->Create(r)->first.id;
    std::vector<std::vector<double>> per(options_.watchers);
    std::atomic<int> ready{0};
    std::vector<std::thread> threads;
    for (int w = 0; w < options_.watchers; ++w) {
      threads.emplace_back([&, w] {
        auto stub = v1::QuantizationService::NewStub(channel_);
        grpc::ClientContext ctx;
        v1::WatchJobRequest req;
        req.set_name(JobName(id));
        auto reader = stub->WatchJob(&ctx, req);
        ++ready;
        v1::JobEvent e;
        while (reader->Read(&e)) {
          const absl::Time sent = absl::FromUnixSeconds(e.time().seconds()) +
                                  absl::Nanoseconds(e.time().nanos());
          if (e.has_progress()) {
            per[w].push_back(absl::ToDoubleMilliseconds(absl::Now() - sent));
          }
        }
        (void)reader->Finish();
      });
    }
    while (ready < options_.watchers) absl::SleepFor(absl::Milliseconds(10));
    absl::SleepFor(absl::Milliseconds(300));  // streams established
    for (int i = 0; i < options_.events; ++i) {
      v1::JobEvent e;
      e.mutable_progress()->set_stage("bench");
      e.mutable_progress()->set_fraction(double(i) / options_.events);
      (void)runner_->Emit(id, JobState::kRunning, e);
      absl::SleepFor(absl::Milliseconds(20));
    }
    (void)jobs_->Transition(id, {JobState::kQueued}, JobState::kCancelled);
    v1::JobEvent end;
    end.set_state_change(v1::JOB_STATE_CANCELLED);
    (void)runner_->Emit(id, JobState::kCancelled, end);
    for (std::thread& t : threads) t.join();
    std::vector<double> all;
    size_t complete = 0;
    for (const auto& v : per) {
      all.insert(all.end(), v.begin(), v.end());
      complete += v.size() == static_cast<size_t>(options_.events);
    }
    std::printf(
        "events    %d watchers x %d events: p50 %.2f ms, p99 %.2f ms, max "
        "%.2f ms; %zu of %d watchers got every event\n",
        options_.watchers, options_.events, Percentile(all, 0.5),
        Percentile(all, 0.99), Percentile(all, 1.0), complete,
        options_.watchers);
  }

  // A stream of bad calls of every kind; resident memory must not grow with it.
  void BadCalls() {
    auto stub = v1::QuantizationService::NewStub(channel_);
    auto burst = [&](int n) {
      for (int i = 0; i < n; ++i) {
        v1::Job job;
        {
          grpc::ClientContext ctx;
          v1::CreateJobRequest req;
          req.mutable_spec()->mutable_model()->set_path("/etc/passwd");
          (void)stub->CreateJob(&ctx, req, &job);
        }
        {
          grpc::ClientContext ctx;
          v1::GetJobRequest req;
          req.set_name(absl::StrCat("jobs/../", i));
          (void)stub->GetJob(&ctx, req, &job);
        }
        {
          grpc::ClientContext ctx;
          v1::ListJobsRequest req;
          req.set_page_token(std::string(200, 'x'));
          v1::ListJobsResponse resp;
          (void)stub->ListJobs(&ctx, req, &resp);
        }
        {
          grpc::ClientContext ctx;
          v1::Blob blob;
          auto w = stub->UploadBlob(&ctx, &blob);
          v1::UploadBlobRequest req;
          req.mutable_header()->set_kind(v1::BLOB_KIND_MODEL);
          req.mutable_header()->set_upload_id(absl::StrCat("bad-", i));
          req.mutable_header()->set_size(5);
          req.mutable_header()->set_sha256(std::string(64, 'e'));
          w->Write(req);
          v1::UploadBlobRequest chunk;
          chunk.set_chunk("bytes");
          w->Write(chunk);
          w->WritesDone();
          (void)w->Finish();
        }
        {
          grpc::ClientContext ctx;
          v1::WatchJobRequest req;
          req.set_name("jobs/job-unknown");
          auto r = stub->WatchJob(&ctx, req);
          v1::JobEvent e;
          while (r->Read(&e)) {
          }
          (void)r->Finish();
        }
      }
    };
    burst(200);  // warm-up: caches, arenas, thread pools
    const int64_t before = RssKib();
    burst(2000);
    const int64_t after = RssKib();
    std::printf(
        "bad calls 2000 x 5 kinds after a warm-up of 200: RSS %lld -> "
        "%lld KiB (%+.1f%%)\n",
        static_cast<long long>(before), static_cast<long long>(after),
        100.0 * (after - before) / before);
  }

 private:
  static int64_t RssKib() {
    FILE* f = std::fopen("/proc/self/status", "r");
    char line[256];
    int64_t kib = 0;
    while (f != nullptr && std::fgets(line, sizeof(line), f) != nullptr) {
      if (std::strncmp(line, "VmRSS:", 6) == 0) kib = std::atoll(line + 6);
    }
    if (f != nullptr) std::fclose(f);
    return kib;
  }

  Options options_;
  std::string root_;
  std::unique_ptr<BlobStore> blobs_;
  std::unique_ptr<JobStore> jobs_;
  std::unique_ptr<BlobIndex> index_;
  std::unique_ptr<Scheduler> scheduler_;
  std::unique_ptr<ServiceCore> core_;
  std::unique_ptr<JobRunner> runner_;
  Authenticator auth_ = Authenticator::SingleTenant();
  EventHub hub_;
  std::unique_ptr<GrpcService> service_;
  std::unique_ptr<grpc::Server> server_;
  std::shared_ptr<grpc::Channel> channel_;
  int port_ = 0;
};

}  // namespace

// UploadsUnderLoad with the server in a child process, as in production:
// gRPC shares its polling threads between the clients and servers of one
// process, so in-process figures mix the two. The child owns the stores and
// the service and exits when the parent closes its pipe.
int UploadsAgainstAServerProcess(const Options& o) {
  int to_parent[2], to_child[2];
  if (pipe(to_parent) != 0 || pipe(to_child) != 0) return 1;
  const pid_t pid = fork();
  if (pid < 0) return 1;
  if (pid == 0) {
    close(to_parent[0]);
    close(to_child[1]);
    {
      Bench bench(o);
      const std::string line =
          absl::StrCat(bench.port(), " ", bench.CreateIdleJob(), "\n");
      if (write(to_parent[1], line.data(), line.size()) < 0) _exit(1);
      char c;
      while (read(to_child[0], &c, 1) > 0) {
      }
    }
    _exit(0);
  }
  close(to_parent[1]);
  close(to_child[0]);
  char buf[256] = {};
  ssize_t n = 0, got;
  while (n < static_cast<ssize_t>(sizeof(buf)) - 1 &&
         (got = read(to_parent[0], buf + n, sizeof(buf) - 1 - n)) > 0) {
    n += got;
    if (std::strchr(buf, '\n') != nullptr) break;
  }
  int port = 0;
  char name[200] = {};
  if (std::sscanf(buf, "%d %199s", &port, name) != 2) return 1;
  RunUploadsUnderLoad(o, port, name);
  close(to_child[1]);
  int status = 0;
  waitpid(pid, &status, 0);
  return 0;
}

}  // namespace quantd

int main(int argc, char** argv) {
  quantd::Options o;
  bool uploads_only = false;
  for (int i = 1; i < argc; ++i) {
    if (std::strcmp(argv[i], "--quick") == 0) {
      o.transfer_bytes = 4 << 20;
      o.clients = 4;
      o.jobs_per_client = 3;
      o.watchers = 4;
      o.events = 3;
      o.uploads = 4;
      o.upload_bytes = (1 << 20) + 7;
    } else if (std::strcmp(argv[i], "--uploads-only") == 0) {
      uploads_only = true;
    } else if (std::strncmp(argv[i], "--dir=", 6) == 0) {
      o.dir = argv[i] + 6;
    } else if (std::strncmp(argv[i], "--uploader-nice=", 16) == 0) {
      o.uploader_nice = std::atoi(argv[i] + 16);
    } else {
      std::fprintf(stderr,
                   "usage: service_bench [--quick] [--uploads-only] "
                   "[--uploader-nice=N] [--dir=PATH]\n");
      return 2;
    }
  }
  // First, before this process starts gRPC (the child serves).
  if (quantd::UploadsAgainstAServerProcess(o) != 0) return 1;
  if (uploads_only) return 0;
  quantd::Bench bench(o);
  // First, while the process holds nothing else that could be freed.
  if (o.clients > 4) bench.BadCalls();
  bench.Transfer();
  bench.CreateJobLatency();
  bench.EventLatency();
  return 0;
}
