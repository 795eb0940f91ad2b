// The flags of `quantd serve`: their values, their CLI11 declaration and
// help, and the checks between them.
#ifndef QUANTD_SERVER_SERVE_FLAGS_H_
#define QUANTD_SERVER_SERVE_FLAGS_H_

#include <cstdint>
#include <string>

#include "CLI/CLI.hpp"
#include "absl/status/status.h"

namespace quantd {

// Defaults are the flags' defaults; AddServeCommand's help shows them.
struct ServeFlags {
  int64_t port = 50051;
  // "": no /metrics; ":P" (the default) is port P on --listen-address's
  // host, so /metrics is no more exposed than gRPC (ResolveServeFlags).
  std::string metrics_address = ":9464";
  // "" until ResolveServeFlags: 0.0.0.0 with a tokens file, else 127.0.0.1.
  std::string listen_address;
  std::string data_dir = "quantd-data";
  // "" (DATA_DIR/jobs.db), an SQLite path, or a postgres:// URL.
  std::string job_store;
  // "" (blobs in DATA_DIR) or s3://bucket/prefix (DATA_DIR is a cache).
  std::string blob_store;
  std::string s3_endpoint;       // "" : AWS_ENDPOINT_URL(_S3), else AWS's
  std::string s3_region;         // "" : AWS_REGION / AWS_DEFAULT_REGION
  int64_t blob_cache_bytes = 0;  // with --blob-store; 0: no limit
  // Tenants' own object-storage keys for s3:// references in job specs.
  std::string tenant_s3_credentials;
  bool tenant_s3_server_credentials = false;  // others use the server's
  std::string tokens_file;
  std::string tls_cert;
  std::string tls_key;
  std::string tls_client_ca;
  int64_t workers = 1;
  int64_t threads_per_job = 0;  // 0 until ResolveServeFlags: cores / workers
  int64_t max_running_per_tenant = 0;  // 0: no limit beyond workers
  int64_t max_upload_bytes = int64_t{4} << 30;
  int64_t max_tenant_storage_bytes = int64_t{50} << 30;
  int64_t max_queued_jobs = 1000;
  int64_t max_queued_per_tenant = 100;
  int64_t max_message_bytes = int64_t{8} << 20;
  int64_t receive_window_bytes = 256 << 10;  // ConfigureServerTransport
  int64_t max_attempts = 3;
  int64_t grace_seconds = 30;
  int64_t lease_seconds = 30;
  int64_t upload_idle_seconds = 120;         // a silent upload stream ends
  int64_t upload_retention_seconds = 86400;  // an idle upload is removed
  int64_t janitor_interval_seconds = 300;
};

// Declares the `serve` command and its flags on `app`; parsing fills
// `*flags` and, once all flags are read, resolves them (ResolveServeFlags),
// so a parse that succeeds leaves `*flags` ready to serve.
CLI::App* AddServeCommand(CLI::App& app, ServeFlags* flags);

// Fills the defaults that depend on other flags or on the machine
// (listen address, threads per job) and rejects combinations that make no
// sense or are unsafe: a non-loopback address without tokens, a client CA
// without a server certificate. InvalidArgument says which.
absl::Status ResolveServeFlags(ServeFlags* flags);

}  // namespace quantd

#endif  // QUANTD_SERVER_SERVE_FLAGS_H_
