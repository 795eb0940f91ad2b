// The job store's SQLite schema and its migrations (server/job_store.cc
// applies them at open, inside one transaction).
#ifndef QUANTD_SERVER_JOB_STORE_SCHEMA_H_
#define QUANTD_SERVER_JOB_STORE_SCHEMA_H_

namespace quantd {

// Version 1: kSchema. Version 2 (kMigrationTo2) keeps each job's summary
// beside it: the last progress and the report (binary protobuf), so that
// GetJob and ListJobs read one row instead of scanning events and reading
// report files. A later change bumps the version and adds a migration;
// older binaries then refuse the file. Version 3 (kMigrationTo3) adds the
// lease of a running job (owner replica, expiry).
inline constexpr int kSchemaVersion = 3;

// `seq` orders jobs by creation (AUTOINCREMENT never reuses a value, even
// after deletes), so it is both the "newest first" order and a stable page
// position. Labels are a length-prefixed blob: they are only ever read and
// written together with their job.
inline constexpr const char* kSchema = R"sql(
CREATE TABLE jobs (
  seq INTEGER PRIMARY KEY AUTOINCREMENT,
  id TEXT NOT NULL UNIQUE,
  tenant TEXT NOT NULL,
  request_id TEXT NOT NULL,
  state INTEGER NOT NULL,
  priority INTEGER NOT NULL,
  spec BLOB NOT NULL,
  display_name TEXT NOT NULL,
  labels BLOB NOT NULL,
  attempts INTEGER NOT NULL,
  error TEXT NOT NULL,
  create_time_us INTEGER NOT NULL,
  update_time_us INTEGER NOT NULL,
  start_time_us INTEGER NOT NULL,
  end_time_us INTEGER NOT NULL,
  model_sha256 TEXT NOT NULL,
  model_size INTEGER NOT NULL,
  report_sha256 TEXT NOT NULL,
  report_size INTEGER NOT NULL
);
CREATE UNIQUE INDEX jobs_by_request ON jobs(tenant, request_id)
  WHERE request_id != '';
CREATE INDEX jobs_by_tenant ON jobs(tenant, seq);
CREATE INDEX jobs_by_tenant_state ON jobs(tenant, state, seq);
CREATE INDEX jobs_by_queue ON jobs(state, priority DESC, seq);
CREATE INDEX jobs_by_model ON jobs(model_sha256) WHERE model_sha256 != '';
CREATE INDEX jobs_by_report ON jobs(report_sha256) WHERE report_sha256 != '';
CREATE TABLE events (
  job_id TEXT NOT NULL REFERENCES jobs(id) ON DELETE CASCADE,
  sequence INTEGER NOT NULL,
  time_us INTEGER NOT NULL,
  payload BLOB NOT NULL,
  PRIMARY KEY (job_id, sequence)
) WITHOUT ROWID;
PRAGMA user_version = 1;
)sql";

inline constexpr const char* kMigrationTo2 = R"sql(
ALTER TABLE jobs ADD COLUMN progress BLOB NOT NULL DEFAULT X'';
ALTER TABLE jobs ADD COLUMN report BLOB NOT NULL DEFAULT X'';
PRAGMA user_version = 2;
)sql";

inline constexpr const char* kMigrationTo3 = R"sql(
ALTER TABLE jobs ADD COLUMN lease_owner TEXT NOT NULL DEFAULT '';
ALTER TABLE jobs ADD COLUMN lease_expiry_us INTEGER NOT NULL DEFAULT 0;
PRAGMA user_version = 3;
)sql";

#define JOB_COLUMNS                                                          \
  "seq, id, tenant, request_id, state, priority, spec, display_name, "       \
  "labels, attempts, error, create_time_us, update_time_us, start_time_us, " \
  "end_time_us, model_sha256, model_size, report_sha256, report_size, "      \
  "progress, report, lease_owner, lease_expiry_us"

}  // namespace quantd

#endif  // QUANTD_SERVER_JOB_STORE_SCHEMA_H_
