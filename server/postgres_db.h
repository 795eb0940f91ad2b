// One PostgreSQL connection (libpq) as quantd's stores use it: parameters
// and results in binary form (so bytes round-trip exactly and integers need
// no parsing), transactions that roll back unless committed, a reconnect
// when the server went away between calls, and PostgreSQL's SQLSTATE codes
// mapped to status codes a client can act on. Passwords never appear in
// messages: the URL is shown with its password replaced by "***".
//
// Not thread-safe: an owner serializes its calls (the job store holds a
// mutex).
//
//   QUANTD_ASSIGN_OR_RETURN(std::unique_ptr<PostgresDb> db,
//       PostgresDb::Connect("postgresql://quantd@db:5432/quantd",
//                           "job database"));
//   PostgresDb::Transaction txn(*db);
//   QUANTD_RETURN_IF_ERROR(txn.Begin());
//   QUANTD_ASSIGN_OR_RETURN(PgResult r,
//       db->Query("SELECT state FROM jobs WHERE id = $1", id));
//   int64_t state = r.rows() > 0 ? r.Int(0, 0) : 0;
//   QUANTD_RETURN_IF_ERROR(txn.Commit());
//
// Strings bind as BYTEA and integers (and enums) as BIGINT; result columns
// of type bytea/text read with Str, smallint/integer/bigint/boolean with
// Int.
#ifndef QUANTD_SERVER_POSTGRES_DB_H_
#define QUANTD_SERVER_POSTGRES_DB_H_

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <type_traits>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"

struct pg_conn;
struct pg_result;

namespace quantd {

// A query's rows, in binary format.
class PgResult {
 public:
  explicit PgResult(pg_result* res);
  PgResult(PgResult&&) noexcept;
  PgResult& operator=(PgResult&&) noexcept;
  ~PgResult();

  int rows() const;
  // An integer column (int2, int4, int8 or bool); 0 for NULL.
  int64_t Int(int row, int col) const;
  // A bytea or text column's bytes; empty for NULL.
  std::string Str(int row, int col) const;
  // Rows an INSERT, UPDATE or DELETE changed.
  int64_t Affected() const;

 private:
  friend class PostgresDb;
  pg_result* res_;
};

// A parameter in binary form: its type's OID and bytes.
struct PgParam {
  unsigned int oid;
  std::string bytes;
};

PgParam ToPgParam(int64_t v);
inline PgParam ToPgParam(int32_t v) { return ToPgParam(int64_t{v}); }
template <typename E, typename = std::enable_if_t<std::is_enum_v<E>>>
PgParam ToPgParam(E v) {
  return ToPgParam(static_cast<int64_t>(v));
}
PgParam ToPgParam(absl::string_view v);
inline PgParam ToPgParam(const std::string& v) {
  return ToPgParam(absl::string_view(v));
}
inline PgParam ToPgParam(const char* v) {
  return ToPgParam(absl::string_view(v));
}

// `url` with the password of its user info (if any) replaced by "***".
std::string RedactPostgresUrl(absl::string_view url);

class PostgresDb {
 public:
  // Connects to `url` (libpq's connection URI); `what` names the database
  // in every error message ("job database").
  static absl::StatusOr<std::unique_ptr<PostgresDb>> Connect(
      const std::string& url, const std::string& what);
  ~PostgresDb();
  PostgresDb(const PostgresDb&) = delete;
  PostgresDb& operator=(const PostgresDb&) = delete;

  // Runs one statement with parameters $1, $2, ... bound in order.
  template <typename... Args>
  absl::StatusOr<PgResult> Query(const char* sql, const Args&... args) {
    return Run(sql, std::vector<PgParam>{ToPgParam(args)...});
  }
  // Runs one or more statements without parameters (schema scripts).
  absl::Status Exec(const char* sql);
  // Whether the connection is up (after a reconnect, if it was down).
  absl::Status Ping();

  // LISTEN on `channel` (an identifier: letters, digits, underscores).
  absl::Status Listen(const std::string& channel);
  // The payloads of notifications that arrived, waiting up to `timeout` for
  // the first; empty after the timeout. Unavailable when the connection
  // broke (reconnect with Reconnect() and Listen again: notifications sent
  // meanwhile are lost).
  absl::StatusOr<std::vector<std::string>> WaitForNotifications(
      absl::Duration timeout);
  absl::Status Reconnect();

  // BEGIN ... COMMIT; rolls back unless committed. Read-then-write
  // sequences lock the rows they read (SELECT ... FOR UPDATE) or take an
  // advisory lock: PostgreSQL's default isolation is READ COMMITTED.
  class Transaction {
   public:
    explicit Transaction(PostgresDb& db) : db_(db) {}
    ~Transaction();
    absl::Status Begin();
    absl::Status Commit();

   private:
    PostgresDb& db_;
    bool open_ = false;
  };

 private:
  PostgresDb(pg_conn* conn, std::string where, std::string what)
      : conn_(conn), where_(std::move(where)), what_(std::move(what)) {}

  absl::StatusOr<PgResult> Run(const char* sql,
                               const std::vector<PgParam>& params);
  // Sends a statement (`send` returns its result) and checks the result.
  absl::StatusOr<PgResult> Execute(const std::function<pg_result*()>& send);
  // Reconnects when the connection is down and no transaction is open
  // (a transaction cannot survive its connection).
  absl::Status EnsureConnected();
  absl::Status ResultError(pg_result* res) const;
  absl::Status ConnectionError() const;

  pg_conn* conn_;
  const std::string where_;  // the redacted URL
  const std::string what_;
  bool in_transaction_ = false;
};

}  // namespace quantd

#endif  // QUANTD_SERVER_POSTGRES_DB_H_
