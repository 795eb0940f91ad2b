#include "engine/pipeline/job_spec.h"

#include <cmath>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "engine/evaluation/pipeline_evaluation.h"
#include "engine/pipeline/enum_checks.h"
#include "google/protobuf/util/json_util.h"
#include "util/status_macros.h"

namespace quantd {
namespace {

// "model.path is empty", "calibration.percentile must be ...".
absl::Status Invalid(absl::string_view field, absl::string_view why) {
  return absl::InvalidArgumentError(
      absl::StrCat(field, absl::StartsWith(why, ".") ? "" : " ", why));
}

absl::Status CheckDataRef(const v1::DataRef& ref, absl::string_view field,
                          bool required, SpecOrigin origin) {
  switch (ref.source_case()) {
    case v1::DataRef::SOURCE_NOT_SET:
      return required ? Invalid(field, "is required (blob_sha256 or path)")
                      : absl::OkStatus();
    case v1::DataRef::kBlobSha256: {
      const std::string& d = ref.blob_sha256();
      bool hex = d.size() == 64;
      for (char c : d)
        hex = hex && std::isxdigit(static_cast<unsigned char>(c));
      if (!hex) {
        return Invalid(field, absl::StrCat(".blob_sha256 must be 64 hex "
                                           "digits, got '",
                                           d.substr(0, 80), "'"));
      }
      return absl::OkStatus();
    }
    case v1::DataRef::kPath:
      if (origin == SpecOrigin::kService) {
        return Invalid(field,
                       ".path is only accepted by quantd run-job; upload the "
                       "file and refer to it by blob_sha256");
      }
      if (ref.path().empty()) return Invalid(field, ".path is empty");
      return absl::OkStatus();
    case v1::DataRef::kUri:
      // The service copies s3:// objects into blobs before planning, so a
      // plan never sees one (server/s3_job_io.h).
      return Invalid(field,
                     origin == SpecOrigin::kService
                         ? ".uri: this server does not read s3:// references"
                         : ".uri (s3://) is read by quantd serve only; quantd "
                           "run-job reads local files: give path");
  }
  return absl::OkStatus();
}

absl::Status CheckOutputUri(const v1::JobSpec& spec, SpecOrigin origin) {
  if (spec.output_uri().empty()) return absl::OkStatus();
  if (origin == SpecOrigin::kBatch) {
    return absl::InvalidArgumentError(
        "output_uri is written by quantd serve only; quantd run-job writes "
        "its artifacts to --out");
  }
  if (!absl::StartsWith(spec.output_uri(), "s3://")) {
    return absl::InvalidArgumentError(
        absl::StrCat("output_uri must be an s3://BUCKET[/PREFIX] URI, got '",
                     spec.output_uri().substr(0, 80), "'"));
  }
  return absl::OkStatus();
}

bool IsInt4(v1::QuantDataType t) {
  return t == v1::QUANT_DATA_TYPE_INT4 || t == v1::QUANT_DATA_TYPE_UINT4;
}

// Which mode the spec means (UNSPECIFIED is STATIC).
v1::QuantMode ModeOf(const v1::JobSpec& spec) {
  return spec.mode() == v1::QUANT_MODE_UNSPECIFIED ? v1::QUANT_MODE_STATIC
                                                   : spec.mode();
}

absl::Status CheckDataRefs(const v1::JobSpec& spec, SpecOrigin origin) {
  const v1::Algorithms& alg = spec.algorithms();
  const bool needs_calibration =
      ModeOf(spec) == v1::QUANT_MODE_STATIC ||
      spec.method() == v1::METHOD_QAT || alg.gptq().enabled() ||
      alg.awq().enabled() || alg.learned_rounding().enabled() ||
      alg.smooth_quant().enabled() || alg.bias_correction();
  QUANTD_RETURN_IF_ERROR(CheckDataRef(spec.model(), "model", true, origin));
  QUANTD_RETURN_IF_ERROR(CheckDataRef(
      spec.calibration_data(), "calibration_data", needs_calibration, origin));
  return CheckDataRef(spec.evaluation_data(), "evaluation_data", false, origin);
}

absl::Status CheckWeights(const v1::JobSpec& spec) {
  const v1::WeightScheme& w = spec.weights();
  if (w.type() == v1::QUANT_DATA_TYPE_UINT8) {
    return Invalid("weights.type",
                   "UINT8 is not supported; use INT8 (with "
                   "asymmetric: true for a zero point)");
  }
  if (w.bits() != 0 && w.bits() != 4 &&
      !((w.bits() == 2 || w.bits() == 3) && IsInt4(w.type()))) {
    return Invalid(
        "weights.bits",
        absl::StrCat("must be 2, 3 or 4 with type INT4 (0: the "
                     "type's own width), got ",
                     w.bits(), IsInt4(w.type()) ? "" : " with INT8"));
  }
  if (w.granularity() == v1::GRANULARITY_PER_GROUP) {
    const int g = w.group_size();
    if (g != 32 && g != 64 && g != 128) {
      return Invalid(
          "weights.group_size",
          absl::StrCat("must be 32, 64 or 128 for PER_GROUP, got ", g));
    }
  } else if (w.allow_partial_groups()) {
    return Invalid("weights.allow_partial_groups",
                   "is only meaningful with granularity PER_GROUP");
  } else if (w.group_size() != 0) {
    return Invalid("weights.group_size",
                   "is only meaningful with granularity PER_GROUP");
  }
  return absl::OkStatus();
}

absl::Status CheckActivations(const v1::JobSpec& spec) {
  const v1::QuantMode mode = ModeOf(spec);
  const v1::ActivationScheme& a = spec.activations();
  const v1::WeightScheme& w = spec.weights();
  if (IsInt4(a.type())) {
    return Invalid(
        "activations.type",
        "must be INT8 or UINT8 (int4 activations are not supported)");
  }
  if (mode == v1::QUANT_MODE_DYNAMIC &&
      (a.type() == v1::QUANT_DATA_TYPE_INT8 || a.symmetric())) {
    return Invalid("activations",
                   "DYNAMIC mode quantizes activations to asymmetric uint8 "
                   "per batch (ONNX DynamicQuantizeLinear); leave "
                   "activations unset");
  }
  if (mode == v1::QUANT_MODE_DYNAMIC &&
      (w.type() == v1::QUANT_DATA_TYPE_INT4 ||
       w.type() == v1::QUANT_DATA_TYPE_UINT4)) {
    return Invalid("weights.type",
                   "DYNAMIC mode quantizes weights to int8; int4 weights are "
                   "for WEIGHT_ONLY mode");
  }
  if (mode == v1::QUANT_MODE_WEIGHT_ONLY &&
      a.type() != v1::QUANT_DATA_TYPE_UNSPECIFIED) {
    return Invalid(
        "activations.type",
        "must be unset in WEIGHT_ONLY mode (activations stay float)");
  }

  return absl::OkStatus();
}

absl::Status CheckCalibration(const v1::JobSpec& spec) {
  const v1::CalibrationConfig& c = spec.calibration();
  // 0 means unset (default 99.99); anything else must be in (0, 100].
  if (!(c.percentile() >= 0 && c.percentile() <= 100)) {
    return Invalid("calibration.percentile",
                   absl::StrCat("must be in (0, 100], got ", c.percentile()));
  }
  if (c.num_bins() != 0 && (c.num_bins() < 128 || c.num_bins() > 65536)) {
    return Invalid("calibration.num_bins",
                   absl::StrCat("must be in [128, 65536], got ", c.num_bins()));
  }
  if (c.momentum() < 0 || c.momentum() >= 1) {
    return Invalid("calibration.momentum",
                   absl::StrCat("must be in [0, 1), got ", c.momentum()));
  }
  if (c.max_samples() < 0) {
    return Invalid("calibration.max_samples", "must not be negative");
  }
  if (c.batch_size() < 0 || c.batch_size() > 4096) {
    return Invalid("calibration.batch_size",
                   absl::StrCat("must be in [1, 4096], got ", c.batch_size()));
  }

  return absl::OkStatus();
}

absl::Status CheckAlgorithms(const v1::JobSpec& spec) {
  const v1::QuantMode mode = ModeOf(spec);
  const v1::Algorithms& alg = spec.algorithms();
  const double alpha = alg.smooth_quant().alpha();
  if (alpha < 0 || alpha > 1) {
    return Invalid("algorithms.smooth_quant.alpha",
                   absl::StrCat("must be in [0, 1], got ", alpha));
  }
  if (alg.smooth_quant().enabled() && mode == v1::QUANT_MODE_WEIGHT_ONLY) {
    return Invalid("algorithms.smooth_quant",
                   "migrates activation outliers into weights, so it needs "
                   "quantized activations (STATIC or DYNAMIC mode); for "
                   "weight-only use awq");
  }
  if (alg.gptq().block_size() < 0 || alg.gptq().block_size() > 4096) {
    return Invalid("algorithms.gptq.block_size", "must be in [1, 4096]");
  }
  if (alg.gptq().damp_percent() < 0 || alg.gptq().damp_percent() >= 1) {
    return Invalid("algorithms.gptq.damp_percent", "must be in [0, 1)");
  }
  const v1::LearnedRoundingConfig& lr = alg.learned_rounding();
  if (lr.iterations() < 0 || lr.iterations() > 5000) {
    return Invalid("algorithms.learned_rounding.iterations",
                   absl::StrCat("must be in [1, 5000], got ", lr.iterations()));
  }
  if (!(lr.learning_rate() >= 0 && lr.learning_rate() <= 0.5)) {
    return Invalid(
        "algorithms.learned_rounding.learning_rate",
        absl::StrCat("must be in (0, 0.5], got ", lr.learning_rate()));
  }
  if (alg.awq().enabled() && mode != v1::QUANT_MODE_WEIGHT_ONLY) {
    return Invalid("algorithms.awq",
                   "searches scales for weight-only quantization; set mode "
                   "WEIGHT_ONLY");
  }
  if (alg.awq().grid_size() < 0 || alg.awq().grid_size() > 1000) {
    return Invalid("algorithms.awq.grid_size", "must be in [1, 1000]");
  }
  if (alg.rotation().online_down_projections() && !alg.rotation().enabled()) {
    return Invalid("algorithms.rotation.online_down_projections",
                   "rotates on top of the residual-stream rotation; also set "
                   "algorithms.rotation.enabled");
  }
  if (alg.rotation().value_output_heads() && !alg.rotation().enabled()) {
    return Invalid("algorithms.rotation.value_output_heads",
                   "rotates heads on top of the residual-stream rotation; "
                   "also set algorithms.rotation.enabled");
  }

  return absl::OkStatus();
}

absl::Status CheckSizeBudget(const v1::JobSpec& spec) {
  const int64_t budget = spec.size_budget().max_weight_bytes();
  if (budget < 0) {
    return Invalid("size_budget.max_weight_bytes", "must not be negative");
  }
  if (budget == 0) return absl::OkStatus();
  if (AnyTargetSet(spec.accuracy_target())) {
    return Invalid("size_budget",
                   "and accuracy_target are two questions; set one or the "
                   "other");
  }
  if (spec.method() == v1::METHOD_QAT) {
    return Invalid("size_budget", "is for PTQ jobs");
  }
  if (spec.sensitivity().disabled()) {
    return Invalid("size_budget",
                   "chooses precisions from per-layer sensitivity; do not "
                   "set sensitivity.disabled");
  }
  return absl::OkStatus();
}

absl::Status CheckTargetsAndLabels(const v1::JobSpec& spec) {
  if (spec.sensitivity().max_samples() < 0) {
    return Invalid("sensitivity.max_samples", "must not be negative");
  }
  if (!(spec.sensitivity().time_budget_seconds() >= 0 &&
        spec.sensitivity().time_budget_seconds() <= 86400)) {
    return Invalid("sensitivity.time_budget_seconds", "must be in [0, 86400]");
  }
  const v1::AccuracyTarget& t = spec.accuracy_target();
  if (t.max_accuracy_drop_points() < 0 ||
      t.max_perplexity_increase_percent() < 0) {
    return Invalid("accuracy_target", "bounds must not be negative");
  }
  if (!(t.min_output_sqnr_db() >= 0 && t.min_output_sqnr_db() <= 200)) {
    return Invalid("accuracy_target.min_output_sqnr_db",
                   "must be in [0, 200] dB");
  }
  if (!(t.min_mask_iou() >= 0 && t.min_mask_iou() <= 1)) {
    return Invalid("accuracy_target.min_mask_iou", "must be in [0, 1]");
  }
  if (!(spec.benchmark().max_seconds() >= 0 &&
        spec.benchmark().max_seconds() <= 600)) {
    return Invalid("benchmark.max_seconds", "must be in [0, 600]");
  }
  if (spec.evaluation().token_input().size() > 256) {
    return Invalid("evaluation.token_input", "must be at most 256 characters");
  }
  if (spec.exclude_nodes_size() > 10000 ||
      spec.exclude_op_types_size() > 1000) {
    return Invalid("exclude_nodes", "lists are too long");
  }
  if (spec.labels_size() > 32) {
    return Invalid("labels", "at most 32 labels are allowed");
  }
  for (const auto& [k, v] : spec.labels()) {
    if (k.empty() || k.size() > 63 || v.size() > 63) {
      return Invalid("labels", absl::StrCat("key '", k.substr(0, 80),
                                            "': keys must be 1-63 characters "
                                            "and values at most 63"));
    }
  }
  return absl::OkStatus();
}

absl::Status CheckQat(const v1::JobSpec& spec, SpecOrigin origin) {
  const bool qat = spec.method() == v1::METHOD_QAT;
  if (!qat && spec.has_qat()) {
    return Invalid("qat", "is set but method is not METHOD_QAT");
  }
  if (qat) {
    const v1::QatConfig& q = spec.qat();
    if (q.learning_rate() < 0 || !std::isfinite(q.learning_rate())) {
      return Invalid("qat.learning_rate", "must be a positive number");
    }
    if (q.max_steps() < 0 || q.time_budget_seconds() < 0) {
      return Invalid("qat",
                     "max_steps and time_budget_seconds must not be "
                     "negative");
    }
    if (q.has_train_data()) {
      QUANTD_RETURN_IF_ERROR(
          CheckDataRef(q.train_data(), "qat.train_data", false, origin));
    }
  }
  return absl::OkStatus();
}

}  // namespace

absl::Status ValidateJobSpec(const v1::JobSpec& spec, SpecOrigin origin) {
  QUANTD_RETURN_IF_ERROR(CheckEnumFields(spec));
  QUANTD_RETURN_IF_ERROR(CheckDataRefs(spec, origin));
  QUANTD_RETURN_IF_ERROR(CheckOutputUri(spec, origin));
  QUANTD_RETURN_IF_ERROR(CheckWeights(spec));
  QUANTD_RETURN_IF_ERROR(CheckActivations(spec));
  QUANTD_RETURN_IF_ERROR(CheckCalibration(spec));
  QUANTD_RETURN_IF_ERROR(CheckAlgorithms(spec));
  QUANTD_RETURN_IF_ERROR(CheckTargetsAndLabels(spec));
  QUANTD_RETURN_IF_ERROR(CheckSizeBudget(spec));
  return CheckQat(spec, origin);
}

namespace {

// Turns every -0.0 in `m` (and its sub-messages) into 0.0. Protobuf's JSON
// printer does not write -0 back in a form that reparses to the same spec
// (found by fuzz_job_spec), and a negative zero means nothing in a spec.
void ClearNegativeZeros(google::protobuf::Message* m) {
  const google::protobuf::Reflection* r = m->GetReflection();
  std::vector<const google::protobuf::FieldDescriptor*> fields;
  r->ListFields(*m, &fields);
  using FD = google::protobuf::FieldDescriptor;
  for (const FD* f : fields) {
    const int n = f->is_repeated() ? r->FieldSize(*m, f) : 1;
    for (int i = 0; i < n; ++i) {
      switch (f->cpp_type()) {
        case FD::CPPTYPE_DOUBLE:
          if (f->is_repeated() ? r->GetRepeatedDouble(*m, f, i) == 0
                               : r->GetDouble(*m, f) == 0) {
            f->is_repeated() ? r->SetRepeatedDouble(m, f, i, 0.0)
                             : r->SetDouble(m, f, 0.0);
          }
          break;
        case FD::CPPTYPE_FLOAT:
          if (f->is_repeated() ? r->GetRepeatedFloat(*m, f, i) == 0
                               : r->GetFloat(*m, f) == 0) {
            f->is_repeated() ? r->SetRepeatedFloat(m, f, i, 0.f)
                             : r->SetFloat(m, f, 0.f);
          }
          break;
        case FD::CPPTYPE_MESSAGE:
          ClearNegativeZeros(f->is_repeated()
                                 ? r->MutableRepeatedMessage(m, f, i)
                                 : r->MutableMessage(m, f));
          break;
        default:
          break;
      }
    }
  }
}

}  // namespace

absl::StatusOr<v1::JobSpec> ParseJobSpecJson(absl::string_view json) {
  if (json.size() > kMaxJobSpecBytes) {
    return absl::InvalidArgumentError(
        absl::StrCat("the job spec is ", json.size(), " bytes; the limit is ",
                     kMaxJobSpecBytes));
  }
  v1::JobSpec spec;
  google::protobuf::util::JsonParseOptions options;
  options.ignore_unknown_fields = false;
  auto status = google::protobuf::util::JsonStringToMessage(
      google::protobuf::StringPiece(json.data(), json.size()), &spec, options);
  if (!status.ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat("the job spec is not valid JobSpec JSON: ",
                     status.message().ToString()));
  }
  ClearNegativeZeros(&spec);
  return spec;
}

absl::StatusOr<std::string> JobSpecToJson(const v1::JobSpec& spec) {
  std::string out;
  google::protobuf::util::JsonPrintOptions options;
  options.add_whitespace = true;
  options.preserve_proto_field_names = false;
  if (auto s = google::protobuf::util::MessageToJsonString(spec, &out, options);
      !s.ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat("the job spec cannot be written as JSON: ", s.ToString()));
  }
  return out;
}

v1::JobSpec WithDefaults(const v1::JobSpec& spec) {
  v1::JobSpec s = spec;
  if (s.method() == v1::METHOD_UNSPECIFIED) s.set_method(v1::METHOD_PTQ);
  if (s.mode() == v1::QUANT_MODE_UNSPECIFIED) {
    s.set_mode(v1::QUANT_MODE_STATIC);
  }
  v1::WeightScheme* w = s.mutable_weights();
  if (w->type() == v1::QUANT_DATA_TYPE_UNSPECIFIED) {
    w->set_type(v1::QUANT_DATA_TYPE_INT8);
  }
  if (w->granularity() == v1::GRANULARITY_UNSPECIFIED) {
    w->set_granularity(v1::GRANULARITY_PER_CHANNEL);
  }
  if (s.mode() != v1::QUANT_MODE_WEIGHT_ONLY &&
      s.activations().type() == v1::QUANT_DATA_TYPE_UNSPECIFIED) {
    s.mutable_activations()->set_type(v1::QUANT_DATA_TYPE_UINT8);
  }
  v1::CalibrationConfig* c = s.mutable_calibration();
  if (c->method() == v1::CALIBRATION_METHOD_UNSPECIFIED) {
    c->set_method(v1::CALIBRATION_METHOD_PERCENTILE);
  }
  if (c->percentile() == 0) c->set_percentile(99.99);
  if (c->num_bins() == 0) c->set_num_bins(2048);
  if (!c->has_momentum()) c->set_momentum(0.9);
  if (c->batch_size() == 0) c->set_batch_size(32);
  v1::Algorithms* a = s.mutable_algorithms();
  if (!a->smooth_quant().has_alpha()) {
    a->mutable_smooth_quant()->set_alpha(0.5);
  }
  if (a->gptq().block_size() == 0) a->mutable_gptq()->set_block_size(128);
  if (a->gptq().damp_percent() == 0) a->mutable_gptq()->set_damp_percent(0.01);
  if (a->awq().grid_size() == 0) a->mutable_awq()->set_grid_size(20);
  if (a->learned_rounding().iterations() == 0) {
    a->mutable_learned_rounding()->set_iterations(200);
  }
  if (s.benchmark().max_seconds() == 0)
    s.mutable_benchmark()->set_max_seconds(3);
  if (s.sensitivity().time_budget_seconds() == 0) {
    s.mutable_sensitivity()->set_time_budget_seconds(300);
  }
  if (s.sensitivity().max_samples() == 0) {
    s.mutable_sensitivity()->set_max_samples(256);
  }
  if (s.method() == v1::METHOD_QAT) {
    // qat.distillation_weight's default depends on whether the training data
    // has labels; the train stage fills it in (and the report's spec shows it).
    v1::QatConfig* q = s.mutable_qat();
    if (q->max_steps() == 0) q->set_max_steps(300);
    if (q->time_budget_seconds() == 0) q->set_time_budget_seconds(300);
    if (q->batch_size() == 0) q->set_batch_size(32);
    if (q->optimizer() == v1::QatConfig::OPTIMIZER_UNSPECIFIED) {
      q->set_optimizer(v1::QatConfig::OPTIMIZER_ADAM);
    }
    if (q->learning_rate() == 0) {
      q->set_learning_rate(
          q->optimizer() == v1::QatConfig::OPTIMIZER_SGD ? 1e-3 : 1e-4);
    }
  }
  return s;
}

}  // namespace quantd
