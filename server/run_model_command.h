// `quantd run-model`: loads a model, runs it in fp32 and int8 on a data file
// and prints outputs, accuracy of int8 against fp32, and timings.
#ifndef QUANTD_SERVER_RUN_MODEL_COMMAND_H_
#define QUANTD_SERVER_RUN_MODEL_COMMAND_H_

#include <string>
#include <vector>

namespace quantd {

// Returns the process exit code.
int RunModelCommand(const std::vector<std::string>& args);

}  // namespace quantd

#endif  // QUANTD_SERVER_RUN_MODEL_COMMAND_H_
