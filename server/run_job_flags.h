// The flags of `quantd run-job`: their values, their CLI11 declaration and
// help.
#ifndef QUANTD_SERVER_RUN_JOB_FLAGS_H_
#define QUANTD_SERVER_RUN_JOB_FLAGS_H_

#include <string>

#include "CLI/CLI.hpp"
#include "absl/status/status.h"

namespace quantd {

struct RunJobFlags {
  std::string spec_path;  // required
  std::string out_dir;    // required
  bool quiet = false;
  std::string push_gateway;  // HOST:PORT; "": no push
  std::string push_job = "quantd-batch";
};

// Declares the `run-job` command and its flags on `app`; parsing fills
// `*flags` and ends with CheckRunJobFlags.
CLI::App* AddRunJobCommand(CLI::App& app, RunJobFlags* flags);

// InvalidArgument unless both --spec and --out were given.
absl::Status CheckRunJobFlags(const RunJobFlags& flags);

}  // namespace quantd

#endif  // QUANTD_SERVER_RUN_JOB_FLAGS_H_
