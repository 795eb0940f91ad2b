// quantctl download and upload: one artifact or blob at a time, resumed
// after an interruption and checked by sha256.
#ifndef QUANTD_CLIENT_TRANSFER_COMMANDS_H_
#define QUANTD_CLIENT_TRANSFER_COMMANDS_H_

#include <CLI/CLI.hpp>
#include <string>

#include "absl/status/statusor.h"
#include "client/client.h"
#include "client/command_context.h"
#include "quantd/v1/service.pb.h"

namespace quantd::client {

// Adds `download` and `upload` to `app`.
void AddTransferCommands(CLI::App* app, CommandContext* context);

// Uploads one file and says on stderr what happened (uploaded, resumed or
// skipped because the server has it); answers its sha256 and, when `blob`
// is not null, fills it.
absl::StatusOr<std::string> UploadAndSay(Client* client,
                                         const std::string& path,
                                         v1::BlobKind kind,
                                         v1::Blob* blob = nullptr);

}  // namespace quantd::client

#endif  // QUANTD_CLIENT_TRANSFER_COMMANDS_H_
