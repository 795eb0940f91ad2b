// A real S3-protocol server for tests, started by the test itself:
// tests/s3/serve.py runs s3rver (npm, installed by tests/s3/install.sh) on a
// temporary folder behind a proxy that checks every request's SigV4
// signature with botocore and its body against x-amz-content-sha256.
// Stopped and removed on destruction. Include only from tests.
//
//   absl::StatusOr<std::unique_ptr<S3TestServer>> s3 = S3TestServer::Start(
//       {"AK:SK", "TENANTKEY:TENANTSECRET:tenant-bucket"},
//       {"quantd", "tenant-bucket"});
//   S3Config config = (*s3)->Config("quantd", "AK", "SK");
#ifndef QUANTD_SERVER_S3_TEST_SERVER_H_
#define QUANTD_SERVER_S3_TEST_SERVER_H_

#include <signal.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <fstream>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "server/s3_config.h"

namespace quantd {

class S3TestServer {
 public:
  // `keys`: "ACCESS:SECRET" or "ACCESS:SECRET:bucket,bucket" (limited to
  // those buckets); `buckets` exist from the start.
  static absl::StatusOr<std::unique_ptr<S3TestServer>> Start(
      const std::vector<std::string>& keys,
      const std::vector<std::string>& buckets) {
    std::unique_ptr<S3TestServer> s(new S3TestServer());
    char tmpl[] = "/tmp/quantd_s3_XXXXXX";
    if (mkdtemp(tmpl) == nullptr) return absl::InternalError("mkdtemp failed");
    s->dir_ = tmpl;
    std::vector<std::string> args = {
        "/usr/bin/python3",
        std::string(QUANTD_SOURCE_DIR) + "/tests/s3/serve.py",
        "--dir",
        s->dir_ + "/data",
        "--port-file",
        s->dir_ + "/port"};
    for (const std::string& k : keys) args.insert(args.end(), {"--key", k});
    for (const std::string& b : buckets) {
      args.insert(args.end(), {"--bucket", b});
    }
    const std::string log = s->dir_ + "/serve.log";
    s->pid_ = fork();
    if (s->pid_ == 0) {
      std::freopen(log.c_str(), "w", stderr);
      std::freopen(log.c_str(), "a", stdout);
      std::vector<char*> argv;
      for (std::string& a : args) argv.push_back(a.data());
      argv.push_back(nullptr);
      execvp(argv[0], argv.data());
      _exit(127);
    }
    for (int i = 0; i < 600; ++i) {  // up to 60 s on a busy machine
      std::ifstream port(s->dir_ + "/port");
      if (port >> s->port_) return s;
      if (waitpid(s->pid_, nullptr, WNOHANG) == s->pid_) {
        s->pid_ = -1;
        break;
      }
      absl::SleepFor(absl::Milliseconds(100));
    }
    return absl::FailedPreconditionError(
        absl::StrCat("the S3 test server did not start (run "
                     "tests/s3/install.sh; python3-botocore is needed); see ",
                     log));
  }

  ~S3TestServer() {
    if (pid_ > 0) {
      kill(pid_, SIGTERM);
      waitpid(pid_, nullptr, 0);
    }
    std::system(absl::StrCat("rm -rf '", dir_, "'").c_str());
  }

  std::string Endpoint() const {
    return absl::StrCat("http://127.0.0.1:", port_);
  }

  // A config for `bucket` (and key prefix) signed with this key pair.
  S3Config Config(const std::string& bucket, const std::string& access_key,
                  const std::string& secret,
                  const std::string& prefix = "") const {
    S3Config c;
    c.bucket = bucket;
    c.prefix = prefix;
    c.endpoint = Endpoint();
    c.region = "us-east-1";
    c.access_key_id = access_key;
    c.secret_access_key = secret;
    return c;
  }

  // The folder s3rver keeps objects in (to damage one behind the API).
  std::string DataDir() const { return dir_ + "/data"; }

 private:
  S3TestServer() = default;
  std::string dir_;
  pid_t pid_ = -1;
  int port_ = 0;
};

}  // namespace quantd

#endif  // QUANTD_SERVER_S3_TEST_SERVER_H_
