#include "server/serve_flags.h"

#include <algorithm>
#include <thread>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "server/command_flags.h"

namespace quantd {
namespace {

constexpr char kSummary[] =
    "run the gRPC quantization service\n"
    "(quantd serve --help for its options)";

constexpr char kDescription[] =
    R"(Runs the quantization service: gRPC (quantd.v1.QuantizationService, health,
reflection) on --port, jobs on a worker pool, blobs under --data-dir, jobs
in SQLite under --data-dir or in PostgreSQL (--job-store). Without
--tokens-file it serves one tenant ("default") on 127.0.0.1 only. SIGTERM
or SIGINT: readiness goes NOT_SERVING, new uploads and jobs get
UNAVAILABLE, running jobs get --grace-seconds to finish and are then
re-queued for the next start. An upload stream silent for
--upload-idle-seconds is ended (the client resumes it); a janitor removes
unfinished uploads idle for --upload-retention-seconds, orphan temporary
files and the checkpoints of finished or deleted jobs. Running jobs are
leased to this replica (--lease-seconds); with a PostgreSQL --job-store,
replicas re-queue each other's expired leases and share the blob index.
With --blob-store s3://BUCKET/PREFIX, uploads and artifacts live in object
storage (any S3-compatible service; credentials from AWS_ACCESS_KEY_ID,
AWS_SECRET_ACCESS_KEY and AWS_SESSION_TOKEN) and --data-dir is this
replica's cache of them, so replicas share uploads and artifacts. Job
specs may name their model and data as s3:// URIs and ask for an s3://
output_uri; those use the tenant's own keys (--tenant-s3-credentials).
)";

constexpr char kFooter[] =
    R"(Prints "quantd serving on ADDRESS:PORT" on stdout when ready.
Exit codes: 0 after a clean shutdown, 2 bad flags or files, 1 other failure.)";

// A string flag; a non-empty default shows in the help.
void AddText(CLI::App& cmd, const std::string& name, std::string* value,
             const std::string& type, const std::string& help) {
  CLI::Option* option = cmd.add_option(name, *value, help)->type_name(type);
  if (!value->empty()) option->default_str(*value);
}

void AddAddressFlags(CLI::App& cmd, ServeFlags* f) {
  AddIntFlag(cmd, "--port", &f->port, IntAtLeast("--port", 0, 65535),
             "gRPC port (0 picks a free one)");
  AddText(cmd, "--metrics-address", &f->metrics_address, "A:P",
          "Prometheus /metrics endpoint; \":P\" listens on "
          "--listen-address's host, \"\" disables it");
  AddText(cmd, "--listen-address", &f->listen_address, "ADDR",
          "default 0.0.0.0 with --tokens-file, else 127.0.0.1");
  AddText(cmd, "--data-dir", &f->data_dir, "DIR", "blobs, job store, keys");
  cmd.add_option("--job-store", f->job_store,
                 "jobs and events: DIR/jobs.db (SQLite) unless an SQLite "
                 "path or a postgresql://USER@HOST:PORT/DB URL (password "
                 "from PGPASSWORD or PGPASSFILE, not the URL)")
      ->type_name("URL")
      ->envname("QUANTD_JOB_STORE");
  cmd.add_option("--blob-store", f->blob_store,
                 "uploads and artifacts: --data-dir unless "
                 "s3://BUCKET/PREFIX (object storage; --data-dir caches)")
      ->type_name("URL")
      ->envname("QUANTD_BLOB_STORE");
  AddText(cmd, "--s3-endpoint", &f->s3_endpoint, "URL",
          "S3 endpoint, e.g. http://minio:9000 (default AWS_ENDPOINT_URL_S3, "
          "AWS_ENDPOINT_URL, else AWS's for the region)");
  AddText(cmd, "--s3-region", &f->s3_region, "REGION",
          "S3 signing region (default AWS_REGION, AWS_DEFAULT_REGION, else "
          "us-east-1)");
  AddIntFlag(cmd, "--blob-cache-bytes", &f->blob_cache_bytes,
             IntAtLeast("--blob-cache-bytes", 0),
             "with --blob-store: the janitor cuts --data-dir's cache of "
             "blobs back to this size, least recently used first (0: no "
             "limit)");
  AddText(cmd, "--tenant-s3-credentials", &f->tenant_s3_credentials, "FILE",
          "\"<tenant> <access-key-id> <secret> [<endpoint> [<region>]]\" "
          "lines: the keys s3:// model/data URIs and output_uri use");
  cmd.add_flag("--tenant-s3-server-credentials",
               f->tenant_s3_server_credentials,
               "tenants without a line there use the server's own AWS_* keys "
               "for s3:// URIs, so they may read and write whatever that key "
               "reaches outside --blob-store's prefix (off: they cannot use "
               "s3:// URIs)");
  AddText(cmd, "--tokens-file", &f->tokens_file, "FILE",
          "\"<tenant> <token>\" lines: bearer tokens -> tenants");
  AddText(cmd, "--tls-cert", &f->tls_cert, "FILE",
          "server certificate (PEM); with --tls-key");
  AddText(cmd, "--tls-key", &f->tls_key, "FILE", "server private key (PEM)");
  AddText(cmd, "--tls-client-ca", &f->tls_client_ca, "FILE",
          "require client certificates signed by this CA");
}

void AddCapacityFlags(CLI::App& cmd, ServeFlags* f) {
  AddIntFlag(cmd, "--workers", &f->workers, IntAtLeast("--workers", 1),
             "jobs run at once");
  AddIntFlag(cmd, "--threads-per-job", &f->threads_per_job,
             IntAtLeast("--threads-per-job", 0),
             "OpenMP threads per job (0: cores / workers)");
  AddIntFlag(cmd, "--max-running-per-tenant", &f->max_running_per_tenant,
             IntAtLeast("--max-running-per-tenant", 0),
             "jobs of one tenant running at once (0: no limit beyond "
             "--workers)");
  AddIntFlag(cmd, "--max-upload-bytes", &f->max_upload_bytes,
             IntAtLeast("--max-upload-bytes", 1), "largest blob");
  AddIntFlag(cmd, "--max-tenant-storage-bytes", &f->max_tenant_storage_bytes,
             IntAtLeast("--max-tenant-storage-bytes", 1),
             "bytes per tenant: uploads, uploads in progress, artifacts");
  AddIntFlag(cmd, "--max-queued-jobs", &f->max_queued_jobs,
             IntAtLeast("--max-queued-jobs", 1), "queued jobs, all tenants");
  AddIntFlag(cmd, "--max-queued-per-tenant", &f->max_queued_per_tenant,
             IntAtLeast("--max-queued-per-tenant", 1),
             "queued jobs per tenant");
  AddIntFlag(cmd, "--max-message-bytes", &f->max_message_bytes,
             IntAtLeast("--max-message-bytes", 4096), "largest gRPC message");
  AddIntFlag(cmd, "--receive-window-bytes", &f->receive_window_bytes,
             IntAtLeast("--receive-window-bytes", 65535, 1 << 30),
             "HTTP/2 receive window per stream: bounds what concurrent "
             "uploads put on the network threads (other calls wait less); "
             "one upload's rate is at most window / round-trip time");
  AddIntFlag(cmd, "--max-attempts", &f->max_attempts,
             IntAtLeast("--max-attempts", 1),
             "restarts a running job survives");
  AddIntFlag(cmd, "--lease-seconds", &f->lease_seconds,
             IntAtLeast("--lease-seconds", 3),
             "a running job's lease on this replica, renewed every third of "
             "it; with a PostgreSQL --job-store, another replica re-queues "
             "the job once it runs out");
  AddIntFlag(cmd, "--grace-seconds", &f->grace_seconds,
             IntAtLeast("--grace-seconds", 0),
             "shutdown grace for running jobs");
  AddIntFlag(cmd, "--upload-idle-seconds", &f->upload_idle_seconds,
             IntAtLeast("--upload-idle-seconds", 1),
             "end an upload stream silent this long (it can resume)");
  AddIntFlag(cmd, "--upload-retention-seconds", &f->upload_retention_seconds,
             IntAtLeast("--upload-retention-seconds", 1),
             "remove an unfinished upload idle this long, ending its quota "
             "reservation");
  AddIntFlag(cmd, "--janitor-interval-seconds", &f->janitor_interval_seconds,
             IntAtLeast("--janitor-interval-seconds", 1),
             "how often stale uploads, orphan files and finished jobs' "
             "checkpoints are collected");
}

bool IsLoopback(const std::string& address) {
  return address == "127.0.0.1" || address == "localhost" || address == "[::1]";
}

}  // namespace

CLI::App* AddServeCommand(CLI::App& app, ServeFlags* flags) {
  CLI::App* cmd = AddCommand(app, "serve", kSummary, kDescription, kFooter);
  AddAddressFlags(*cmd, flags);
  AddCapacityFlags(*cmd, flags);
  cmd->callback([flags] { ThrowIfError(ResolveServeFlags(flags)); });
  return cmd;
}

absl::Status ResolveServeFlags(ServeFlags* flags) {
  if (flags->threads_per_job == 0) {
    const int64_t cores = std::max<int64_t>(
        1, static_cast<int64_t>(std::thread::hardware_concurrency()));
    flags->threads_per_job = std::max<int64_t>(1, cores / flags->workers);
  }
  // Without tokens every caller is the one tenant, so only this machine may
  // call.
  if (flags->listen_address.empty()) {
    flags->listen_address =
        flags->tokens_file.empty() ? "127.0.0.1" : "0.0.0.0";
  }
  // /metrics is unauthenticated: by default it listens where gRPC does, so
  // a loopback-only server does not expose it to the network.
  if (absl::StartsWith(flags->metrics_address, ":")) {
    const std::string& host = flags->listen_address;
    const bool bare_ipv6 = absl::StrContains(host, ':') && host[0] != '[';
    flags->metrics_address =
        absl::StrCat(bare_ipv6 ? "[" : "", host, bare_ipv6 ? "]" : "",
                     flags->metrics_address);
  }
  if (flags->tokens_file.empty() && !IsLoopback(flags->listen_address)) {
    return absl::InvalidArgumentError(
        "without --tokens-file quantd serves one tenant on loopback only; "
        "give --tokens-file to listen on other addresses");
  }
  if (flags->tls_cert.empty() && flags->tls_key.empty() &&
      !flags->tls_client_ca.empty()) {
    return absl::InvalidArgumentError(
        "--tls-client-ca needs --tls-cert and --tls-key");
  }
  return absl::OkStatus();
}

}  // namespace quantd
