// The job store's PostgreSQL schema and its migrations
// (server/postgres_job_store.cc applies them at open, in one transaction
// holding kSchemaLockKey, so that replicas starting together apply each
// migration once). Versions are counted separately from the SQLite file's.
#ifndef QUANTD_SERVER_POSTGRES_JOB_STORE_SCHEMA_H_
#define QUANTD_SERVER_POSTGRES_JOB_STORE_SCHEMA_H_

#include <cstdint>

namespace quantd {

// Advisory lock keys (pg_advisory_xact_lock): arbitrary, fixed, and only
// taken inside transactions.
inline constexpr int64_t kSchemaLockKey = 0x71756e7464000001;  // "quntd" 1
inline constexpr int64_t kCreateLockKey = 0x71756e7464000002;

inline constexpr const char* kPostgresSchemaTable = R"sql(
CREATE TABLE IF NOT EXISTS quantd_schema (
  component BYTEA PRIMARY KEY,
  version INTEGER NOT NULL
);
)sql";

// Version 1: the SQLite schema's version 2 (jobs with their progress and
// report, events), with every string as bytea, plus the keys every replica
// must share (the page token key). `seq` orders jobs by
// creation (a sequence never hands out a value twice) and is List's page
// position.
inline constexpr const char* kPostgresSchemaV1 = R"sql(
CREATE TABLE jobs (
  seq BIGSERIAL PRIMARY KEY,
  id BYTEA NOT NULL UNIQUE,
  tenant BYTEA NOT NULL,
  request_id BYTEA NOT NULL,
  state INTEGER NOT NULL,
  priority INTEGER NOT NULL,
  spec BYTEA NOT NULL,
  display_name BYTEA NOT NULL,
  labels BYTEA NOT NULL,
  attempts INTEGER NOT NULL,
  error BYTEA NOT NULL,
  create_time_us BIGINT NOT NULL,
  update_time_us BIGINT NOT NULL,
  start_time_us BIGINT NOT NULL,
  end_time_us BIGINT NOT NULL,
  model_sha256 BYTEA NOT NULL,
  model_size BIGINT NOT NULL,
  report_sha256 BYTEA NOT NULL,
  report_size BIGINT NOT NULL,
  progress BYTEA NOT NULL DEFAULT '',
  report BYTEA NOT NULL DEFAULT ''
);
CREATE UNIQUE INDEX jobs_by_request ON jobs(tenant, request_id)
  WHERE request_id <> '';
CREATE INDEX jobs_by_tenant ON jobs(tenant, seq);
CREATE INDEX jobs_by_tenant_state ON jobs(tenant, state, seq);
CREATE INDEX jobs_by_queue ON jobs(state, priority DESC, seq);
CREATE INDEX jobs_by_model ON jobs(model_sha256) WHERE model_sha256 <> '';
CREATE INDEX jobs_by_report ON jobs(report_sha256) WHERE report_sha256 <> '';
CREATE TABLE events (
  job_id BYTEA NOT NULL REFERENCES jobs(id) ON DELETE CASCADE,
  sequence BIGINT NOT NULL,
  time_us BIGINT NOT NULL,
  payload BYTEA NOT NULL,
  PRIMARY KEY (job_id, sequence)
);
CREATE TABLE quantd_keys (
  name BYTEA PRIMARY KEY,
  key BYTEA NOT NULL
);
)sql";

// Version 2: the lease of a running job (owner replica, expiry).
inline constexpr const char* kPostgresSchemaV2 = R"sql(
ALTER TABLE jobs ADD COLUMN lease_owner BYTEA NOT NULL DEFAULT '';
ALTER TABLE jobs ADD COLUMN lease_expiry_us BIGINT NOT NULL DEFAULT 0;
CREATE INDEX jobs_by_lease ON jobs(lease_owner) WHERE lease_owner <> '';
)sql";

}  // namespace quantd

#endif  // QUANTD_SERVER_POSTGRES_JOB_STORE_SCHEMA_H_
