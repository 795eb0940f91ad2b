// ServiceMetrics: the Prometheus metrics quantd exports on /metrics.
//
// Naming follows Prometheus conventions: every name starts with quantd_,
// values are in base units (seconds, bytes, ratios rather than percent),
// counters end in _total, and durations are histograms (not summaries),
// because histograms can be aggregated across replicas and summaries
// cannot. Every family is created in Create(), so a scrape right after
// start-up already shows every name and type (dashboards and alerts then
// see 0, not "no data"), and the label combinations the server knows in
// advance (methods, outcomes) are pre-created at zero.
//
// Label values are bounded: method, outcome, stage and gRPC code come from
// server code, not from users. The one user-controlled label, `model` (from
// the job spec's labels["model"]), is capped at max_model_labels distinct
// values; later new values are reported as model="other". There is never a
// job id label: one time series per job would grow without bound.
//
// Usage:
//
//   MetricsOptions options;
//   options.listen_address = "0.0.0.0:9464";
//   options.version = QUANTD_VERSION;
//   absl::StatusOr<std::unique_ptr<ServiceMetrics>> metrics =
//       ServiceMetrics::Create(options);
//   if (!metrics.ok()) return metrics.status();  // e.g. port in use
//   (*metrics)->JobCreated("ptq");
//   (*metrics)->StageFinished("calibrate", 1.25);
//   (*metrics)->JobFinished("ptq", "succeeded", 42.0);
//   (*metrics)->JobQuality("ptq", spec.labels().at("model"), report);
//
// All methods are thread-safe.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "prometheus/counter.h"
#include "prometheus/family.h"
#include "prometheus/gauge.h"
#include "prometheus/histogram.h"
#include "prometheus/metric_family.h"
#include "prometheus/registry.h"
#include "quantd/v1/report.pb.h"

namespace prometheus {
class Exposer;
}  // namespace prometheus

namespace quantd {

struct MetricsOptions {
  // host:port of the /metrics HTTP endpoint; port 0 picks a free port (see
  // ServiceMetrics::port()). Empty: no endpoint, only the registry (tests).
  std::string listen_address = "127.0.0.1:9464";
  // Distinct values of the `model` label per tenant before that tenant's
  // new ones become "other": each tenant has its own budget, so one tenant
  // cannot take every slot and leave the others with "other".
  int max_model_labels = 50;
  // The `version` label of quantd_build_info; empty means QUANTD_VERSION.
  std::string version;
};

class ServiceMetrics {
 public:
  // The model label value used once a tenant has max_model_labels distinct
  // values,
  // and the one used when a job has no labels["model"].
  static constexpr absl::string_view kOtherModel = "other";
  static constexpr absl::string_view kUnknownModel = "unknown";
  // Longest model label value kept (longer values are truncated), matching
  // the job spec's own bound on label values.
  static constexpr size_t kMaxModelLabelLength = 63;

  // Creates every metric family and starts the /metrics endpoint unless
  // options.listen_address is empty. Unavailable if the address cannot be
  // bound; InvalidArgument for a bad max_model_labels.
  static absl::StatusOr<std::unique_ptr<ServiceMetrics>> Create(
      const MetricsOptions& options);

  ~ServiceMetrics();
  ServiceMetrics(const ServiceMetrics&) = delete;
  ServiceMetrics& operator=(const ServiceMetrics&) = delete;

  // The port the endpoint actually bound (useful with port 0); 0 when no
  // endpoint was started.
  int port() const { return port_; }

  // quantd_jobs_created_total{method}.
  void JobCreated(absl::string_view method);
  // quantd_jobs_finished_total{method,outcome} and the
  // quantd_job_duration_seconds{method} histogram. Outcome is the terminal
  // state in lower case: "succeeded", "failed", "cancelled".
  void JobFinished(absl::string_view method, absl::string_view outcome,
                   double seconds);
  // quantd_stage_duration_seconds{stage} histogram (stage names as in the
  // report's StageTiming: "load", "calibrate", "quantize", ...).
  void StageFinished(absl::string_view stage, double seconds);
  // quantd_queue_depth and quantd_busy_workers gauges.
  void SetQueueDepth(int64_t n);
  void SetBusyWorkers(int64_t n);
  // quantd_uploaded_bytes_total and quantd_downloaded_bytes_total; negative
  // amounts are ignored (a counter never goes down).
  void BytesUploaded(int64_t n);
  void BytesDownloaded(int64_t n);
  // quantd_grpc_calls_total{method,code}; code as grpc names it ("OK",
  // "INVALID_ARGUMENT", ...).
  void GrpcCall(absl::string_view method, absl::string_view code);
  // quantd_storage_bytes{state}: bytes under the data folder by state
  // ("committed", "artifacts", "uploading", "reserved", "checkpoints"; see
  // server/janitor.h). Not per tenant: the label stays bounded.
  void SetStorageBytes(absl::string_view state, int64_t bytes);
  // quantd_janitor_removed_total{kind} and
  // quantd_janitor_removed_bytes_total{kind}; kind is "upload" (stale
  // upload in progress), "temp_file" or "checkpoint".
  void JanitorRemoved(absl::string_view kind, int64_t files, int64_t bytes);

  // For a finished job, gauges labelled {method, model}:
  //   quantd_job_accuracy_delta_points   (only when fake_quant has labels)
  //   quantd_job_perplexity_delta_ratio  (only for language models; percent
  //                                       / 100, the base unit)
  //   quantd_job_size_ratio              (float bytes / quantized bytes,
  //                                       only when known)
  //   quantd_job_speedup                 (only when measured, > 0)
  // A gauge holds the latest finished job of that {method, model}. `model`
  // counts against `tenant`'s label budget.
  void JobQuality(absl::string_view method, absl::string_view tenant,
                  absl::string_view model,
                  const v1::QuantizationReport& report);

  // The registry holding every family's series. Note that prometheus-cpp's
  // Registry::Collect() omits families without series; Collect() below is
  // what /metrics serves.
  prometheus::Registry& registry() { return *registry_; }
  // For prometheus::Gateway (run-job --push-gateway), which holds it weakly.
  std::shared_ptr<prometheus::Registry> shared_registry() { return registry_; }

  // Everything /metrics serves: the registry's series plus HELP and TYPE of
  // the families that have no series yet (labelled families whose label
  // values are only known at run time).
  std::vector<prometheus::MetricFamily> Collect() const;

  // The model label value JobQuality would use for `tenant`'s `model`
  // (records it as one of the tenant's bounded values if there is room).
  // Exposed for tests.
  std::string ModelLabel(absl::string_view tenant, absl::string_view model);

 private:
  class Exposition;

  explicit ServiceMetrics(int max_model_labels);
  // The families Create declares (prometheus-cpp throws on a bad name, which
  // only a programming error causes); then the /metrics endpoint.
  void DeclareServiceFamilies();
  void DeclareQualityFamilies(const std::string& version);
  void DeclareStorageFamilies();
  absl::Status StartExposer(const std::string& listen_address);

  // Registers a family and remembers its metadata for Exposition.
  template <typename T>
  prometheus::Family<T>& Declare(prometheus::detail::Builder<T> builder,
                                 const std::string& name,
                                 const std::string& help);

  const int max_model_labels_;
  std::shared_ptr<prometheus::Registry> registry_;
  std::vector<prometheus::MetricFamily> declared_;
  std::shared_ptr<Exposition> exposition_;
  std::unique_ptr<prometheus::Exposer> exposer_;
  int port_ = 0;

  prometheus::Family<prometheus::Counter>* jobs_created_ = nullptr;
  prometheus::Family<prometheus::Counter>* jobs_finished_ = nullptr;
  prometheus::Family<prometheus::Histogram>* job_duration_ = nullptr;
  prometheus::Family<prometheus::Histogram>* stage_duration_ = nullptr;
  prometheus::Gauge* queue_depth_ = nullptr;
  prometheus::Gauge* busy_workers_ = nullptr;
  prometheus::Counter* uploaded_bytes_ = nullptr;
  prometheus::Counter* downloaded_bytes_ = nullptr;
  prometheus::Family<prometheus::Counter>* grpc_calls_ = nullptr;
  prometheus::Family<prometheus::Gauge>* storage_bytes_ = nullptr;
  prometheus::Family<prometheus::Counter>* janitor_removed_ = nullptr;
  prometheus::Family<prometheus::Counter>* janitor_removed_bytes_ = nullptr;
  prometheus::Family<prometheus::Gauge>* accuracy_delta_ = nullptr;
  prometheus::Family<prometheus::Gauge>* perplexity_delta_ = nullptr;
  prometheus::Family<prometheus::Gauge>* size_ratio_ = nullptr;
  prometheus::Family<prometheus::Gauge>* speedup_ = nullptr;

  absl::Mutex mu_;
  // Model label values recorded, per tenant.
  absl::flat_hash_map<std::string, absl::flat_hash_set<std::string>> models_
      ABSL_GUARDED_BY(mu_);
};

}  // namespace quantd
