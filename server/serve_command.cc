#include "server/serve_command.h"

#include <fcntl.h>
#include <openssl/rand.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <fstream>
#include <map>
#include <sstream>
#include <thread>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "grpcpp/ext/proto_server_reflection_plugin.h"
#include "grpcpp/health_check_service_interface.h"
#include "server/exit_codes.h"
#include "server/grpc_service.h"
#include "server/metrics.h"

namespace quantd {
namespace {

constexpr char kUsage[] =
    R"(usage: quantd serve [options]

Runs the quantization service: gRPC (quantd.v1.QuantizationService, health,
reflection) on --port, jobs on a worker pool, blobs and the SQLite job store
under --data-dir. Without --tokens-file it serves one tenant ("default") on
127.0.0.1 only. SIGTERM or SIGINT: readiness goes NOT_SERVING, new uploads
and jobs get UNAVAILABLE, running jobs get --grace-seconds to finish and are
then re-queued for the next start.

  --port N                 gRPC port (default 50051; 0 picks a free one)
  --metrics-address A:P    Prometheus /metrics endpoint (default
                           0.0.0.0:9464; "" disables it)
  --listen-address ADDR    default 0.0.0.0 with --tokens-file, else 127.0.0.1
  --data-dir DIR           blobs, job store, keys (default ./quantd-data)
  --tokens-file FILE       "<tenant> <token>" lines: bearer tokens -> tenants
  --tls-cert FILE          server certificate (PEM); with --tls-key
  --tls-key FILE           server private key (PEM)
  --tls-client-ca FILE     require client certificates signed by this CA
  --workers N              jobs run at once (default 1)
  --threads-per-job N      OpenMP threads per job (default cores / workers)
  --max-running-per-tenant N  jobs of one tenant running at once (default 0:
                           no limit beyond --workers)
  --max-upload-bytes N     largest blob (default 4294967296)
  --max-tenant-storage-bytes N  uploaded bytes per tenant (default
                           53687091200)
  --max-queued-jobs N      queued jobs, all tenants (default 1000)
  --max-queued-per-tenant N  queued jobs per tenant (default 100)
  --max-message-bytes N    largest gRPC message (default 8388608)
  --max-attempts N         restarts a running job survives (default 3)
  --grace-seconds N        shutdown grace for running jobs (default 30)
  --help                   this text

Prints "quantd serving on ADDRESS:PORT" on stdout when ready.
Exit codes: 0 after a clean shutdown, 2 bad flags or files, 1 other failure.
)";

std::atomic<int> g_signal{0};

void OnSignal(int sig) { g_signal = sig; }

absl::StatusOr<std::string> ReadFile(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  if (!f) return absl::NotFoundError(absl::StrCat("cannot read '", path, "'"));
  std::stringstream s;
  s << f.rdbuf();
  return s.str();
}

// The key that signs page tokens: random, made once per data folder, so
// tokens stay valid across restarts.
absl::StatusOr<std::string> PageTokenKey(const std::string& dir) {
  const std::string path = dir + "/page_token.key";
  if (absl::StatusOr<std::string> key = ReadFile(path);
      key.ok() && key->size() >= 32) {
    return key;
  }
  std::string key(32, '\0');
  if (RAND_bytes(reinterpret_cast<unsigned char*>(key.data()), 32) != 1) {
    return absl::InternalError("no random bytes for the page token key");
  }
  const std::string tmp = path + ".tmp";
  const int fd = open(tmp.c_str(), O_CREAT | O_TRUNC | O_WRONLY, 0600);
  if (fd < 0 || write(fd, key.data(), key.size()) != 32 || fsync(fd) != 0) {
    if (fd >= 0) close(fd);
    return absl::PermissionDeniedError(
        absl::StrCat("cannot write '", tmp, "'"));
  }
  close(fd);
  if (std::rename(tmp.c_str(), path.c_str()) != 0) {
    return absl::PermissionDeniedError(
        absl::StrCat("cannot write '", path, "'"));
  }
  return key;
}

std::string MethodLabel(const v1::JobSpec& spec) {
  return spec.method() == v1::METHOD_QAT ? "qat" : "ptq";
}

std::string OutcomeLabel(JobState s) {
  switch (s) {
    case JobState::kSucceeded:
      return "succeeded";
    case JobState::kCancelled:
      return "cancelled";
    default:
      return "failed";
  }
}

int Fail(const absl::Status& s) {
  std::fprintf(stderr, "quantd serve: %s\n", std::string(s.message()).c_str());
  return s.code() == absl::StatusCode::kInvalidArgument ||
                 s.code() == absl::StatusCode::kNotFound
             ? kExitBadInput
             : kExitFailure;
}

}  // namespace

int ServeCommand(const std::vector<std::string>& args) {
  std::map<std::string, std::string> flags = {
      {"port", "50051"},
      {"metrics-address", "0.0.0.0:9464"},
      {"listen-address", ""},
      {"data-dir", "quantd-data"},
      {"tokens-file", ""},
      {"tls-cert", ""},
      {"tls-key", ""},
      {"tls-client-ca", ""},
      {"workers", "1"},
      {"threads-per-job", "0"},
      {"max-running-per-tenant", "0"},
      {"max-upload-bytes", "4294967296"},
      {"max-queued-jobs", "1000"},
      {"max-tenant-storage-bytes", "53687091200"},
      {"max-queued-per-tenant", "100"},
      {"max-message-bytes", "8388608"},
      {"max-attempts", "3"},
      {"grace-seconds", "30"}};
  for (size_t i = 0; i < args.size(); ++i) {
    if (args[i] == "--help" || args[i] == "-h") {
      std::fputs(kUsage, stdout);
      return kExitOk;
    }
    std::string name = args[i], value;
    if (name.rfind("--", 0) != 0) {
      return Fail(absl::InvalidArgumentError(
          absl::StrCat("unexpected argument '", name, "' (see --help)")));
    }
    name = name.substr(2);
    if (size_t eq = name.find('='); eq != std::string::npos) {
      value = name.substr(eq + 1);
      name = name.substr(0, eq);
    } else if (i + 1 < args.size()) {
      value = args[++i];
    } else {
      return Fail(absl::InvalidArgumentError(
          absl::StrCat("--", name, " needs a value")));
    }
    if (!flags.contains(name)) {
      return Fail(absl::InvalidArgumentError(
          absl::StrCat("unknown flag --", name, " (see --help)")));
    }
    flags[name] = value;
  }
  auto number = [&](const std::string& name, int64_t min, int64_t* out) {
    if (!absl::SimpleAtoi(flags[name], out) || *out < min) {
      return absl::InvalidArgumentError(
          absl::StrCat("--", name, " must be an integer >= ", min, ", got '",
                       flags[name], "'"));
    }
    return absl::OkStatus();
  };
  int64_t port, workers, threads, max_running_per_tenant, max_upload,
      max_storage, max_queued, max_per_tenant, max_message, max_attempts, grace;
  for (const auto& [name, min, out] :
       {std::make_tuple("port", 0, &port),
        std::make_tuple("workers", 1, &workers),
        std::make_tuple("threads-per-job", 0, &threads),
        std::make_tuple("max-running-per-tenant", 0, &max_running_per_tenant),
        std::make_tuple("max-upload-bytes", 1, &max_upload),
        std::make_tuple("max-queued-jobs", 1, &max_queued),
        std::make_tuple("max-tenant-storage-bytes", 1, &max_storage),
        std::make_tuple("max-queued-per-tenant", 1, &max_per_tenant),
        std::make_tuple("max-message-bytes", 4096, &max_message),
        std::make_tuple("max-attempts", 1, &max_attempts),
        std::make_tuple("grace-seconds", 0, &grace)}) {
    if (absl::Status s = number(name, min, out); !s.ok()) return Fail(s);
  }
  if (port > 65535) {
    return Fail(absl::InvalidArgumentError("--port must be at most 65535"));
  }
  if (threads == 0) {
    const int64_t cores = std::max<int64_t>(
        1, static_cast<int64_t>(std::thread::hardware_concurrency()));
    threads = std::max<int64_t>(1, cores / workers);
  }

  // Tenants.
  Authenticator auth = Authenticator::SingleTenant();
  std::string address = flags["listen-address"];
  if (!flags["tokens-file"].empty()) {
    absl::StatusOr<Authenticator> a =
        Authenticator::FromFile(flags["tokens-file"]);
    if (!a.ok()) return Fail(a.status());
    auth = std::move(*a);
    if (address.empty()) address = "0.0.0.0";
  } else {
    if (address.empty()) address = "127.0.0.1";
    if (address != "127.0.0.1" && address != "localhost" &&
        address != "[::1]") {
      return Fail(absl::InvalidArgumentError(
          "without --tokens-file quantd serves one tenant on loopback only; "
          "give --tokens-file to listen on other addresses"));
    }
    std::fprintf(stderr,
                 "quantd serve: no --tokens-file: single tenant 'default', "
                 "loopback only, no authentication\n");
  }

  // Credentials.
  std::shared_ptr<grpc::ServerCredentials> credentials;
  if (!flags["tls-cert"].empty() || !flags["tls-key"].empty()) {
    absl::StatusOr<std::string> cert = ReadFile(flags["tls-cert"]);
    if (!cert.ok()) return Fail(cert.status());
    absl::StatusOr<std::string> key = ReadFile(flags["tls-key"]);
    if (!key.ok()) return Fail(key.status());
    grpc::SslServerCredentialsOptions ssl(
        flags["tls-client-ca"].empty()
            ? GRPC_SSL_DONT_REQUEST_CLIENT_CERTIFICATE
            : GRPC_SSL_REQUEST_AND_REQUIRE_CLIENT_CERTIFICATE_AND_VERIFY);
    ssl.pem_key_cert_pairs.push_back({*key, *cert});
    if (!flags["tls-client-ca"].empty()) {
      absl::StatusOr<std::string> ca = ReadFile(flags["tls-client-ca"]);
      if (!ca.ok()) return Fail(ca.status());
      ssl.pem_root_certs = *ca;
    }
    credentials = grpc::SslServerCredentials(ssl);
  } else {
    if (!flags["tls-client-ca"].empty()) {
      return Fail(absl::InvalidArgumentError(
          "--tls-client-ca needs --tls-cert and --tls-key"));
    }
    credentials = grpc::InsecureServerCredentials();
  }

  // Stores and workers.
  const std::string dir = flags["data-dir"];
  absl::StatusOr<std::unique_ptr<BlobStore>> blobs = BlobStore::Open(dir);
  if (!blobs.ok()) return Fail(blobs.status());
  absl::StatusOr<std::unique_ptr<BlobIndex>> index =
      BlobIndex::Open(dir + "/blobs.db");
  if (!index.ok()) return Fail(index.status());
  absl::StatusOr<std::string> key = PageTokenKey(dir);
  if (!key.ok()) return Fail(key.status());
  absl::StatusOr<std::unique_ptr<JobStore>> jobs =
      JobStore::Open(dir + "/jobs.db", *key);
  if (!jobs.ok()) return Fail(jobs.status());
  MetricsOptions metrics_options;
  metrics_options.listen_address = flags["metrics-address"];
  absl::StatusOr<std::unique_ptr<ServiceMetrics>> metrics =
      ServiceMetrics::Create(metrics_options);
  if (!metrics.ok()) return Fail(metrics.status());
  ServiceMetrics* m = metrics->get();
  EventHub hub;
  SchedulerOptions scheduler_options;
  scheduler_options.workers = static_cast<int>(workers);
  scheduler_options.threads_per_job = static_cast<int>(threads);
  scheduler_options.max_attempts = static_cast<int>(max_attempts);
  scheduler_options.max_running_per_tenant =
      static_cast<int>(max_running_per_tenant);
  scheduler_options.runner.on_event = [&hub](const v1::JobEvent& e) {
    hub.Publish(e.job().substr(5));  // "jobs/{id}"
  };
  scheduler_options.runner.checkpoint_dir = dir + "/checkpoints";
  mkdir(scheduler_options.runner.checkpoint_dir.c_str(), 0750);
  scheduler_options.runner.on_finished =
      [m](const JobRecord& job, const v1::QuantizationReport* report) {
        v1::JobSpec spec;
        spec.ParseFromString(job.spec);
        const std::string method = MethodLabel(spec);
        m->JobFinished(method, OutcomeLabel(job.state),
                       (job.end_time_us - job.start_time_us) / 1e6);
        if (report == nullptr) return;
        for (const v1::StageTiming& st : report->stages()) {
          m->StageFinished(st.stage(), st.duration().seconds() +
                                           st.duration().nanos() / 1e9);
        }
        auto model = spec.labels().find("model");
        m->JobQuality(method, model == spec.labels().end() ? "" : model->second,
                      *report);
      };
  Scheduler scheduler(jobs->get(), blobs->get(), index->get(),
                      scheduler_options);
  ServiceLimits limits;
  limits.max_upload_bytes = max_upload;
  limits.max_tenant_storage_bytes = max_storage;
  limits.max_queued_jobs = max_queued;
  limits.max_queued_jobs_per_tenant = max_per_tenant;
  ServiceCore core(jobs->get(), blobs->get(), index->get(), &scheduler, limits);
  GrpcServiceOptions grpc_options;
  grpc_options.on_call = [m](const std::string& method, grpc::StatusCode c) {
    m->GrpcCall(method,
                absl::StatusCodeToString(static_cast<absl::StatusCode>(c)));
  };
  grpc_options.on_uploaded = [m](int64_t n) { m->BytesUploaded(n); };
  grpc_options.on_downloaded = [m](int64_t n) { m->BytesDownloaded(n); };
  grpc_options.on_job_created = [m](const v1::JobSpec& spec) {
    m->JobCreated(MethodLabel(spec));
  };
  GrpcService service(&core, &auth, &hub, grpc_options);

  grpc::EnableDefaultHealthCheckService(true);
  grpc::reflection::InitProtoReflectionServerBuilderPlugin();
  grpc::ServerBuilder builder;
  int bound_port = 0;
  builder.AddListeningPort(absl::StrCat(address, ":", port), credentials,
                           &bound_port);
  builder.SetMaxReceiveMessageSize(static_cast<int>(max_message));
  builder.SetMaxSendMessageSize(static_cast<int>(max_message));
  builder.RegisterService(&service);
  std::unique_ptr<grpc::Server> server = builder.BuildAndStart();
  if (server == nullptr || bound_port == 0) {
    return Fail(absl::UnavailableError(
        absl::StrCat("cannot listen on ", address, ":", port)));
  }
  if (absl::Status s = scheduler.Start(); !s.ok()) return Fail(s);
  grpc::HealthCheckServiceInterface* health = server->GetHealthCheckService();
  health->SetServingStatus(true);
  std::printf(
      "quantd serving on %s:%d (%lld workers x %lld threads, %zu "
      "tenants)\n",
      address.c_str(), bound_port, static_cast<long long>(workers),
      static_cast<long long>(threads), auth.tenant_count());
  if (m->port() > 0) {
    std::fprintf(stderr, "quantd serve: /metrics on port %d\n", m->port());
  }
  std::fflush(stdout);

  signal(SIGTERM, OnSignal);
  signal(SIGINT, OnSignal);
  for (int tick = 0; g_signal == 0; ++tick) {
    absl::SleepFor(absl::Milliseconds(100));
    if (tick % 10 == 0) {  // gauges once a second
      if (absl::StatusOr<int64_t> q = (*jobs)->CountInState(JobState::kQueued);
          q.ok()) {
        m->SetQueueDepth(*q);
      }
      m->SetBusyWorkers(scheduler.busy_workers());
    }
  }

  std::fprintf(stderr, "quantd serve: signal %d: draining (grace %llds)\n",
               g_signal.load(), static_cast<long long>(grace));
  health->SetServingStatus(false);
  service.StartDraining();
  scheduler.Shutdown(absl::Seconds(grace));
  hub.CloseAll();
  server->Shutdown(absl::ToChronoTime(absl::Now() + absl::Seconds(5)));
  std::fprintf(stderr, "quantd serve: stopped\n");
  return kExitOk;
}

}  // namespace quantd
