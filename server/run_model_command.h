// `quantd run-model`: loads a model, runs it in fp32 and int8 on a data file
// and prints outputs, accuracy of int8 against fp32, and timings
// (run_model_flags.h declares its flags).
#ifndef QUANTD_SERVER_RUN_MODEL_COMMAND_H_
#define QUANTD_SERVER_RUN_MODEL_COMMAND_H_

#include "server/run_model_flags.h"

namespace quantd {

// Returns the process exit code (server/exit_codes.h).
int RunModelCommand(const RunModelFlags& flags);

}  // namespace quantd

#endif  // QUANTD_SERVER_RUN_MODEL_COMMAND_H_
