// `quantd run-job --spec job.json --out DIR`: runs one job without a server
// (Kubernetes batch Jobs, CI pipelines) and writes the quantized model and
// the report into DIR.
#ifndef QUANTD_SERVER_RUN_JOB_COMMAND_H_
#define QUANTD_SERVER_RUN_JOB_COMMAND_H_

#include <string>
#include <vector>

namespace quantd {

// Returns the process exit code.
int RunJobCommand(const std::vector<std::string>& args);

}  // namespace quantd

#endif  // QUANTD_SERVER_RUN_JOB_COMMAND_H_
