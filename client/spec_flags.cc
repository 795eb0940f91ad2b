#include "client/spec_flags.h"

#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

namespace quantd::client {
namespace {

// Looks `value` up in `choices`; INVALID_ARGUMENT listing them otherwise.
template <typename T>
absl::Status Choose(const char* flag, const std::string& value,
                    std::initializer_list<std::pair<const char*, T>> choices,
                    T* out) {
  std::vector<std::string> names;
  for (const auto& [name, v] : choices) {
    if (value == name) {
      *out = v;
      return absl::OkStatus();
    }
    names.push_back(name);
  }
  return absl::InvalidArgumentError(absl::StrCat(
      flag, " takes ", absl::StrJoin(names, ", "), "; got '", value, "'"));
}

}  // namespace

absl::Status ApplyQuantizeFlags(const QuantizeFlags& flags, v1::JobSpec* spec) {
  if (flags.method) {
    v1::Method m = v1::METHOD_UNSPECIFIED;
    if (absl::Status s = Choose<v1::Method>(
            "--method", *flags.method,
            {{"ptq", v1::METHOD_PTQ}, {"qat", v1::METHOD_QAT}}, &m);
        !s.ok()) {
      return s;
    }
    spec->set_method(m);
  }
  if (flags.mode) {
    v1::QuantMode m = v1::QUANT_MODE_UNSPECIFIED;
    if (absl::Status s =
            Choose<v1::QuantMode>("--mode", *flags.mode,
                                  {{"static", v1::QUANT_MODE_STATIC},
                                   {"dynamic", v1::QUANT_MODE_DYNAMIC},
                                   {"weight-only", v1::QUANT_MODE_WEIGHT_ONLY}},
                                  &m);
        !s.ok()) {
      return s;
    }
    spec->set_mode(m);
  }
  if (flags.weights) {
    v1::QuantDataType t = v1::QUANT_DATA_TYPE_UNSPECIFIED;
    if (absl::Status s =
            Choose<v1::QuantDataType>("--weights", *flags.weights,
                                      {{"int8", v1::QUANT_DATA_TYPE_INT8},
                                       {"int4", v1::QUANT_DATA_TYPE_INT4}},
                                      &t);
        !s.ok()) {
      return s;
    }
    spec->mutable_weights()->set_type(t);
  }
  if (flags.granularity) {
    v1::Granularity g = v1::GRANULARITY_UNSPECIFIED;
    if (absl::Status s = Choose<v1::Granularity>(
            "--granularity", *flags.granularity,
            {{"per-channel", v1::GRANULARITY_PER_CHANNEL},
             {"per-group", v1::GRANULARITY_PER_GROUP},
             {"per-tensor", v1::GRANULARITY_PER_TENSOR}},
            &g);
        !s.ok()) {
      return s;
    }
    spec->mutable_weights()->set_granularity(g);
  }
  if (flags.group_size) {
    if (*flags.group_size <= 0) {
      return absl::InvalidArgumentError(absl::StrCat(
          "--group-size must be positive; got ", *flags.group_size));
    }
    spec->mutable_weights()->set_group_size(*flags.group_size);
    if (!flags.granularity) {
      spec->mutable_weights()->set_granularity(v1::GRANULARITY_PER_GROUP);
    }
  }
  if (flags.calibration) {
    v1::CalibrationMethod c = v1::CALIBRATION_METHOD_UNSPECIFIED;
    if (absl::Status s = Choose<v1::CalibrationMethod>(
            "--calibration", *flags.calibration,
            {{"minmax", v1::CALIBRATION_METHOD_MIN_MAX},
             {"percentile", v1::CALIBRATION_METHOD_PERCENTILE},
             {"entropy", v1::CALIBRATION_METHOD_ENTROPY},
             {"mse", v1::CALIBRATION_METHOD_MSE}},
            &c);
        !s.ok()) {
      return s;
    }
    spec->mutable_calibration()->set_method(c);
  }
  if (flags.smoothquant_alpha) {
    const double a = *flags.smoothquant_alpha;
    if (!(a >= 0 && a <= 1)) {
      return absl::InvalidArgumentError(
          absl::StrCat("--smoothquant takes an alpha in [0, 1]; got ", a));
    }
    auto* sq = spec->mutable_algorithms()->mutable_smooth_quant();
    sq->set_enabled(true);
    sq->set_alpha(a);
  }
  if (flags.gptq) spec->mutable_algorithms()->mutable_gptq()->set_enabled(true);
  if (flags.awq) spec->mutable_algorithms()->mutable_awq()->set_enabled(true);
  if (flags.bias_correction) {
    spec->mutable_algorithms()->set_bias_correction(true);
  }
  if (flags.max_accuracy_drop) {
    if (*flags.max_accuracy_drop < 0) {
      return absl::InvalidArgumentError(
          "--max-accuracy-drop takes points >= 0");
    }
    spec->mutable_accuracy_target()->set_max_accuracy_drop_points(
        *flags.max_accuracy_drop);
  }
  if (flags.max_perplexity_increase) {
    if (*flags.max_perplexity_increase < 0) {
      return absl::InvalidArgumentError(
          "--max-perplexity-increase takes a percent >= 0");
    }
    spec->mutable_accuracy_target()->set_max_perplexity_increase_percent(
        *flags.max_perplexity_increase);
  }
  for (const std::string& label : flags.labels) {
    const size_t eq = label.find('=');
    if (eq == std::string::npos || eq == 0) {
      return absl::InvalidArgumentError(
          absl::StrCat("--label takes key=value; got '", label, "'"));
    }
    (*spec->mutable_labels())[label.substr(0, eq)] = label.substr(eq + 1);
  }
  return absl::OkStatus();
}

}  // namespace quantd::client
