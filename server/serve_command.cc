#include "server/serve_command.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <fstream>
#include <memory>
#include <sstream>
#include <string>

#include "absl/cleanup/cleanup.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "grpcpp/ext/proto_server_reflection_plugin.h"
#include "grpcpp/health_check_service_interface.h"
#include "server/exit_codes.h"
#include "server/grpc_service.h"
#include "server/janitor.h"
#include "server/job_store_rules.h"
#include "server/metrics.h"
#include "server/postgres_db.h"
#include "server/remote_blobs.h"
#include "server/resource_names.h"
#include "util/logging.h"
#include "util/status_macros.h"

namespace quantd {
namespace {

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
  QUANTD_ASSIGN_OR_RETURN(const std::string key, RandomBytes(32));
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

// The tenants: from --tokens-file, else the one tenant of a loopback-only
// server (ResolveServeFlags refused any other address).
absl::StatusOr<Authenticator> LoadTenants(const ServeFlags& flags) {
  if (!flags.tokens_file.empty()) {
    return Authenticator::FromFile(flags.tokens_file);
  }
  std::fprintf(stderr,
               "quantd serve: no --tokens-file: single tenant 'default', "
               "loopback only, no authentication\n");
  return Authenticator::SingleTenant();
}

absl::StatusOr<std::shared_ptr<grpc::ServerCredentials>> LoadCredentials(
    const ServeFlags& flags) {
  if (flags.tls_cert.empty() && flags.tls_key.empty()) {
    return grpc::InsecureServerCredentials();
  }
  QUANTD_ASSIGN_OR_RETURN(std::string cert, ReadFile(flags.tls_cert));
  QUANTD_ASSIGN_OR_RETURN(std::string key, ReadFile(flags.tls_key));
  grpc::SslServerCredentialsOptions ssl(
      flags.tls_client_ca.empty()
          ? GRPC_SSL_DONT_REQUEST_CLIENT_CERTIFICATE
          : GRPC_SSL_REQUEST_AND_REQUIRE_CLIENT_CERTIFICATE_AND_VERIFY);
  ssl.pem_key_cert_pairs.push_back({key, cert});
  if (!flags.tls_client_ca.empty()) {
    QUANTD_ASSIGN_OR_RETURN(std::string ca, ReadFile(flags.tls_client_ca));
    ssl.pem_root_certs = ca;
  }
  return grpc::SslServerCredentials(ssl);
}

// What lives under --data-dir (and its checkpoints/ folder, for QAT jobs).
struct Stores {
  std::unique_ptr<BlobStore> blobs;
  std::unique_ptr<BlobIndex> index;
  std::unique_ptr<JobStore> jobs;
};

// --blob-store: null for blobs in --data-dir, else the bucket. Fails at
// start when the bucket cannot be read with these credentials, rather than
// at the first upload.
absl::StatusOr<std::unique_ptr<RemoteBlobs>> OpenRemoteBlobs(
    const ServeFlags& flags) {
  if (flags.blob_store.empty()) return nullptr;
  QUANTD_ASSIGN_OR_RETURN(S3Config config, S3ConfigFromUrl(flags.blob_store));
  config.endpoint = flags.s3_endpoint;
  config.region = flags.s3_region;
  QUANTD_RETURN_IF_ERROR(FillS3ConfigFromEnv(config));
  QUANTD_ASSIGN_OR_RETURN(std::unique_ptr<S3Client> s3,
                          S3Client::Create(config));
  auto remote = std::make_unique<RemoteBlobs>(std::move(s3));
  if (absl::Status s = remote->CheckAccess(); !s.ok()) {
    return absl::Status(s.code(), absl::StrCat("--blob-store ", s.message()));
  }
  return remote;
}

// --tenant-s3-credentials: whose keys s3:// URIs in job specs use. The
// endpoint and region default to the server's.
absl::StatusOr<TenantS3> LoadTenantS3(const ServeFlags& flags) {
  S3Config defaults;
  defaults.endpoint = flags.s3_endpoint;
  defaults.region = flags.s3_region;
  if (flags.tenant_s3_server_credentials) {
    QUANTD_RETURN_IF_ERROR(FillS3ConfigFromEnv(defaults));
  }
  QUANTD_ASSIGN_OR_RETURN(
      TenantS3 tenants,
      flags.tenant_s3_credentials.empty()
          ? TenantS3::FromText("", defaults, flags.tenant_s3_server_credentials)
          : TenantS3::FromFile(flags.tenant_s3_credentials, defaults,
                               flags.tenant_s3_server_credentials));
  if (!flags.blob_store.empty()) {
    QUANTD_ASSIGN_OR_RETURN(const S3Config own,
                            S3ConfigFromUrl(flags.blob_store));
    tenants.ReserveForService(own.bucket, own.prefix);
  }
  return tenants;
}

// `job_store`: --job-store; empty means DIR/jobs.db. A PostgreSQL store
// keeps its page token key in the database, shared by every replica, and
// the blob index beside the jobs, so an upload counts on every replica.
absl::StatusOr<Stores> OpenStores(const ServeFlags& flags) {
  const std::string& dir = flags.data_dir;
  const std::string& job_store = flags.job_store;
  QUANTD_ASSIGN_OR_RETURN(std::unique_ptr<RemoteBlobs> remote,
                          OpenRemoteBlobs(flags));
  QUANTD_ASSIGN_OR_RETURN(std::unique_ptr<BlobStore> blobs,
                          BlobStore::Open(dir, std::move(remote)));
  QUANTD_ASSIGN_OR_RETURN(
      std::unique_ptr<BlobIndex> index,
      BlobIndex::Open(IsPostgresUrl(job_store) ? job_store
                                               : dir + "/blobs.db"));
  std::unique_ptr<JobStore> jobs;
  if (IsPostgresUrl(job_store)) {
    QUANTD_ASSIGN_OR_RETURN(jobs, JobStore::Open(job_store, ""));
  } else {
    QUANTD_ASSIGN_OR_RETURN(std::string key, PageTokenKey(dir));
    QUANTD_ASSIGN_OR_RETURN(
        jobs,
        JobStore::Open(job_store.empty() ? dir + "/jobs.db" : job_store, key));
  }
  mkdir((dir + "/checkpoints").c_str(), 0750);
  return Stores{std::move(blobs), std::move(index), std::move(jobs)};
}

void RecordFinishedJob(ServiceMetrics* m, const JobRecord& job,
                       const v1::QuantizationReport* report) {
  v1::JobSpec spec;
  spec.ParseFromString(job.spec);
  const std::string method = MethodLabel(spec);
  m->JobFinished(method, OutcomeLabel(job.state),
                 (job.end_time_us - job.start_time_us) / 1e6);
  if (report == nullptr) return;
  for (const v1::StageTiming& st : report->stages()) {
    m->StageFinished(st.stage(),
                     st.duration().seconds() + st.duration().nanos() / 1e9);
  }
  auto model = spec.labels().find("model");
  m->JobQuality(method, job.tenant,
                model == spec.labels().end() ? "" : model->second, *report);
}

SchedulerOptions MakeSchedulerOptions(const ServeFlags& flags, EventHub* hub,
                                      ServiceMetrics* m,
                                      const TenantS3* tenant_s3) {
  SchedulerOptions options;
  options.runner.tenant_s3 = tenant_s3;
  options.workers = static_cast<int>(flags.workers);
  options.threads_per_job = static_cast<int>(flags.threads_per_job);
  options.max_attempts = static_cast<int>(flags.max_attempts);
  options.lease = absl::Seconds(flags.lease_seconds);
  options.shared_store = IsPostgresUrl(flags.job_store);
  options.max_running_per_tenant =
      static_cast<int>(flags.max_running_per_tenant);
  options.runner.on_event = [hub](const v1::JobEvent& e) {
    hub->Publish(std::string(JobIdOfOwnName(e.job())));  // "jobs/{id}"
  };
  options.runner.checkpoint_dir = flags.data_dir + "/checkpoints";
  options.runner.on_finished = [m](const JobRecord& job,
                                   const v1::QuantizationReport* report) {
    RecordFinishedJob(m, job, report);
  };
  return options;
}

ServiceLimits MakeServiceLimits(const ServeFlags& flags) {
  ServiceLimits limits;
  limits.max_upload_bytes = flags.max_upload_bytes;
  limits.max_tenant_storage_bytes = flags.max_tenant_storage_bytes;
  limits.max_queued_jobs = flags.max_queued_jobs;
  limits.max_queued_jobs_per_tenant = flags.max_queued_per_tenant;
  return limits;
}

GrpcServiceOptions MakeGrpcOptions(ServiceMetrics* m) {
  GrpcServiceOptions options;
  options.on_call = [m](const std::string& method, grpc::StatusCode c) {
    m->GrpcCall(method,
                absl::StatusCodeToString(static_cast<absl::StatusCode>(c)));
  };
  options.on_uploaded = [m](int64_t n) { m->BytesUploaded(n); };
  options.on_downloaded = [m](int64_t n) { m->BytesDownloaded(n); };
  options.on_job_created = [m](const v1::JobSpec& spec) {
    m->JobCreated(MethodLabel(spec));
  };
  return options;
}

// Starts gRPC (the service, health, reflection) on --listen-address:--port;
// `*bound_port` is the port it got (--port 0 picks one).
absl::StatusOr<std::unique_ptr<grpc::Server>> StartGrpcServer(
    const ServeFlags& flags,
    const std::shared_ptr<grpc::ServerCredentials>& credentials,
    GrpcService* service, int* bound_port) {
  grpc::EnableDefaultHealthCheckService(true);
  grpc::reflection::InitProtoReflectionServerBuilderPlugin();
  grpc::ServerBuilder builder;
  const std::string address =
      absl::StrCat(flags.listen_address, ":", flags.port);
  *bound_port = 0;
  builder.AddListeningPort(address, credentials, bound_port);
  builder.SetMaxReceiveMessageSize(static_cast<int>(flags.max_message_bytes));
  builder.SetMaxSendMessageSize(static_cast<int>(flags.max_message_bytes));
  ConfigureServerTransport(&builder, flags.receive_window_bytes);
  builder.RegisterService(service);
  std::unique_ptr<grpc::Server> server = builder.BuildAndStart();
  if (server == nullptr || *bound_port == 0) {
    return absl::UnavailableError(absl::StrCat("cannot listen on ", address));
  }
  return server;
}

// The line scripts wait for (tests/service/serve_lib.sh), then stdout is
// flushed so that a pipe sees it at once.
void AnnounceReady(const ServeFlags& flags, int bound_port,
                   const Authenticator& auth, const ServiceMetrics& m) {
  std::printf(
      "quantd serving on %s:%d (%lld workers x %lld threads, %zu "
      "tenants)\n",
      flags.listen_address.c_str(), bound_port,
      static_cast<long long>(flags.workers),
      static_cast<long long>(flags.threads_per_job), auth.tenant_count());
  if (m.port() > 0) {
    std::fprintf(stderr, "quantd serve: /metrics on port %d\n", m.port());
  }
  std::fflush(stdout);
}

// One janitor pass (server/janitor.h).
void RunJanitor(Janitor* janitor, ServiceMetrics* m) {
  const JanitorPass pass = janitor->RunOnce();
  m->JanitorRemoved("upload", pass.uploads.files, pass.uploads.bytes);
  m->JanitorRemoved("temp_file", pass.temp_files.files, pass.temp_files.bytes);
  m->JanitorRemoved("checkpoint", pass.checkpoints.files,
                    pass.checkpoints.bytes);
  m->JanitorRemoved("cached_blob", pass.evicted.files, pass.evicted.bytes);
}

// The storage gauges: a few SQLite sums and a walk of the checkpoint folder.
void RefreshStorageGauges(Janitor* janitor, ServiceMetrics* m) {
  absl::StatusOr<StorageUsage> u = janitor->Usage();
  if (LogIfError(u.status(), "measuring the data folder")) {
    m->SetStorageBytes("committed", u->committed);
    m->SetStorageBytes("artifacts", u->artifacts);
    m->SetStorageBytes("uploading", u->uploading);
    m->SetStorageBytes("reserved", u->reserved);
    m->SetStorageBytes("checkpoints", u->checkpoints);
  }
}

// Returns at SIGTERM or SIGINT; meanwhile refreshes the queue depth and
// busy workers gauges once a second, the storage gauges every 15 seconds
// (they read 0 for the janitor's first 5 minutes before), and runs the
// janitor every --janitor-interval-seconds (first at start-up).
// `poll_hub` (a job store shared with other replicas): every `poll_ticks`
// x 100 ms its watchers re-read the store, for events other replicas wrote
// (a safety net when notifications work, the only way when not). The
// service's health (grpc.health.v1 service "quantd.v1.QuantizationService",
// what readiness probes ask) follows the job store: NOT_SERVING while the
// once-a-second queue count fails (PostgreSQL unreachable), so clients go
// to replicas that can take their jobs; the server's own health ("", what
// liveness asks) stays SERVING, as a restart would not bring the database
// back.
void RunUntilSignal(JobStore* jobs, const Scheduler& scheduler,
                    ServiceMetrics* m, Janitor* janitor,
                    int64_t janitor_interval_seconds, EventHub* poll_hub,
                    int poll_ticks, grpc::HealthCheckServiceInterface* health) {
  bool store_ok = true;
  signal(SIGTERM, OnSignal);
  signal(SIGINT, OnSignal);
  for (int64_t tick = 0; g_signal == 0; ++tick) {
    if (poll_hub != nullptr && tick % poll_ticks == 0) poll_hub->PublishAll();
    if (tick % (janitor_interval_seconds * 10) == 0) RunJanitor(janitor, m);
    if (tick % 150 == 0) RefreshStorageGauges(janitor, m);
    absl::SleepFor(absl::Milliseconds(100));
    if (tick % 10 != 0) continue;
    absl::StatusOr<int64_t> q = jobs->CountInState(JobState::kQueued);
    if (q.ok()) m->SetQueueDepth(*q);
    if (q.ok() != store_ok) {
      store_ok = q.ok();
      health->SetServingStatus("quantd.v1.QuantizationService", store_ok);
      if (store_ok) {
        LOG(WARNING) << "the job store is reachable again: SERVING";
      } else {
        LOG(WARNING) << "the job store failed (" << q.status()
                     << "): readiness NOT_SERVING until it answers";
      }
    }
    m->SetBusyWorkers(scheduler.busy_workers());
  }
}

// Readiness off and new work refused first, so that load balancers move
// on while running jobs get the grace period; then watchers and gRPC end.
void Drain(const ServeFlags& flags, grpc::Server* server, GrpcService* service,
           Scheduler* scheduler, EventHub* hub) {
  std::fprintf(stderr, "quantd serve: signal %d: draining (grace %llds)\n",
               g_signal.load(), static_cast<long long>(flags.grace_seconds));
  server->GetHealthCheckService()->SetServingStatus(false);
  service->StartDraining();
  scheduler->Shutdown(absl::Seconds(flags.grace_seconds));
  hub->CloseAll();
  server->Shutdown(absl::ToChronoTime(absl::Now() + absl::Seconds(5)));
  std::fprintf(stderr, "quantd serve: stopped\n");
}

// Wires the pieces and serves until a signal. Declaration order is
// teardown order in reverse: the gRPC server goes first, the stores last.
absl::Status Serve(const ServeFlags& flags) {
  QUANTD_ASSIGN_OR_RETURN(Authenticator auth, LoadTenants(flags));
  QUANTD_ASSIGN_OR_RETURN(std::shared_ptr<grpc::ServerCredentials> credentials,
                          LoadCredentials(flags));
  QUANTD_ASSIGN_OR_RETURN(Stores stores, OpenStores(flags));
  QUANTD_ASSIGN_OR_RETURN(const TenantS3 tenant_s3, LoadTenantS3(flags));
  MetricsOptions metrics_options;
  metrics_options.listen_address = flags.metrics_address;
  QUANTD_ASSIGN_OR_RETURN(std::unique_ptr<ServiceMetrics> metrics,
                          ServiceMetrics::Create(metrics_options));
  ServiceMetrics* m = metrics.get();
  EventHub hub;
  // Events other replicas append reach this replica's watchers through the
  // store's notifications (PostgreSQL LISTEN/NOTIFY); stopped before `hub`
  // goes away.
  const bool notified = IsPostgresUrl(flags.job_store) &&
                        stores.jobs
                            ->WatchEvents([&hub](const std::string& id) {
                              if (id.empty()) {
                                hub.PublishAll();
                              } else {
                                hub.Publish(id);
                              }
                            })
                            .ok();
  absl::Cleanup stop_watching = [&] { stores.jobs->StopWatchingEvents(); };
  Scheduler scheduler(stores.jobs.get(), stores.blobs.get(), stores.index.get(),
                      MakeSchedulerOptions(flags, &hub, m, &tenant_s3));
  ServiceCore core(stores.jobs.get(), stores.blobs.get(), stores.index.get(),
                   &scheduler, MakeServiceLimits(flags), &tenant_s3);
  GrpcServiceOptions grpc_options = MakeGrpcOptions(m);
  grpc_options.upload_idle_timeout = absl::Seconds(flags.upload_idle_seconds);
  GrpcService service(&core, &auth, &hub, grpc_options);
  JanitorOptions janitor_options;
  janitor_options.upload_retention =
      absl::Seconds(flags.upload_retention_seconds);
  janitor_options.checkpoint_dir = flags.data_dir + "/checkpoints";
  janitor_options.blob_cache_bytes = flags.blob_cache_bytes;
  Janitor janitor(stores.blobs.get(), stores.jobs.get(), janitor_options);
  int bound_port = 0;
  QUANTD_ASSIGN_OR_RETURN(
      std::unique_ptr<grpc::Server> server,
      StartGrpcServer(flags, credentials, &service, &bound_port));
  if (absl::Status s = scheduler.Start(); !s.ok()) return s;
  LOG(INFO) << "replica " << scheduler.replica_id() << ": job store "
            << (IsPostgresUrl(flags.job_store)
                    ? RedactPostgresUrl(flags.job_store)
                    : (flags.job_store.empty() ? flags.data_dir + "/jobs.db"
                                               : flags.job_store));
  LOG(INFO) << "blobs: "
            << (flags.blob_store.empty()
                    ? flags.data_dir
                    : absl::StrCat(flags.blob_store, " (cached in ",
                                   flags.data_dir, ")"));
  // The whole server ("") and the service by name, as probes ask either;
  // SetServingStatus(false) when draining covers both.
  server->GetHealthCheckService()->SetServingStatus(true);
  server->GetHealthCheckService()->SetServingStatus(
      v1::QuantizationService::service_full_name(), true);
  AnnounceReady(flags, bound_port, auth, *m);

  RunUntilSignal(stores.jobs.get(), scheduler, m, &janitor,
                 flags.janitor_interval_seconds,
                 IsPostgresUrl(flags.job_store) ? &hub : nullptr,
                 notified ? 50 : 5, server->GetHealthCheckService());
  Drain(flags, server.get(), &service, &scheduler, &hub);
  return absl::OkStatus();
}

}  // namespace

int ServeCommand(const ServeFlags& flags) {
  const absl::Status s = Serve(flags);
  if (s.ok()) return kExitOk;
  std::fprintf(stderr, "quantd serve: %s\n", std::string(s.message()).c_str());
  // serve's bad input is its flags and the files they name; anything else,
  // such as a data folder it may not write, may work on a retry.
  return s.code() == absl::StatusCode::kInvalidArgument ||
                 s.code() == absl::StatusCode::kNotFound
             ? kExitBadInput
             : kExitFailure;
}

}  // namespace quantd
