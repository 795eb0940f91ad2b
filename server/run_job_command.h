// `quantd run-job --spec job.json --out DIR`: runs one job without a server
// (Kubernetes batch Jobs, CI pipelines) and writes the quantized model and
// the report into DIR (run_job_flags.h declares its flags).
#ifndef QUANTD_SERVER_RUN_JOB_COMMAND_H_
#define QUANTD_SERVER_RUN_JOB_COMMAND_H_

#include "server/run_job_flags.h"

namespace quantd {

// Returns the process exit code (server/exit_codes.h).
int RunJobCommand(const RunJobFlags& flags);

}  // namespace quantd

#endif  // QUANTD_SERVER_RUN_JOB_COMMAND_H_
