// What quantctl's command groups share: the global flags, the action the
// parsed subcommand leaves for Main, and how a failure becomes output and an
// exit code. Each group (quantize_command.h, jobs_commands.h,
// transfer_commands.h) adds its subcommands to the CLI11 app with this.
#ifndef QUANTD_CLIENT_COMMAND_CONTEXT_H_
#define QUANTD_CLIENT_COMMAND_CONTEXT_H_

#include <CLI/CLI.hpp>
#include <functional>
#include <memory>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "client/client.h"
#include "google/protobuf/message.h"
#include "quantd/v1/service.pb.h"

namespace quantd::client {

struct GlobalOptions {
  std::string server = "127.0.0.1:50051";
  std::string token;
  std::string tls_ca;
  bool json = false;
};

struct CommandContext {
  GlobalOptions global;
  // Set when a subcommand has been parsed; Main runs it after app.parse()
  // returns, so flags given after the subcommand (global ones fall through)
  // are in place and a parse error runs nothing. Answers the exit code.
  std::function<int()> run;
};

// --server, --token, --tls-ca and --json on the top-level app.
void AddGlobalOptions(CLI::App* app, GlobalOptions* global);

// Makes `action` what Main runs when `command` is the parsed subcommand.
// `command` keeps `action` as long as the app lives, so the values its
// options write into can live in a shared_ptr that `action` captures.
void OnParsed(CLI::App* command, CommandContext* context,
              std::function<int()> action);

// Every subcommand's --help ends with the global flags (they may follow the
// subcommand) and the exit codes.
std::string SubcommandFooter();

// A failed call: the message on stderr, the exit code from its status.
int Fail(const absl::Status& s, const std::string& what = "");

absl::StatusOr<std::unique_ptr<Client>> Connect(const GlobalOptions& global);

// Pretty-printed protobuf JSON on stdout; `one_line` for JSON lines.
void PrintJson(const google::protobuf::Message& m, bool one_line = false);

// SUCCEEDED, not JOB_STATE_SUCCEEDED.
std::string StateName(v1::JobState s);

// "abc" and "jobs/abc" both name the job "jobs/abc".
std::string JobName(const std::string& name);

}  // namespace quantd::client

#endif  // QUANTD_CLIENT_COMMAND_CONTEXT_H_
