#include "server/metrics.h"

#include <exception>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "prometheus/exposer.h"

#ifndef QUANTD_VERSION
#define QUANTD_VERSION "unknown"
#endif

namespace quantd {
namespace {

// Label values the server knows in advance; their series are created at
// zero so rate() and absent-series alerts work from the first scrape.
constexpr const char* kMethods[] = {"ptq", "qat"};
constexpr const char* kOutcomes[] = {"succeeded", "failed", "cancelled"};

// Jobs run from seconds (a small CNN) to hours (QAT of a language model).
const prometheus::Histogram::BucketBoundaries& JobBuckets() {
  static const auto* const kBuckets =
      new prometheus::Histogram::BucketBoundaries{
          1, 5, 10, 30, 60, 120, 300, 600, 1800, 3600, 7200, 14400};
  return *kBuckets;
}

// Stages run from milliseconds (load) to many minutes (calibration).
const prometheus::Histogram::BucketBoundaries& StageBuckets() {
  static const auto* const kBuckets =
      new prometheus::Histogram::BucketBoundaries{
          0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 1800};
  return *kBuckets;
}

// Keeps label values printable and short: bytes outside [A-Za-z0-9_.:/+-]
// become '_' (so a non-ASCII value never yields broken UTF-8 after the cut).
std::string SanitizeLabelValue(absl::string_view value, size_t max_length) {
  std::string out(value.substr(0, max_length));
  for (char& c : out) {
    const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
                    (c >= '0' && c <= '9') || c == '_' || c == '.' ||
                    c == ':' || c == '/' || c == '+' || c == '-';
    if (!ok) c = '_';
  }
  return out;
}

}  // namespace

// What /metrics serves: the registry's series, plus HELP and TYPE lines for
// families that have no series yet. prometheus-cpp's Registry::Collect()
// leaves out a family until it has a child, and families labelled by values
// only known at run time (stage, gRPC method, model) have none at start-up;
// the text format allows metadata without samples, so every family is
// visible from the first scrape.
class ServiceMetrics::Exposition : public prometheus::Collectable {
 public:
  Exposition(std::shared_ptr<prometheus::Registry> registry,
             const std::vector<prometheus::MetricFamily>* declared)
      : registry_(std::move(registry)), declared_(declared) {}

  std::vector<prometheus::MetricFamily> Collect() const override {
    std::vector<prometheus::MetricFamily> families = registry_->Collect();
    absl::flat_hash_set<std::string> present;
    for (const prometheus::MetricFamily& f : families) present.insert(f.name);
    for (const prometheus::MetricFamily& f : *declared_) {
      if (!present.contains(f.name)) families.push_back(f);
    }
    return families;
  }

 private:
  std::shared_ptr<prometheus::Registry> registry_;
  // Written only in Create(), before anyone collects.
  const std::vector<prometheus::MetricFamily>* declared_;
};

ServiceMetrics::ServiceMetrics(int max_model_labels)
    : max_model_labels_(max_model_labels),
      registry_(std::make_shared<prometheus::Registry>()),
      exposition_(std::make_shared<Exposition>(registry_, &declared_)) {}

template <typename T>
prometheus::Family<T>& ServiceMetrics::Declare(
    prometheus::detail::Builder<T> builder, const std::string& name,
    const std::string& help) {
  prometheus::Family<T>& family =
      builder.Name(name).Help(help).Register(*registry_);
  prometheus::MetricFamily metadata;
  metadata.name = name;
  metadata.help = help;
  metadata.type = T::metric_type;
  declared_.push_back(std::move(metadata));
  return family;
}

std::vector<prometheus::MetricFamily> ServiceMetrics::Collect() const {
  return exposition_->Collect();
}

ServiceMetrics::~ServiceMetrics() {
  // Stop serving before the registry goes away.
  exposer_.reset();
}

absl::StatusOr<std::unique_ptr<ServiceMetrics>> ServiceMetrics::Create(
    const MetricsOptions& options) {
  if (options.max_model_labels < 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        "max_model_labels must be >= 0, got ", options.max_model_labels));
  }
  std::unique_ptr<ServiceMetrics> m(
      new ServiceMetrics(options.max_model_labels));
  try {
    m->DeclareServiceFamilies();
    m->DeclareStorageFamilies();
    m->DeclareQualityFamilies(options.version.empty()
                                  ? std::string(QUANTD_VERSION)
                                  : options.version);
  } catch (const std::exception& e) {
    // Only a programming error (a bad metric name) gets here.
    return absl::InternalError(
        absl::StrCat("cannot create the metrics: ", e.what()));
  }
  if (!options.listen_address.empty()) {
    if (absl::Status s = m->StartExposer(options.listen_address); !s.ok()) {
      return s;
    }
  }
  return m;
}

void ServiceMetrics::DeclareServiceFamilies() {
  jobs_created_ =
      &Declare(prometheus::BuildCounter(), "quantd_jobs_created_total",
               "Jobs accepted by CreateJob, by method.");
  jobs_finished_ =
      &Declare(prometheus::BuildCounter(), "quantd_jobs_finished_total",
               "Jobs that reached a terminal state, by method and outcome "
               "(succeeded, failed, cancelled).");
  job_duration_ =
      &Declare(prometheus::BuildHistogram(), "quantd_job_duration_seconds",
               "Wall time of finished jobs from start to terminal state, in "
               "seconds.");
  stage_duration_ =
      &Declare(prometheus::BuildHistogram(), "quantd_stage_duration_seconds",
               "Wall time of pipeline stages, in seconds.");
  queue_depth_ =
      &Declare(prometheus::BuildGauge(), "quantd_queue_depth",
               "Jobs waiting in the queue (the job store's whole queue: "
               "replicas sharing a store all report it).")
           .Add({});
  busy_workers_ = &Declare(prometheus::BuildGauge(), "quantd_busy_workers",
                           "Workers currently running a job.")
                       .Add({});
  uploaded_bytes_ =
      &Declare(prometheus::BuildCounter(), "quantd_uploaded_bytes_total",
               "Bytes received by uploads.")
           .Add({});
  downloaded_bytes_ =
      &Declare(prometheus::BuildCounter(), "quantd_downloaded_bytes_total",
               "Bytes sent by artifact downloads.")
           .Add({});
  grpc_calls_ = &Declare(prometheus::BuildCounter(), "quantd_grpc_calls_total",
                         "Finished gRPC calls, by method and status code.");
  for (const char* method : kMethods) {
    jobs_created_->Add({{"method", method}});
    job_duration_->Add({{"method", method}}, JobBuckets());
    for (const char* outcome : kOutcomes) {
      jobs_finished_->Add({{"method", method}, {"outcome", outcome}});
    }
  }
}

void ServiceMetrics::DeclareStorageFamilies() {
  storage_bytes_ = &Declare(
      prometheus::BuildGauge(), "quantd_storage_bytes",
      "Bytes under the data folder by state: committed blobs (uploads and "
      "artifacts), artifacts, uploading (received by uploads in progress), "
      "reserved (declared by uploads in progress), checkpoints.");
  janitor_removed_ = &Declare(
      prometheus::BuildCounter(), "quantd_janitor_removed_total",
      "Files the janitor removed, by kind (upload, temp_file, checkpoint, "
      "cached_blob).");
  janitor_removed_bytes_ = &Declare(
      prometheus::BuildCounter(), "quantd_janitor_removed_bytes_total",
      "Bytes the janitor freed, by kind (upload, temp_file, checkpoint, "
      "cached_blob).");
  for (const char* state :
       {"committed", "artifacts", "uploading", "reserved", "checkpoints"}) {
    storage_bytes_->Add({{"state", state}});
  }
  for (const char* kind :
       {"upload", "temp_file", "checkpoint", "cached_blob"}) {
    janitor_removed_->Add({{"kind", kind}});
    janitor_removed_bytes_->Add({{"kind", kind}});
  }
}

void ServiceMetrics::SetStorageBytes(absl::string_view state, int64_t bytes) {
  storage_bytes_->Add({{"state", std::string(state)}})
      .Set(static_cast<double>(bytes));
}

void ServiceMetrics::JanitorRemoved(absl::string_view kind, int64_t files,
                                    int64_t bytes) {
  const prometheus::Labels labels = {{"kind", std::string(kind)}};
  if (files > 0) janitor_removed_->Add(labels).Increment(files);
  if (bytes > 0) janitor_removed_bytes_->Add(labels).Increment(bytes);
}

void ServiceMetrics::DeclareQualityFamilies(const std::string& version) {
  accuracy_delta_ = &Declare(
      prometheus::BuildGauge(), "quantd_job_accuracy_delta_points",
      "Accuracy of the quantized model minus the float model's, in "
      "percentage points, for the latest finished job of each method and "
      "model.");
  perplexity_delta_ = &Declare(
      prometheus::BuildGauge(), "quantd_job_perplexity_delta_ratio",
      "Relative perplexity change of the quantized language model (0.01 = "
      "+1%), for the latest finished job of each method and model.");
  size_ratio_ = &Declare(
      prometheus::BuildGauge(), "quantd_job_size_ratio",
      "Float model bytes divided by quantized model bytes, for the latest "
      "finished job of each method and model.");
  speedup_ = &Declare(
      prometheus::BuildGauge(), "quantd_job_speedup",
      "Float latency divided by int8 latency, for the latest finished job "
      "of each method and model.");
  Declare(prometheus::BuildGauge(), "quantd_build_info",
          "Always 1; the version label says which quantd is running.")
      .Add({{"version", version}})
      .Set(1);
}

absl::Status ServiceMetrics::StartExposer(const std::string& listen_address) {
  try {
    exposer_ = std::make_unique<prometheus::Exposer>(listen_address,
                                                     /*num_threads=*/2);
    exposer_->RegisterCollectable(exposition_);
    const std::vector<int> ports = exposer_->GetListeningPorts();
    port_ = ports.empty() ? 0 : ports.front();
  } catch (const std::exception& e) {
    // civetweb throws CivetException (a std::runtime_error) when it cannot
    // bind, e.g. the port is taken or the address is not local.
    return absl::UnavailableError(absl::StrCat("cannot serve /metrics on ",
                                               listen_address, ": ", e.what()));
  }
  return absl::OkStatus();
}

void ServiceMetrics::JobCreated(absl::string_view method) {
  jobs_created_->Add({{"method", std::string(method)}}).Increment();
}

void ServiceMetrics::JobFinished(absl::string_view method,
                                 absl::string_view outcome, double seconds) {
  jobs_finished_
      ->Add(
          {{"method", std::string(method)}, {"outcome", std::string(outcome)}})
      .Increment();
  job_duration_->Add({{"method", std::string(method)}}, JobBuckets())
      .Observe(seconds);
}

void ServiceMetrics::StageFinished(absl::string_view stage, double seconds) {
  stage_duration_->Add({{"stage", std::string(stage)}}, StageBuckets())
      .Observe(seconds);
}

void ServiceMetrics::SetQueueDepth(int64_t n) {
  queue_depth_->Set(static_cast<double>(n));
}

void ServiceMetrics::SetBusyWorkers(int64_t n) {
  busy_workers_->Set(static_cast<double>(n));
}

void ServiceMetrics::BytesUploaded(int64_t n) {
  if (n > 0) uploaded_bytes_->Increment(static_cast<double>(n));
}

void ServiceMetrics::BytesDownloaded(int64_t n) {
  if (n > 0) downloaded_bytes_->Increment(static_cast<double>(n));
}

void ServiceMetrics::GrpcCall(absl::string_view method,
                              absl::string_view code) {
  grpc_calls_
      ->Add({{"method", std::string(method)}, {"code", std::string(code)}})
      .Increment();
}

std::string ServiceMetrics::ModelLabel(absl::string_view tenant,
                                       absl::string_view model) {
  std::string value = SanitizeLabelValue(model, kMaxModelLabelLength);
  if (value.empty()) return std::string(kUnknownModel);
  // The two reserved values never take one of the bounded slots.
  if (value == kOtherModel || value == kUnknownModel) return value;
  absl::MutexLock lock(&mu_);
  absl::flat_hash_set<std::string>& mine = models_[tenant];
  if (mine.contains(value)) return value;
  if (static_cast<int64_t>(mine.size()) >= max_model_labels_) {
    return std::string(kOtherModel);
  }
  mine.insert(value);
  return value;
}

void ServiceMetrics::JobQuality(absl::string_view method,
                                absl::string_view tenant,
                                absl::string_view model,
                                const v1::QuantizationReport& report) {
  const prometheus::Labels labels = {{"method", std::string(method)},
                                     {"model", ModelLabel(tenant, model)}};
  const v1::EvaluationMetrics& eval = report.fake_quant();
  if (eval.has_labels()) {
    accuracy_delta_->Add(labels).Set(eval.accuracy_delta_points());
  }
  if (eval.is_language_model()) {
    perplexity_delta_->Add(labels).Set(eval.perplexity_delta_percent() / 100);
  }
  if (report.size().compression_ratio() > 0) {
    size_ratio_->Add(labels).Set(report.size().compression_ratio());
  }
  if (report.performance().speedup() > 0) {
    speedup_->Add(labels).Set(report.performance().speedup());
  }
}

}  // namespace quantd
