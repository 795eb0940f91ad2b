// Versioned schemas in a PostgreSQL database several replicas share: each
// component (the job store's "jobs", the blob index's "blobs") keeps its
// version in the table quantd_schema, and applies the migrations it lacks
// while holding an advisory lock, so replicas starting together apply each
// migration once.
//
//   PostgresDb::Transaction txn(db);
//   QUANTD_RETURN_IF_ERROR(txn.Begin());
//   QUANTD_RETURN_IF_ERROR(MigrateComponent(db, "blobs", {kV1, kV2},
//                                           "the blob index"));
//   QUANTD_RETURN_IF_ERROR(txn.Commit());
#ifndef QUANTD_SERVER_POSTGRES_MIGRATIONS_H_
#define QUANTD_SERVER_POSTGRES_MIGRATIONS_H_

#include <string>
#include <vector>

#include "absl/status/status.h"
#include "server/postgres_db.h"

namespace quantd {

// Inside the caller's open transaction: waits for the schema lock, applies
// migrations[v..] to a component at version v (migrations[i] makes version
// i + 1) and records the last version. FailedPrecondition when the database
// is at a newer version than this quantd knows (`what` names the
// component in that message).
absl::Status MigrateComponent(PostgresDb& db, const std::string& component,
                              const std::vector<const char*>& migrations,
                              const std::string& what);

}  // namespace quantd

#endif  // QUANTD_SERVER_POSTGRES_MIGRATIONS_H_
