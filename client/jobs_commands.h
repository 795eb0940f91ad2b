// quantctl jobs list, get, watch, cancel and delete.
#ifndef QUANTD_CLIENT_JOBS_COMMANDS_H_
#define QUANTD_CLIENT_JOBS_COMMANDS_H_

#include <CLI/CLI.hpp>

#include "client/command_context.h"

namespace quantd::client {

// Adds `jobs` and its subcommands to `app`.
void AddJobsCommands(CLI::App* app, CommandContext* context);

}  // namespace quantd::client

#endif  // QUANTD_CLIENT_JOBS_COMMANDS_H_
