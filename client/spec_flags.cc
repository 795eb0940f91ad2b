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

// When `value` is set, chooses among `choices` and hands the result to
// `set`.
template <typename T, typename Setter>
absl::Status ChooseIfSet(
    const char* flag, const std::optional<std::string>& value,
    std::initializer_list<std::pair<const char*, T>> choices, Setter set) {
  if (!value) return absl::OkStatus();
  T chosen{};
  if (absl::Status s = Choose<T>(flag, *value, choices, &chosen); !s.ok()) {
    return s;
  }
  set(chosen);
  return absl::OkStatus();
}

absl::Status ApplyModeFlags(const QuantizeFlags& flags, v1::JobSpec* spec) {
  if (absl::Status s = ChooseIfSet<v1::Method>(
          "--method", flags.method,
          {{"ptq", v1::METHOD_PTQ}, {"qat", v1::METHOD_QAT}},
          [&](v1::Method m) { spec->set_method(m); });
      !s.ok()) {
    return s;
  }
  return ChooseIfSet<v1::QuantMode>(
      "--mode", flags.mode,
      {{"static", v1::QUANT_MODE_STATIC},
       {"dynamic", v1::QUANT_MODE_DYNAMIC},
       {"weight-only", v1::QUANT_MODE_WEIGHT_ONLY}},
      [&](v1::QuantMode m) { spec->set_mode(m); });
}

absl::Status ApplyWeightFlags(const QuantizeFlags& flags, v1::JobSpec* spec) {
  // mutable_weights() would create the message: only where a flag is set.
  auto w = [spec] { return spec->mutable_weights(); };
  if (absl::Status s = ChooseIfSet<v1::QuantDataType>(
          "--weights", flags.weights,
          {{"int8", v1::QUANT_DATA_TYPE_INT8},
           {"int4", v1::QUANT_DATA_TYPE_INT4},
           {"int3", v1::QUANT_DATA_TYPE_INT4},
           {"int2", v1::QUANT_DATA_TYPE_INT4}},
          [&](v1::QuantDataType t) { w()->set_type(t); });
      !s.ok()) {
    return s;
  }
  // int3 and int2 live in int4 containers (WeightScheme.bits).
  if (flags.weights == "int3") w()->set_bits(3);
  if (flags.weights == "int2") w()->set_bits(2);
  if (absl::Status s = ChooseIfSet<v1::Granularity>(
          "--granularity", flags.granularity,
          {{"per-channel", v1::GRANULARITY_PER_CHANNEL},
           {"per-group", v1::GRANULARITY_PER_GROUP},
           {"per-tensor", v1::GRANULARITY_PER_TENSOR}},
          [&](v1::Granularity g) { w()->set_granularity(g); });
      !s.ok()) {
    return s;
  }
  if (flags.group_size) {
    if (*flags.group_size <= 0) {
      return absl::InvalidArgumentError(absl::StrCat(
          "--group-size must be positive; got ", *flags.group_size));
    }
    w()->set_group_size(*flags.group_size);
    if (!flags.granularity) w()->set_granularity(v1::GRANULARITY_PER_GROUP);
  }
  return absl::OkStatus();
}

absl::Status ApplyAlgorithmFlags(const QuantizeFlags& flags,
                                 v1::JobSpec* spec) {
  if (absl::Status s = ChooseIfSet<v1::CalibrationMethod>(
          "--calibration", flags.calibration,
          {{"minmax", v1::CALIBRATION_METHOD_MIN_MAX},
           {"percentile", v1::CALIBRATION_METHOD_PERCENTILE},
           {"entropy", v1::CALIBRATION_METHOD_ENTROPY},
           {"mse", v1::CALIBRATION_METHOD_MSE}},
          [&](v1::CalibrationMethod c) {
            spec->mutable_calibration()->set_method(c);
          });
      !s.ok()) {
    return s;
  }
  if (absl::Status s = ChooseIfSet<v1::EvaluationTask>(
          "--task", flags.task,
          {{"classification", v1::EVALUATION_TASK_CLASSIFICATION},
           {"language-model", v1::EVALUATION_TASK_LANGUAGE_MODEL},
           {"fidelity", v1::EVALUATION_TASK_OUTPUT_FIDELITY},
           {"segmentation", v1::EVALUATION_TASK_SEGMENTATION}},
          [&](v1::EvaluationTask t) {
            spec->mutable_evaluation()->set_task(t);
          });
      !s.ok()) {
    return s;
  }
  auto alg = [spec] { return spec->mutable_algorithms(); };
  if (flags.smoothquant_alpha) {
    const double a = *flags.smoothquant_alpha;
    if (!(a >= 0 && a <= 1)) {
      return absl::InvalidArgumentError(
          absl::StrCat("--smoothquant takes an alpha in [0, 1]; got ", a));
    }
    alg()->mutable_smooth_quant()->set_enabled(true);
    alg()->mutable_smooth_quant()->set_alpha(a);
  }
  if (flags.gptq) alg()->mutable_gptq()->set_enabled(true);
  if (flags.awq) alg()->mutable_awq()->set_enabled(true);
  if (flags.learned_rounding_steps != 0) {
    alg()->mutable_learned_rounding()->set_enabled(true);
    if (flags.learned_rounding_steps > 0) {
      alg()->mutable_learned_rounding()->set_iterations(
          flags.learned_rounding_steps);
    } else if (flags.learned_rounding_steps < -1) {
      return absl::InvalidArgumentError(
          "--learned-rounding takes a positive number of steps");
    }
  }
  if (flags.bias_correction) alg()->set_bias_correction(true);
  if (flags.rotate || flags.rotate_heads || flags.rotate_online) {
    alg()->mutable_rotation()->set_enabled(true);
  }
  if (flags.rotate_heads) {
    alg()->mutable_rotation()->set_value_output_heads(true);
  }
  if (flags.rotate_online) {
    alg()->mutable_rotation()->set_online_down_projections(true);
  }
  if (flags.cross_layer_equalization) {
    alg()->set_cross_layer_equalization(true);
  }
  return absl::OkStatus();
}

absl::Status ApplyTargetAndLabelFlags(const QuantizeFlags& flags,
                                      v1::JobSpec* spec) {
  if (flags.max_weight_bytes) {
    if (*flags.max_weight_bytes <= 0) {
      return absl::InvalidArgumentError(
          "--max-weight-bytes takes a positive number of bytes");
    }
    spec->mutable_size_budget()->set_max_weight_bytes(*flags.max_weight_bytes);
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

}  // namespace

absl::Status ApplyQuantizeFlags(const QuantizeFlags& flags, v1::JobSpec* spec) {
  for (auto* apply : {ApplyModeFlags, ApplyWeightFlags, ApplyAlgorithmFlags,
                      ApplyTargetAndLabelFlags}) {
    if (absl::Status s = apply(flags, spec); !s.ok()) return s;
  }
  return absl::OkStatus();
}

}  // namespace quantd::client
