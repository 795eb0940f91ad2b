#include "server/postgres_db.h"

#include <libpq-fe.h>
#include <poll.h>

#include <cerrno>
#include <cstring>
#include <functional>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"

namespace quantd {
namespace {

// Type OIDs (PostgreSQL's catalog/pg_type.h; stable across versions).
constexpr Oid kBoolOid = 16;
constexpr Oid kByteaOid = 17;
constexpr Oid kInt8Oid = 20;
constexpr Oid kInt2Oid = 21;
constexpr Oid kInt4Oid = 23;

uint64_t BigEndian(const char* p, int n) {
  uint64_t v = 0;
  for (int i = 0; i < n; ++i) v = (v << 8) | static_cast<unsigned char>(p[i]);
  return v;
}

// NOTICE messages ("relation already exists, skipping") are not errors;
// libpq would print them on stderr.
void IgnoreNotice(void*, const char*) {}

}  // namespace

PgResult::PgResult(pg_result* res) : res_(res) {}
PgResult::PgResult(PgResult&& o) noexcept
    : res_(std::exchange(o.res_, nullptr)) {}
PgResult& PgResult::operator=(PgResult&& o) noexcept {
  if (this != &o) {
    if (res_ != nullptr) PQclear(res_);
    res_ = std::exchange(o.res_, nullptr);
  }
  return *this;
}
PgResult::~PgResult() {
  if (res_ != nullptr) PQclear(res_);
}

int PgResult::rows() const { return res_ == nullptr ? 0 : PQntuples(res_); }

int64_t PgResult::Int(int row, int col) const {
  if (PQgetisnull(res_, row, col)) return 0;
  const char* p = PQgetvalue(res_, row, col);
  switch (PQftype(res_, col)) {
    case kBoolOid:
      return p[0] != 0;
    case kInt2Oid:
      return static_cast<int16_t>(BigEndian(p, 2));
    case kInt4Oid:
      return static_cast<int32_t>(BigEndian(p, 4));
    default:  // int8 (the schema has no other integer types)
      return static_cast<int64_t>(BigEndian(p, 8));
  }
}

std::string PgResult::Str(int row, int col) const {
  if (PQgetisnull(res_, row, col)) return "";
  return std::string(PQgetvalue(res_, row, col), PQgetlength(res_, row, col));
}

int64_t PgResult::Affected() const {
  const char* n = res_ == nullptr ? "" : PQcmdTuples(res_);
  return n[0] == '\0' ? 0 : std::strtoll(n, nullptr, 10);
}

PgParam ToPgParam(int64_t v) {
  std::string bytes(8, '\0');
  const uint64_t u = static_cast<uint64_t>(v);
  for (int i = 0; i < 8; ++i) bytes[i] = static_cast<char>(u >> (56 - 8 * i));
  return {kInt8Oid, std::move(bytes)};
}

PgParam ToPgParam(absl::string_view v) { return {kByteaOid, std::string(v)}; }

std::string RedactPostgresUrl(absl::string_view url) {
  const size_t scheme = url.find("://");
  if (scheme == absl::string_view::npos) return std::string(url);
  const size_t start = scheme + 3;
  const size_t at = url.find('@', start);
  const size_t slash = url.find('/', start);
  if (at == absl::string_view::npos ||
      (slash != absl::string_view::npos && slash < at)) {
    return std::string(url);
  }
  const size_t colon = url.find(':', start);
  if (colon == absl::string_view::npos || colon > at) return std::string(url);
  return absl::StrCat(url.substr(0, colon + 1), "***", url.substr(at));
}

absl::StatusOr<std::unique_ptr<PostgresDb>> PostgresDb::Connect(
    const std::string& url, const std::string& what) {
  pg_conn* conn = PQconnectdb(url.c_str());
  std::unique_ptr<PostgresDb> db(
      new PostgresDb(conn, RedactPostgresUrl(url), what));
  if (conn == nullptr || PQstatus(conn) != CONNECTION_OK) {
    return db->ConnectionError();
  }
  PQsetNoticeProcessor(conn, IgnoreNotice, nullptr);
  return db;
}

PostgresDb::~PostgresDb() {
  if (conn_ != nullptr) PQfinish(conn_);
}

absl::Status PostgresDb::ConnectionError() const {
  std::string message =
      conn_ == nullptr ? "out of memory" : PQerrorMessage(conn_);
  absl::StripTrailingAsciiWhitespace(&message);
  return absl::UnavailableError(absl::StrCat(
      "cannot reach the ", what_, " at ", where_, ": ", message,
      "; check the URL (host, port, database, user) and that PostgreSQL is "
      "running and accepts connections from here"));
}

absl::Status PostgresDb::EnsureConnected() {
  if (PQstatus(conn_) == CONNECTION_OK) return absl::OkStatus();
  if (in_transaction_) return ConnectionError();
  PQreset(conn_);
  if (PQstatus(conn_) != CONNECTION_OK) return ConnectionError();
  PQsetNoticeProcessor(conn_, IgnoreNotice, nullptr);
  return absl::OkStatus();
}

absl::Status PostgresDb::Ping() { return EnsureConnected(); }

absl::Status PostgresDb::Reconnect() {
  PQreset(conn_);
  if (PQstatus(conn_) != CONNECTION_OK) return ConnectionError();
  PQsetNoticeProcessor(conn_, IgnoreNotice, nullptr);
  return absl::OkStatus();
}

absl::Status PostgresDb::Listen(const std::string& channel) {
  for (char c : channel) {
    if (!absl::ascii_isalnum(static_cast<unsigned char>(c)) && c != '_') {
      return absl::InvalidArgumentError(
          absl::StrCat("'", channel, "' is not a channel name"));
    }
  }
  return Exec(absl::StrCat("LISTEN ", channel).c_str());
}

absl::StatusOr<std::vector<std::string>> PostgresDb::WaitForNotifications(
    absl::Duration timeout) {
  std::vector<std::string> payloads;
  auto drain = [&] {
    while (PGnotify* n = PQnotifies(conn_)) {
      payloads.emplace_back(n->extra);
      PQfreemem(n);
    }
  };
  if (PQstatus(conn_) != CONNECTION_OK) return ConnectionError();
  drain();  // already read with an earlier result
  if (!payloads.empty()) return payloads;
  pollfd fd{PQsocket(conn_), POLLIN, 0};
  if (fd.fd < 0) return ConnectionError();
  const int ready =
      poll(&fd, 1, static_cast<int>(absl::ToInt64Milliseconds(timeout)));
  if (ready < 0 && errno != EINTR) return ConnectionError();
  if (ready > 0 && PQconsumeInput(conn_) == 0) return ConnectionError();
  drain();
  return payloads;
}

absl::Status PostgresDb::ResultError(pg_result* res) const {
  if (res == nullptr || PQstatus(conn_) != CONNECTION_OK) {
    return ConnectionError();
  }
  const char* state = PQresultErrorField(res, PG_DIAG_SQLSTATE);
  const std::string code = state == nullptr ? "" : state;
  std::string message = PQresultErrorMessage(res);
  absl::StripTrailingAsciiWhitespace(&message);
  const std::string text = absl::StrCat(what_, " (", where_, "): ", message,
                                        " [SQLSTATE ", code, "]");
  auto cls = [&](const char* c) { return absl::StartsWith(code, c); };
  if (cls("08") || cls("57P")) {
    return absl::UnavailableError(
        absl::StrCat(text, "; the server went away, retry"));
  }
  if (code == "40001" || code == "40P01") {
    return absl::AbortedError(
        absl::StrCat(text, "; a concurrent change conflicted, retry"));
  }
  if (cls("53")) {
    return absl::ResourceExhaustedError(absl::StrCat(
        text, "; the database server is out of disk, memory or connections"));
  }
  if (code == "23505") return absl::AlreadyExistsError(text);
  if (cls("23")) return absl::FailedPreconditionError(text);
  if (cls("22")) return absl::InvalidArgumentError(text);
  if (cls("28") || code == "42501") {
    return absl::PermissionDeniedError(
        absl::StrCat(text,
                     "; grant quantd's database user the rights it needs (it "
                     "creates its own tables on first start)"));
  }
  if (code == "3D000") {
    return absl::FailedPreconditionError(
        absl::StrCat(text, "; create the database first (createdb)"));
  }
  return absl::InternalError(text);
}

absl::StatusOr<PgResult> PostgresDb::Run(const char* sql,
                                         const std::vector<PgParam>& params) {
  std::vector<Oid> types;
  std::vector<const char*> values;
  std::vector<int> lengths, formats;
  for (const PgParam& p : params) {
    types.push_back(p.oid);
    values.push_back(p.bytes.data());
    lengths.push_back(static_cast<int>(p.bytes.size()));
    formats.push_back(1);  // binary
  }
  return Execute([&] {
    return PQexecParams(conn_, sql, static_cast<int>(params.size()),
                        types.data(), values.data(), lengths.data(),
                        formats.data(), /*resultFormat=*/1);
  });
}

absl::Status PostgresDb::Exec(const char* sql) {
  return Execute([&] { return PQexec(conn_, sql); }).status();
}

absl::StatusOr<PgResult> PostgresDb::Execute(
    const std::function<pg_result*()>& send) {
  // A connection lost since the last call (the server restarted, a
  // failover) shows only when a statement fails; outside a transaction
  // the statement is sent again once on a new connection.
  for (int attempt = 0;; ++attempt) {
    if (absl::Status s = EnsureConnected(); !s.ok()) return s;
    PgResult result(send());
    pg_result* raw = result.res_;
    const ExecStatusType status =
        raw == nullptr ? PGRES_FATAL_ERROR : PQresultStatus(raw);
    if (status == PGRES_COMMAND_OK || status == PGRES_TUPLES_OK) {
      return result;
    }
    if (attempt == 0 && !in_transaction_ && PQstatus(conn_) != CONNECTION_OK) {
      continue;
    }
    return ResultError(raw);
  }
}

PostgresDb::Transaction::~Transaction() {
  if (!open_) return;
  PQclear(PQexec(db_.conn_, "ROLLBACK"));
  db_.in_transaction_ = false;
}

absl::Status PostgresDb::Transaction::Begin() {
  if (absl::Status s = db_.Exec("BEGIN"); !s.ok()) return s;
  open_ = true;
  db_.in_transaction_ = true;
  return absl::OkStatus();
}

absl::Status PostgresDb::Transaction::Commit() {
  absl::Status s = db_.Exec("COMMIT");
  if (s.ok()) {
    open_ = false;
    db_.in_transaction_ = false;
  }
  return s;
}

}  // namespace quantd
