// The flags of `quantd run-model`: their values, their CLI11 declaration
// and help.
#ifndef QUANTD_SERVER_RUN_MODEL_FLAGS_H_
#define QUANTD_SERVER_RUN_MODEL_FLAGS_H_

#include <cstdint>
#include <string>

#include "CLI/CLI.hpp"
#include "absl/status/status.h"
#include "engine/evaluation/model_run.h"

namespace quantd {

struct RunModelFlags {
  std::string model_path;  // required
  std::string data_path;   // required
  int64_t samples = ModelRunOptions().max_samples;
  int64_t repeats = ModelRunOptions().repeats;
  int64_t weight_only_bits = 0;  // --weight-only 4|8
  int64_t group_size = ModelRunOptions().weight_only_group_size;
  bool profile = false;  // --profile
};

// Declares the `run-model` command and its flags on `app`; parsing fills
// `*flags` and ends with CheckRunModelFlags.
CLI::App* AddRunModelCommand(CLI::App& app, RunModelFlags* flags);

// InvalidArgument unless both --model and --data were given.
absl::Status CheckRunModelFlags(const RunModelFlags& flags);

}  // namespace quantd

#endif  // QUANTD_SERVER_RUN_MODEL_FLAGS_H_
