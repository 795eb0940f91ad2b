// One SQLite connection as every quantd database uses it: write-ahead log,
// synchronous commits, foreign keys, a busy timeout, cached prepared
// statements, transactions that roll back unless committed, and SQLite
// errors mapped to status codes a client can act on. The job store and the
// blob index are built on it; neither touches sqlite3 directly.
//
// Not thread-safe: an owner serializes its calls (both owners hold a mutex).
//
//   QUANTD_ASSIGN_OR_RETURN(std::unique_ptr<SqliteDb> db,
//                           SqliteDb::Open(path, "job database"));
//   SqliteDb::Transaction txn(*db);
//   QUANTD_RETURN_IF_ERROR(txn.Begin());
//   SqliteStatement st = db->Prepare("INSERT INTO t (a, b) VALUES (?1, ?2)");
//   st.Bind(int64_t{1}, "text");
//   QUANTD_RETURN_IF_ERROR(st.Run());
//   QUANTD_RETURN_IF_ERROR(txn.Commit());
#ifndef QUANTD_SERVER_SQLITE_DB_H_
#define QUANTD_SERVER_SQLITE_DB_H_

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <type_traits>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

struct sqlite3;
struct sqlite3_stmt;

namespace quantd {

// Binds as a BLOB (strings bind as TEXT).
struct SqlBlob {
  absl::string_view bytes;
};

// A cached prepared statement, borrowed for one use. The first error (from
// preparing or binding) is kept and reported by Step, so call sites bind
// without checking each call. Reset on destruction, which ends the
// statement and drops the copies of bound values.
class SqliteStatement {
 public:
  SqliteStatement(sqlite3* db, sqlite3_stmt* s, int rc, const char* sql,
                  const std::string* what)
      : db_(db), s_(s), rc_(rc), sql_(sql), what_(what) {}
  SqliteStatement(const SqliteStatement&) = delete;  // a prvalue only
  ~SqliteStatement();

  // Binds ?1, ?2, ... in order: integers and enums as INTEGER, strings as
  // TEXT, SqlBlob as BLOB.
  template <typename... Args>
  void Bind(const Args&... args) {
    int i = 0;
    (BindOne(++i, args), ...);
  }

  // True if a row is available, false when the statement is done.
  absl::StatusOr<bool> Step();
  // The first column of the first row as an integer (0 if no row).
  absl::StatusOr<int64_t> Scalar();
  // Runs a statement that returns no rows (or whose rows are not needed).
  absl::Status Run() { return Step().status(); }

  int64_t ColInt(int c);
  std::string ColStr(int c);

 private:
  bool ok() const;
  void BindOne(int i, int64_t v);
  void BindOne(int i, int32_t v) { BindOne(i, int64_t{v}); }
  template <typename E, typename = std::enable_if_t<std::is_enum_v<E>>>
  void BindOne(int i, E v) {
    BindOne(i, static_cast<int64_t>(v));
  }
  // Empty values bind as '' / X'' (a null pointer would bind SQL NULL).
  void BindOne(int i, absl::string_view v);
  void BindOne(int i, const std::string& v) {
    BindOne(i, absl::string_view(v));
  }
  void BindOne(int i, const char* v) { BindOne(i, absl::string_view(v)); }
  void BindOne(int i, SqlBlob v);

  sqlite3* db_;
  sqlite3_stmt* s_;
  int rc_;
  const char* sql_;
  const std::string* what_;
};

class SqliteDb {
 public:
  // Opens (creating) the database file at `path`; `what` names it in every
  // error message ("job database"). Fails with FailedPrecondition when the
  // file cannot be opened or cannot use a write-ahead log (network file
  // systems), saying what to do.
  static absl::StatusOr<std::unique_ptr<SqliteDb>> Open(
      const std::string& path, const std::string& what);
  ~SqliteDb();
  SqliteDb(const SqliteDb&) = delete;
  SqliteDb& operator=(const SqliteDb&) = delete;

  // A statement prepared once per SQL text (keyed by the literal's address:
  // pass string literals only) and reused.
  SqliteStatement Prepare(const char* sql);
  // Runs one or more statements that return no rows.
  absl::Status Exec(const char* sql);
  // Rows changed by the last INSERT, UPDATE or DELETE.
  int64_t Changes();
  const std::string& path() const { return path_; }

  // BEGIN IMMEDIATE takes the write lock up front, so read-then-write
  // sequences (compare-and-set, max + 1, idempotency checks) cannot
  // interleave with another writer. Rolls back unless committed.
  class Transaction {
   public:
    explicit Transaction(SqliteDb& db) : db_(db) {}
    ~Transaction();
    absl::Status Begin();
    absl::Status Commit();

   private:
    SqliteDb& db_;
    bool open_ = false;
  };

 private:
  SqliteDb(sqlite3* db, std::string path, std::string what)
      : db_(db), path_(std::move(path)), what_(std::move(what)) {}

  sqlite3* db_;
  const std::string path_;
  const std::string what_;
  std::map<const char*, sqlite3_stmt*> statements_;
};

}  // namespace quantd

#endif  // QUANTD_SERVER_SQLITE_DB_H_
