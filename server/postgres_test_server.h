// A real PostgreSQL server for tests, started by the test itself: initdb
// into a fresh temporary folder, pg_ctl start on a free loopback port
// (trust authentication, loopback only), stopped and removed on
// destruction. PostgreSQL refuses to run as root, so as root the server runs
// as the `postgres` user that Debian's postgresql package creates. Include
// only from tests.
//
//   static PostgresTestServer* server = PostgresTestServer::Shared();
//   absl::StatusOr<std::string> url = server->CreateDatabase();
//   // "postgresql://postgres@127.0.0.1:PORT/quantd_test_3"
#ifndef QUANTD_SERVER_POSTGRES_TEST_SERVER_H_
#define QUANTD_SERVER_POSTGRES_TEST_SERVER_H_

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "server/postgres_db.h"
#include "util/status_macros.h"

namespace quantd {

class PostgresTestServer {
 public:
  // One server per test binary, started on first use; nullptr (with the
  // reason on stderr) when it cannot start.
  static PostgresTestServer* Shared() {
    static PostgresTestServer* server = [] {
      absl::StatusOr<std::unique_ptr<PostgresTestServer>> s = Start();
      if (!s.ok()) {
        std::fprintf(stderr, "PostgreSQL test server: %s\n",
                     std::string(s.status().message()).c_str());
        return static_cast<PostgresTestServer*>(nullptr);
      }
      std::atexit([] { delete Shared(); });
      return s->release();
    }();
    return server;
  }

  static absl::StatusOr<std::unique_ptr<PostgresTestServer>> Start() {
    std::unique_ptr<PostgresTestServer> s(new PostgresTestServer());
    std::string bindir;
    if (absl::Status st = Output("pg_config --bindir", &bindir); !st.ok()) {
      return absl::FailedPreconditionError(
          absl::StrCat("pg_config not found (install libpq-dev and postgresql: "
                       "tools/install-deps.sh): ",
                       st.message()));
    }
    s->bin_ = std::string(absl::StripAsciiWhitespace(bindir));
    char tmpl[] = "/tmp/quantd_pg_XXXXXX";
    if (mkdtemp(tmpl) == nullptr) {
      return absl::InternalError("mkdtemp failed");
    }
    s->dir_ = tmpl;
    s->as_user_ = geteuid() == 0 ? "runuser -u postgres -- " : "";
    if (geteuid() == 0) {
      QUANTD_RETURN_IF_ERROR(
          s->Run(absl::StrCat("chown postgres '", s->dir_, "'")));
    }
    QUANTD_RETURN_IF_ERROR(s->Run(
        absl::StrCat(s->as_user_, s->bin_, "/initdb -D '", s->dir_,
                     "/data' -U postgres --auth=trust --no-sync -E UTF8 >'",
                     s->dir_, "/initdb.log' 2>&1")));
    s->port_ = FreePort();
    QUANTD_RETURN_IF_ERROR(s->StartServer());
    s->started_ = true;
    return s;
  }

  ~PostgresTestServer() {
    if (started_) {
      Run(absl::StrCat(as_user_, bin_, "/pg_ctl -D '", dir_,
                       "/data' -m immediate -w stop >/dev/null 2>&1"))
          .ok();
    }
    if (!dir_.empty()) {
      std::system(absl::StrCat("rm -rf '", dir_, "'").c_str());
    }
  }

  std::string Url(const std::string& database) const {
    return absl::StrCat("postgresql://postgres@127.0.0.1:", port_, "/",
                        database);
  }

  // A new, empty database; returns its URL.
  absl::StatusOr<std::string> CreateDatabase() {
    static std::atomic<int> next{0};
    const std::string name = absl::StrCat("quantd_test_", next++);
    absl::StatusOr<std::unique_ptr<PostgresDb>> db =
        PostgresDb::Connect(Url("postgres"), "test server");
    if (!db.ok()) return db.status();
    absl::Status s =
        (*db)->Exec(absl::StrCat("CREATE DATABASE ", name).c_str());
    if (!s.ok()) return s;
    return Url(name);
  }

  // Stops the server as a crash would (pg_ctl -m immediate) and starts it
  // again on the same port and data.
  absl::Status Restart() {
    absl::Status s = Run(absl::StrCat(as_user_, bin_, "/pg_ctl -D '", dir_,
                                      "/data' -m immediate -w stop "
                                      ">/dev/null 2>&1"));
    if (!s.ok()) return s;
    return StartServer();
  }

 private:
  PostgresTestServer() = default;

  absl::Status StartServer() const {
    return Run(absl::StrCat(as_user_, bin_, "/pg_ctl -D '", dir_, "/data' -l '",
                            dir_,
                            "/server.log' -w -t 120 -o "
                            "\"-p ",
                            port_, " -k '", dir_,
                            "' -c listen_addresses=127.0.0.1 -c fsync=off\" "
                            "start >/dev/null"));
  }

  absl::Status Run(const std::string& command) const {
    const int rc = std::system(command.c_str());
    if (rc == 0) return absl::OkStatus();
    return absl::InternalError(absl::StrCat("`", command, "` failed (status ",
                                            rc, "); see ", dir_, "/*.log"));
  }

  static absl::Status Output(const std::string& command, std::string* out) {
    FILE* p = popen(command.c_str(), "r");
    if (p == nullptr) return absl::InternalError("popen failed");
    char buf[256];
    while (std::fgets(buf, sizeof(buf), p) != nullptr) out->append(buf);
    const int rc = pclose(p);
    if (rc != 0 || out->empty()) {
      return absl::InternalError(absl::StrCat("`", command, "` failed"));
    }
    return absl::OkStatus();
  }

  static int FreePort() {
    const int fd = socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    addr.sin_port = 0;
    socklen_t len = sizeof(addr);
    int port = 0;
    if (bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0 &&
        getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) == 0) {
      port = ntohs(addr.sin_port);
    }
    close(fd);
    return port;
  }

  std::string bin_, dir_, as_user_;
  int port_ = 0;
  bool started_ = false;
};

}  // namespace quantd

#endif  // QUANTD_SERVER_POSTGRES_TEST_SERVER_H_
