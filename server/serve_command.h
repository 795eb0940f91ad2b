// `quantd serve`: the gRPC service over the blob store, job store and
// scheduler (see serve_command.cc's usage text for the flags).
#ifndef QUANTD_SERVER_SERVE_COMMAND_H_
#define QUANTD_SERVER_SERVE_COMMAND_H_

#include <string>
#include <vector>

namespace quantd {

int ServeCommand(const std::vector<std::string>& args);

}  // namespace quantd

#endif  // QUANTD_SERVER_SERVE_COMMAND_H_
