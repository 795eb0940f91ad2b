#include "server/metrics.h"

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
#include "prometheus/text_serializer.h"

extern char** environ;

namespace quantd {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

std::unique_ptr<ServiceMetrics> RegistryOnly(int max_model_labels = 50) {
  MetricsOptions options;
  options.listen_address = "";
  options.max_model_labels = max_model_labels;
  options.version = "1.2.3-test";
  absl::StatusOr<std::unique_ptr<ServiceMetrics>> m =
      ServiceMetrics::Create(options);
  EXPECT_TRUE(m.ok()) << m.status();
  return m.ok() ? std::move(*m) : nullptr;
}

// What /metrics serves, in the text format.
std::string Text(ServiceMetrics& m) {
  return prometheus::TextSerializer().Serialize(m.Collect());
}

// The value of the sample `name` (for histograms: "<name>_count", "_sum")
// whose labels include every pair in `labels`; nullopt if there is none.
std::optional<double> Value(ServiceMetrics& m, const std::string& name,
                            const prometheus::Labels& labels = {}) {
  for (const prometheus::MetricFamily& f : m.registry().Collect()) {
    for (const prometheus::ClientMetric& c : f.metric) {
      bool match = true;
      for (const auto& [k, v] : labels) {
        bool found = false;
        for (const prometheus::ClientMetric::Label& l : c.label) {
          if (l.name == k && l.value == v) found = true;
        }
        match = match && found;
      }
      if (!match) continue;
      if (f.name == name) {
        switch (f.type) {
          case prometheus::MetricType::Counter:
            return c.counter.value;
          case prometheus::MetricType::Gauge:
            return c.gauge.value;
          default:
            break;
        }
      }
      if (f.type == prometheus::MetricType::Histogram) {
        if (name == f.name + "_count") {
          return static_cast<double>(c.histogram.sample_count);
        }
        if (name == f.name + "_sum") return c.histogram.sample_sum;
      }
    }
  }
  return std::nullopt;
}

// Every family, its type and that it has a HELP line.
const std::vector<std::pair<std::string, std::string>>& Families() {
  static const auto* const kFamilies =
      new std::vector<std::pair<std::string, std::string>>{
          {"quantd_jobs_created_total", "counter"},
          {"quantd_jobs_finished_total", "counter"},
          {"quantd_job_duration_seconds", "histogram"},
          {"quantd_stage_duration_seconds", "histogram"},
          {"quantd_queue_depth", "gauge"},
          {"quantd_busy_workers", "gauge"},
          {"quantd_uploaded_bytes_total", "counter"},
          {"quantd_downloaded_bytes_total", "counter"},
          {"quantd_grpc_calls_total", "counter"},
          {"quantd_job_accuracy_delta_points", "gauge"},
          {"quantd_job_perplexity_delta_ratio", "gauge"},
          {"quantd_job_size_ratio", "gauge"},
          {"quantd_job_speedup", "gauge"},
          {"quantd_build_info", "gauge"},
      };
  return *kFamilies;
}

TEST(ServiceMetricsTest, EveryFamilyExistsAtStartUpWithZeroValues) {
  std::unique_ptr<ServiceMetrics> m = RegistryOnly();
  ASSERT_NE(m, nullptr);
  const std::string text = Text(*m);
  std::vector<std::string> missing;
  for (const auto& [name, type] : Families()) {
    for (const std::string& line :
         {absl::StrCat("# TYPE ", name, " ", type, "\n"),
          absl::StrCat("# HELP ", name, " ")}) {
      if (!absl::StrContains(text, line)) missing.push_back(line);
    }
  }
  EXPECT_THAT(missing, testing::IsEmpty()) << text;
  // Each family exactly once (a second TYPE line would make Prometheus
  // reject the whole scrape).
  for (const auto& [name, type] : Families()) {
    const std::string line = absl::StrCat("# TYPE ", name, " ");
    const size_t first = text.find(line);
    EXPECT_EQ(text.find(line, first + 1), std::string::npos) << name;
  }
  // No summaries anywhere, and no job id label.
  EXPECT_THAT(text, Not(HasSubstr(" summary\n")));
  EXPECT_THAT(text, Not(HasSubstr("job_id")));

  EXPECT_EQ(Value(*m, "quantd_queue_depth"), 0);
  EXPECT_EQ(Value(*m, "quantd_busy_workers"), 0);
  EXPECT_EQ(Value(*m, "quantd_uploaded_bytes_total"), 0);
  EXPECT_EQ(Value(*m, "quantd_downloaded_bytes_total"), 0);
  EXPECT_EQ(Value(*m, "quantd_build_info", {{"version", "1.2.3-test"}}), 1);
  // Known label combinations exist at zero.
  for (const char* method : {"ptq", "qat"}) {
    EXPECT_EQ(Value(*m, "quantd_jobs_created_total", {{"method", method}}), 0);
    EXPECT_EQ(
        Value(*m, "quantd_job_duration_seconds_count", {{"method", method}}),
        0);
    for (const char* outcome : {"succeeded", "failed", "cancelled"}) {
      EXPECT_EQ(Value(*m, "quantd_jobs_finished_total",
                      {{"method", method}, {"outcome", outcome}}),
                0);
    }
  }
  EXPECT_THAT(text, HasSubstr("quantd_build_info{version=\"1.2.3-test\"} 1"));
}

TEST(ServiceMetricsTest, CountersGaugesAndHistogramsChangeAsCalled) {
  std::unique_ptr<ServiceMetrics> m = RegistryOnly();
  ASSERT_NE(m, nullptr);
  m->JobCreated("ptq");
  m->JobCreated("ptq");
  m->JobCreated("qat");
  m->JobFinished("ptq", "succeeded", 12.5);
  m->JobFinished("ptq", "failed", 0.5);
  m->StageFinished("calibrate", 0.3);
  m->StageFinished("calibrate", 0.2);
  m->SetQueueDepth(7);
  m->SetBusyWorkers(2);
  m->BytesUploaded(1000);
  m->BytesUploaded(24);
  m->BytesUploaded(-5);  // ignored: counters never go down
  m->BytesDownloaded(500);
  m->GrpcCall("CreateJob", "OK");
  m->GrpcCall("CreateJob", "OK");
  m->GrpcCall("GetJob", "NOT_FOUND");

  EXPECT_EQ(Value(*m, "quantd_jobs_created_total", {{"method", "ptq"}}), 2);
  EXPECT_EQ(Value(*m, "quantd_jobs_created_total", {{"method", "qat"}}), 1);
  EXPECT_EQ(Value(*m, "quantd_jobs_finished_total",
                  {{"method", "ptq"}, {"outcome", "succeeded"}}),
            1);
  EXPECT_EQ(Value(*m, "quantd_jobs_finished_total",
                  {{"method", "ptq"}, {"outcome", "failed"}}),
            1);
  EXPECT_EQ(Value(*m, "quantd_jobs_finished_total",
                  {{"method", "qat"}, {"outcome", "succeeded"}}),
            0);
  EXPECT_EQ(Value(*m, "quantd_job_duration_seconds_count", {{"method", "ptq"}}),
            2);
  EXPECT_DOUBLE_EQ(
      *Value(*m, "quantd_job_duration_seconds_sum", {{"method", "ptq"}}), 13.0);
  EXPECT_EQ(Value(*m, "quantd_stage_duration_seconds_count",
                  {{"stage", "calibrate"}}),
            2);
  EXPECT_DOUBLE_EQ(
      *Value(*m, "quantd_stage_duration_seconds_sum", {{"stage", "calibrate"}}),
      0.5);
  EXPECT_EQ(Value(*m, "quantd_queue_depth"), 7);
  EXPECT_EQ(Value(*m, "quantd_busy_workers"), 2);
  EXPECT_EQ(Value(*m, "quantd_uploaded_bytes_total"), 1024);
  EXPECT_EQ(Value(*m, "quantd_downloaded_bytes_total"), 500);
  EXPECT_EQ(Value(*m, "quantd_grpc_calls_total",
                  {{"method", "CreateJob"}, {"code", "OK"}}),
            2);
  EXPECT_EQ(Value(*m, "quantd_grpc_calls_total",
                  {{"method", "GetJob"}, {"code", "NOT_FOUND"}}),
            1);

  // Label values and histogram buckets (cumulative, "le" in seconds) appear
  // in the exposition text.
  const std::string text = Text(*m);
  EXPECT_THAT(text, HasSubstr("method=\"CreateJob\""));
  EXPECT_THAT(text, HasSubstr("code=\"NOT_FOUND\""));
  EXPECT_THAT(text, HasSubstr("quantd_stage_duration_seconds_bucket{stage="
                              "\"calibrate\",le=\"0.25\"} 1"));
  EXPECT_THAT(text, HasSubstr("quantd_stage_duration_seconds_bucket{stage="
                              "\"calibrate\",le=\"0.5\"} 2"));
  EXPECT_THAT(text, HasSubstr("quantd_job_duration_seconds_bucket{method="
                              "\"ptq\",le=\"10\"} 1"));
  EXPECT_THAT(text, HasSubstr("quantd_job_duration_seconds_bucket{method="
                              "\"ptq\",le=\"+Inf\"} 2"));
}

v1::QuantizationReport ClassifierReport(double accuracy_delta_points) {
  v1::QuantizationReport report;
  report.mutable_fake_quant()->set_has_labels(true);
  report.mutable_fake_quant()->set_accuracy_delta_points(accuracy_delta_points);
  report.mutable_size()->set_compression_ratio(3.9);
  return report;
}

TEST(ServiceMetricsTest, QualityGaugesOnlyForFiguresTheReportHas) {
  std::unique_ptr<ServiceMetrics> m = RegistryOnly();
  ASSERT_NE(m, nullptr);
  m->JobQuality("ptq", "t", "fmnist-cnn", ClassifierReport(-0.2));
  const prometheus::Labels cnn = {{"method", "ptq"}, {"model", "fmnist-cnn"}};
  EXPECT_EQ(Value(*m, "quantd_job_accuracy_delta_points", cnn), -0.2);
  EXPECT_EQ(Value(*m, "quantd_job_size_ratio", cnn), 3.9);
  // Not measured in this report: no series at all (not a misleading 0).
  EXPECT_EQ(Value(*m, "quantd_job_speedup", cnn), std::nullopt);
  EXPECT_EQ(Value(*m, "quantd_job_perplexity_delta_ratio", cnn), std::nullopt);

  v1::QuantizationReport lm;
  lm.mutable_fake_quant()->set_is_language_model(true);
  lm.mutable_fake_quant()->set_perplexity_delta_percent(2.5);
  lm.mutable_performance()->set_speedup(1.8);
  m->JobQuality("qat", "t", "tiny-gpt", lm);
  const prometheus::Labels gpt = {{"method", "qat"}, {"model", "tiny-gpt"}};
  // Percent becomes a ratio (base unit).
  EXPECT_DOUBLE_EQ(*Value(*m, "quantd_job_perplexity_delta_ratio", gpt), 0.025);
  EXPECT_EQ(Value(*m, "quantd_job_speedup", gpt), 1.8);
  EXPECT_EQ(Value(*m, "quantd_job_accuracy_delta_points", gpt), std::nullopt);
  EXPECT_EQ(Value(*m, "quantd_job_size_ratio", gpt), std::nullopt);

  // Families that now have series are listed once, with their series.
  const std::string text = Text(*m);
  const std::string type = "# TYPE quantd_job_speedup gauge\n";
  ASSERT_NE(text.find(type), std::string::npos);
  EXPECT_EQ(text.find(type, text.find(type) + 1), std::string::npos) << text;
  EXPECT_THAT(text, HasSubstr("quantd_job_speedup{method=\"qat\",model="
                              "\"tiny-gpt\"} 1.8"));

  // A later job of the same method and model replaces the value.
  m->JobQuality("ptq", "t", "fmnist-cnn", ClassifierReport(-1.5));
  EXPECT_EQ(Value(*m, "quantd_job_accuracy_delta_points", cnn), -1.5);
}

TEST(ServiceMetricsTest, ModelLabelIsCappedAndSanitised) {
  std::unique_ptr<ServiceMetrics> m = RegistryOnly(/*max_model_labels=*/3);
  ASSERT_NE(m, nullptr);
  m->JobQuality("ptq", "t", "a", ClassifierReport(-0.1));
  m->JobQuality("ptq", "t", "b", ClassifierReport(-0.2));
  m->JobQuality("ptq", "t", "c", ClassifierReport(-0.3));
  m->JobQuality("ptq", "t", "d",
                ClassifierReport(-0.4));                  // 4th distinct: other
  m->JobQuality("ptq", "t", "", ClassifierReport(-0.5));  // no model: unknown
  m->JobQuality("ptq", "t", "a",
                ClassifierReport(-0.6));  // known: keeps its slot
  auto acc = [&](const char* model) {
    return Value(*m, "quantd_job_accuracy_delta_points",
                 {{"method", "ptq"}, {"model", model}});
  };
  EXPECT_EQ(acc("a"), -0.6);
  EXPECT_EQ(acc("b"), -0.2);
  EXPECT_EQ(acc("c"), -0.3);
  EXPECT_EQ(acc("d"), std::nullopt);
  EXPECT_EQ(acc("other"), -0.4);
  EXPECT_EQ(acc("unknown"), -0.5);
  EXPECT_EQ(m->ModelLabel("t", "e"), "other");
  EXPECT_EQ(m->ModelLabel("t", "unknown"), "unknown");

  std::unique_ptr<ServiceMetrics> s = RegistryOnly();
  ASSERT_NE(s, nullptr);
  EXPECT_EQ(s->ModelLabel("t", std::string(200, 'x')), std::string(63, 'x'));
  EXPECT_EQ(s->ModelLabel("t", "bad \"name\"\n{}\xc3\xa9"), "bad__name______");
  EXPECT_EQ(s->ModelLabel("t", "org/resnet-50:v1.2+q"), "org/resnet-50:v1.2+q");
}

// The budget is per tenant: a tenant that fills its slots (with values of
// its choosing) does not turn another tenant's models into "other".
TEST(ServiceMetricsTest, ModelLabelBudgetIsPerTenant) {
  std::unique_ptr<ServiceMetrics> m = RegistryOnly(/*max_model_labels=*/2);
  ASSERT_NE(m, nullptr);
  EXPECT_EQ(m->ModelLabel("greedy", "x1"), "x1");
  EXPECT_EQ(m->ModelLabel("greedy", "x2"), "x2");
  EXPECT_EQ(m->ModelLabel("greedy", "x3"), "other");
  EXPECT_EQ(m->ModelLabel("careful", "resnet"), "resnet");
  EXPECT_EQ(m->ModelLabel("careful", "bert"), "bert");
  EXPECT_EQ(m->ModelLabel("careful", "gpt"), "other");
}

TEST(ServiceMetricsTest, ModelLabelCapHoldsUnderConcurrency) {
  std::unique_ptr<ServiceMetrics> m = RegistryOnly(/*max_model_labels=*/10);
  ASSERT_NE(m, nullptr);
  std::vector<std::thread> threads;
  for (int t = 0; t < 8; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < 50; ++i) {
        m->JobQuality("ptq", "t", absl::StrCat("model-", t, "-", i),
                      ClassifierReport(-0.1));
      }
    });
  }
  for (std::thread& t : threads) t.join();
  int series = 0;
  bool other = false;
  for (const prometheus::MetricFamily& f : m->registry().Collect()) {
    if (f.name != "quantd_job_accuracy_delta_points") continue;
    for (const prometheus::ClientMetric& c : f.metric) {
      ++series;
      for (const auto& l : c.label) {
        if (l.name == "model" && l.value == "other") other = true;
      }
    }
  }
  EXPECT_EQ(series, 11);  // 10 models + other
  EXPECT_TRUE(other);
}

TEST(ServiceMetricsTest, NegativeModelCapIsRefused) {
  MetricsOptions options;
  options.listen_address = "";
  options.max_model_labels = -1;
  EXPECT_EQ(ServiceMetrics::Create(options).status().code(),
            absl::StatusCode::kInvalidArgument);
}

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
  (*m)->JobQuality("ptq", "t", "fmnist-cnn", ClassifierReport(-0.2));

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
