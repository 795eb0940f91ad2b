// `quantd serve`: the gRPC service over the blob store, job store and
// scheduler (serve_flags.h declares its flags).
#ifndef QUANTD_SERVER_SERVE_COMMAND_H_
#define QUANTD_SERVER_SERVE_COMMAND_H_

#include "server/serve_flags.h"

namespace quantd {

// Serves until SIGTERM or SIGINT, then drains; returns the process exit
// code. `flags` went through ResolveServeFlags (AddServeCommand's parse).
int ServeCommand(const ServeFlags& flags);

}  // namespace quantd

#endif  // QUANTD_SERVER_SERVE_COMMAND_H_
