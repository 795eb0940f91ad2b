// quantctl quantize's scheme flags, and how they fill a JobSpec. A flag
// that was not given leaves the spec (from --spec, or defaults) alone.
#ifndef QUANTD_CLIENT_SPEC_FLAGS_H_
#define QUANTD_CLIENT_SPEC_FLAGS_H_

#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "quantd/v1/job_spec.pb.h"

namespace quantd::client {

struct QuantizeFlags {
  std::optional<std::string> method;       // ptq | qat
  std::optional<std::string> mode;         // static | dynamic | weight-only
  std::optional<std::string> weights;      // int8 | int4
  std::optional<std::string> granularity;  // per-channel|per-group|per-tensor
  std::optional<int> group_size;
  // minmax | percentile | entropy | mse
  std::optional<std::string> calibration;
  std::optional<double> smoothquant_alpha;
  bool gptq = false;
  // --learned-rounding [STEPS]: 0 = not given; -1 = the default steps.
  int learned_rounding_steps = 0;
  bool awq = false;
  bool bias_correction = false;
  bool cross_layer_equalization = false;
  bool rotate = false;
  bool rotate_heads = false;                      // implies rotate
  bool rotate_online = false;                     // implies rotate
  std::optional<double> max_accuracy_drop;        // points
  std::optional<double> max_perplexity_increase;  // percent
  std::optional<int64_t> max_weight_bytes;        // size budget
  // classification | language-model | fidelity | segmentation
  std::optional<std::string> task;
  std::vector<std::string> labels;  // "key=value"
};

// Sets the fields of `spec` that the flags name; INVALID_ARGUMENT naming
// the flag for a value it does not take.
absl::Status ApplyQuantizeFlags(const QuantizeFlags& flags, v1::JobSpec* spec);

}  // namespace quantd::client

#endif  // QUANTD_CLIENT_SPEC_FLAGS_H_
