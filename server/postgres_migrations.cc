#include "server/postgres_migrations.h"

#include <cstdint>

#include "absl/strings/str_cat.h"
#include "server/postgres_job_store_schema.h"
#include "util/status_macros.h"

namespace quantd {

absl::Status MigrateComponent(PostgresDb& db, const std::string& component,
                              const std::vector<const char*>& migrations,
                              const std::string& what) {
  // Replicas starting together wait here for the first to finish.
  QUANTD_RETURN_IF_ERROR(
      db.Query("SELECT pg_advisory_xact_lock($1)", kSchemaLockKey).status());
  QUANTD_RETURN_IF_ERROR(db.Exec(kPostgresSchemaTable));
  QUANTD_ASSIGN_OR_RETURN(
      PgResult row,
      db.Query("SELECT version FROM quantd_schema WHERE component = $1",
               component));
  const int64_t version = row.rows() > 0 ? row.Int(0, 0) : 0;
  const int64_t latest = static_cast<int64_t>(migrations.size());
  if (version > latest) {
    return absl::FailedPreconditionError(absl::StrCat(
        what, " has schema version ", version,
        ", written by a newer quantd; this one understands up to version ",
        latest, ". Run the newer quantd or use another database"));
  }
  for (int64_t v = version; v < latest; ++v) {
    QUANTD_RETURN_IF_ERROR(db.Exec(migrations[v]));
  }
  return db
      .Query(
          "INSERT INTO quantd_schema (component, version) VALUES ($1, $2) "
          "ON CONFLICT (component) DO UPDATE SET version = $2",
          component, latest)
      .status();
}

}  // namespace quantd
