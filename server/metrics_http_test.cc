// ServiceMetrics over the wire: /metrics served over HTTP on loopback, a
// port already taken, and a real Prometheus process scraping the accuracy
// delta gauge (the in-process registry tests are in metrics_test.cc).
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <iterator>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "google/protobuf/struct.pb.h"
#include "google/protobuf/util/json_util.h"
#include "gtest/gtest.h"
#include "server/metrics.h"

extern char** environ;

namespace quantd {
namespace {

using ::testing::HasSubstr;

// --- HTTP helpers -----------------------------------------------------------

// A free loopback TCP port: bind port 0 and ask which port the kernel chose.
// (The port is free again once the socket closes; a tiny race remains.)
int FreePort() {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) return 0;
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

struct HttpResponse {
  int status = 0;
  std::string body;
};

// A minimal HTTP/1.0 GET to 127.0.0.1:port (the server closes the
// connection, so reading to EOF gives the whole response).
std::optional<HttpResponse> HttpGet(int port, const std::string& path) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) return std::nullopt;
  timeval timeout{};
  timeout.tv_sec = 5;
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof(timeout));
  setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &timeout, sizeof(timeout));
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = htons(static_cast<uint16_t>(port));
  if (connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
    close(fd);
    return std::nullopt;
  }
  const std::string request =
      absl::StrCat("GET ", path, " HTTP/1.0\r\nHost: 127.0.0.1:", port,
                   "\r\nAccept: */*\r\nConnection: close\r\n\r\n");
  size_t sent = 0;
  while (sent < request.size()) {
    ssize_t n = send(fd, request.data() + sent, request.size() - sent, 0);
    if (n <= 0) {
      close(fd);
      return std::nullopt;
    }
    sent += static_cast<size_t>(n);
  }
  std::string raw;
  char buf[4096];
  for (;;) {
    ssize_t n = recv(fd, buf, sizeof(buf), 0);
    if (n < 0) {
      close(fd);
      return std::nullopt;
    }
    if (n == 0) break;
    raw.append(buf, static_cast<size_t>(n));
  }
  close(fd);
  const size_t header_end = raw.find("\r\n\r\n");
  if (header_end == std::string::npos || !absl::StartsWith(raw, "HTTP/")) {
    return std::nullopt;
  }
  HttpResponse response;
  const size_t space = raw.find(' ');
  if (space == std::string::npos ||
      !absl::SimpleAtoi(raw.substr(space + 1, 3), &response.status)) {
    return std::nullopt;
  }
  response.body = raw.substr(header_end + 4);
  return response;
}

TEST(ServiceMetricsTest, ServesMetricsOverHttp) {
  MetricsOptions options;
  options.listen_address = "127.0.0.1:0";
  options.version = "9.9.9-http";
  absl::StatusOr<std::unique_ptr<ServiceMetrics>> m =
      ServiceMetrics::Create(options);
  ASSERT_TRUE(m.ok()) << m.status();
  ASSERT_GT((*m)->port(), 0);
  (*m)->BytesUploaded(4096);
  std::optional<HttpResponse> r = HttpGet((*m)->port(), "/metrics");
  ASSERT_TRUE(r.has_value()) << "no HTTP response on port " << (*m)->port();
  EXPECT_EQ(r->status, 200);
  EXPECT_THAT(r->body,
              HasSubstr("quantd_build_info{version=\"9.9.9-http\"} 1"));
  EXPECT_THAT(r->body, HasSubstr("# TYPE quantd_job_duration_seconds "
                                 "histogram"));
  EXPECT_THAT(r->body, HasSubstr("quantd_uploaded_bytes_total 4096"));
}

TEST(ServiceMetricsTest, PortInUseIsUnavailable) {
  // Hold a listening socket on a port, then ask for the same port.
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  ASSERT_GE(fd, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof(addr);
  ASSERT_EQ(bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0);
  ASSERT_EQ(listen(fd, 1), 0);
  ASSERT_EQ(getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len), 0);
  MetricsOptions options;
  options.listen_address = absl::StrCat("127.0.0.1:", ntohs(addr.sin_port));
  absl::StatusOr<std::unique_ptr<ServiceMetrics>> m =
      ServiceMetrics::Create(options);
  close(fd);
  EXPECT_EQ(m.status().code(), absl::StatusCode::kUnavailable) << m.status();
  EXPECT_THAT(std::string(m.status().message()),
              HasSubstr(options.listen_address));
}

// --- A real Prometheus server
// -------------------------------------------------

constexpr char kPrometheus[] = "/usr/bin/prometheus";

// A child process that is always stopped: SIGTERM, then SIGKILL if it has
// not exited within 10 s, and always reaped.
class ChildProcess {
 public:
  ChildProcess() = default;
  ChildProcess(const ChildProcess&) = delete;
  ChildProcess& operator=(const ChildProcess&) = delete;
  ~ChildProcess() { Stop(); }

  // Starts argv[0] with stdout and stderr appended to `log_path`.
  bool Start(const std::vector<std::string>& args,
             const std::string& log_path) {
    std::vector<char*> argv;
    for (const std::string& a : args)
      argv.push_back(const_cast<char*>(a.c_str()));
    argv.push_back(nullptr);
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_addopen(&actions, STDOUT_FILENO, log_path.c_str(),
                                     O_WRONLY | O_CREAT | O_APPEND, 0644);
    posix_spawn_file_actions_adddup2(&actions, STDOUT_FILENO, STDERR_FILENO);
    posix_spawn_file_actions_addopen(&actions, STDIN_FILENO, "/dev/null",
                                     O_RDONLY, 0);
    const int rc =
        posix_spawn(&pid_, argv[0], &actions, nullptr, argv.data(), environ);
    posix_spawn_file_actions_destroy(&actions);
    if (rc != 0) pid_ = -1;
    return rc == 0;
  }

  // True while the child runs (reaps it if it has exited).
  bool Running() {
    if (pid_ <= 0) return false;
    int status = 0;
    if (waitpid(pid_, &status, WNOHANG) == pid_) {
      pid_ = -1;
      return false;
    }
    return true;
  }

  void Stop() {
    if (pid_ <= 0) return;
    kill(pid_, SIGTERM);
    const auto deadline =
        std::chrono::steady_clock::now() + std::chrono::seconds(10);
    int status = 0;
    while (waitpid(pid_, &status, WNOHANG) == 0) {
      if (std::chrono::steady_clock::now() > deadline) {
        kill(pid_, SIGKILL);
        waitpid(pid_, &status, 0);
        break;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    pid_ = -1;
  }

 private:
  pid_t pid_ = -1;
};

// A temporary directory removed at the end of the test.
class TempDir {
 public:
  TempDir() {
    const char* base = std::getenv("TEST_TMPDIR");
    std::string pattern =
        absl::StrCat(base != nullptr && *base != '\0' ? base : "/tmp",
                     "/quantd-prom-XXXXXX");
    if (mkdtemp(pattern.data()) != nullptr) path_ = pattern;
  }
  ~TempDir() {
    std::error_code ec;
    if (!path_.empty()) std::filesystem::remove_all(path_, ec);
  }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

std::string ReadFile(const std::string& path) {
  std::ifstream in(path);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

const google::protobuf::Value* Field(const google::protobuf::Value& v,
                                     const std::string& key) {
  if (!v.has_struct_value()) return nullptr;
  auto it = v.struct_value().fields().find(key);
  return it == v.struct_value().fields().end() ? nullptr : &it->second;
}

// Looks for a sample with method="ptq", model="fmnist-cnn" in a Prometheus
// /api/v1/query answer; returns its value.
std::optional<double> FindSample(const std::string& json) {
  google::protobuf::Value root;
  if (!google::protobuf::util::JsonStringToMessage(json, &root).ok()) {
    return std::nullopt;
  }
  const google::protobuf::Value* status = Field(root, "status");
  if (status == nullptr || status->string_value() != "success") {
    return std::nullopt;
  }
  const google::protobuf::Value* data = Field(root, "data");
  const google::protobuf::Value* result =
      data != nullptr ? Field(*data, "result") : nullptr;
  if (result == nullptr || !result->has_list_value()) return std::nullopt;
  for (const google::protobuf::Value& sample : result->list_value().values()) {
    const google::protobuf::Value* metric = Field(sample, "metric");
    const google::protobuf::Value* value = Field(sample, "value");
    if (metric == nullptr || value == nullptr) continue;
    const google::protobuf::Value* method = Field(*metric, "method");
    const google::protobuf::Value* model = Field(*metric, "model");
    if (method == nullptr || model == nullptr ||
        method->string_value() != "ptq" ||
        model->string_value() != "fmnist-cnn") {
      continue;
    }
    // "value": [<unix time>, "<value as a string>"]
    if (!value->has_list_value() || value->list_value().values_size() != 2) {
      continue;
    }
    double v = 0;
    if (absl::SimpleAtod(value->list_value().values(1).string_value(), &v)) {
      return v;
    }
  }
  return std::nullopt;
}

TEST(ServiceMetricsTest, RealPrometheusScrapesAccuracyDeltaGauge) {
  if (access(kPrometheus, X_OK) != 0) {
    GTEST_SKIP() << kPrometheus
                 << " is not installed (Debian package prometheus; "
                    "tools/install-deps.sh installs it)";
  }
  MetricsOptions options;
  options.listen_address = "127.0.0.1:0";
  absl::StatusOr<std::unique_ptr<ServiceMetrics>> m =
      ServiceMetrics::Create(options);
  ASSERT_TRUE(m.ok()) << m.status();
  const int metrics_port = (*m)->port();
  ASSERT_GT(metrics_port, 0);

  TempDir dir;
  ASSERT_FALSE(dir.path().empty());
  const std::string config = dir.path() + "/prometheus.yml";
  {
    std::ofstream out(config);
    out << "global:\n"
           "  scrape_interval: 1s\n"
           "  evaluation_interval: 1s\n"
           "scrape_configs:\n"
           "  - job_name: quantd\n"
           "    scrape_interval: 1s\n"
           "    scrape_timeout: 1s\n"
           "    static_configs:\n"
           "      - targets: ['127.0.0.1:"
        << metrics_port << "']\n";
    ASSERT_TRUE(out.good());
  }
  const std::string log = dir.path() + "/prometheus.log";

  // A finished job's report.
  v1::QuantizationReport report;
  report.mutable_fake_quant()->set_has_labels(true);
  report.mutable_fake_quant()->set_accuracy_delta_points(-0.2);
  (*m)->JobQuality("ptq", "t", "fmnist-cnn", report);

  ChildProcess prometheus;
  int prometheus_port = 0;
  const auto start = std::chrono::steady_clock::now();
  // The free port could be taken between probing and Prometheus binding it;
  // retry with another port if Prometheus exits at once.
  for (int attempt = 0; attempt < 3; ++attempt) {
    prometheus_port = FreePort();
    ASSERT_GT(prometheus_port, 0);
    ASSERT_TRUE(prometheus.Start(
        {kPrometheus, "--config.file=" + config,
         "--storage.tsdb.path=" + dir.path() + "/data",
         absl::StrCat("--web.listen-address=127.0.0.1:", prometheus_port),
         "--log.level=warn"},
        log));
    std::this_thread::sleep_for(std::chrono::milliseconds(500));
    if (prometheus.Running()) break;
  }
  ASSERT_TRUE(prometheus.Running()) << "prometheus exited at start-up:\n"
                                    << ReadFile(log);

  std::optional<double> seen;
  std::string last_body = "(no answer yet)";
  const auto deadline = start + std::chrono::seconds(30);
  while (std::chrono::steady_clock::now() < deadline) {
    std::optional<HttpResponse> r =
        HttpGet(prometheus_port,
                "/api/v1/query?query=quantd_job_accuracy_delta_points");
    if (r.has_value()) {
      last_body = r->body;
      if (r->status == 200) seen = FindSample(r->body);
      if (seen.has_value()) break;
    }
    ASSERT_TRUE(prometheus.Running()) << "prometheus died:\n" << ReadFile(log);
    std::this_thread::sleep_for(std::chrono::milliseconds(250));
  }
  const double elapsed =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start)
          .count();
  ASSERT_TRUE(seen.has_value())
      << "Prometheus on port " << prometheus_port
      << " never returned quantd_job_accuracy_delta_points{method=\"ptq\","
         "model=\"fmnist-cnn\"} within 30 s; last answer: "
      << last_body << "\nprometheus log:\n"
      << ReadFile(log);
  EXPECT_NEAR(*seen, -0.2, 1e-12) << last_body;
  std::cout << "Prometheus " << prometheus_port << " saw the gauge " << elapsed
            << " s after start; answer: " << last_body << "\n";
}

}  // namespace
}  // namespace quantd
