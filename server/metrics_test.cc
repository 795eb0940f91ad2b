#include "server/metrics.h"

#include <cmath>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "prometheus/text_serializer.h"

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

}  // namespace
}  // namespace quantd
