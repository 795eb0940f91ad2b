// quantctl quantize: uploads a model and its data, runs a quantization job
// with a live progress line, prints the accuracy delta table and downloads
// the quantized model and its report.
#ifndef QUANTD_CLIENT_QUANTIZE_COMMAND_H_
#define QUANTD_CLIENT_QUANTIZE_COMMAND_H_

#include <CLI/CLI.hpp>

#include "client/command_context.h"

namespace quantd::client {

// Adds `quantize` to `app`.
void AddQuantizeCommand(CLI::App* app, CommandContext* context);

}  // namespace quantd::client

#endif  // QUANTD_CLIENT_QUANTIZE_COMMAND_H_
