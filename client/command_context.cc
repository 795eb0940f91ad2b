#include "client/command_context.h"

#include <cstdio>
#include <iostream>
#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "client/exit_codes.h"
#include "google/protobuf/util/json_util.h"

namespace quantd::client {
namespace {

constexpr char kGlobalFlags[] =
    R"(Global flags (before or after the subcommand):
  --server HOST:PORT  quantd address (default 127.0.0.1:50051, env QUANTD_SERVER)
  --token TOKEN       bearer token (env QUANTD_TOKEN)
  --tls-ca FILE       PEM root certificates: TLS, server verified with them
  --json              machine-readable output (protobuf JSON; events as JSON lines)

)";

std::string Json(const google::protobuf::Message& m, bool one_line) {
  std::string out;
  google::protobuf::util::JsonPrintOptions options;
  options.add_whitespace = !one_line;
  if (auto s = google::protobuf::util::MessageToJsonString(m, &out, options);
      !s.ok()) {
    // Only a message with invalid UTF-8 strings gets here; say so rather
    // than print nothing.
    std::fprintf(stderr, "quantctl: cannot print a %s as JSON: %s\n",
                 m.GetTypeName().c_str(), s.ToString().c_str());
    return "{}";
  }
  if (!one_line && !out.empty() && out.back() == '\n') out.pop_back();
  return out;
}

}  // namespace

void AddGlobalOptions(CLI::App* app, GlobalOptions* global) {
  app->add_option("--server", global->server, "quantd address, HOST:PORT")
      ->envname("QUANTD_SERVER")
      ->capture_default_str();
  app->add_option("--token", global->token,
                  "bearer token (the server's --tokens-file maps it to a "
                  "tenant)")
      ->envname("QUANTD_TOKEN");
  app->add_option("--tls-ca", global->tls_ca,
                  "PEM root certificates: connect with TLS and verify the "
                  "server with them (default: plaintext)")
      ->check(CLI::ExistingFile);
  app->add_flag("--json", global->json,
                "machine-readable output: responses as protobuf JSON, events "
                "as JSON lines (quantize: its events, then the job, one JSON "
                "line each)");
}

void OnParsed(CLI::App* command, CommandContext* context,
              std::function<int()> action) {
  command->callback(
      [context, action = std::move(action)] { context->run = action; });
}

std::string SubcommandFooter() {
  return absl::StrCat(kGlobalFlags, ExitCodesHelp());
}

int Fail(const absl::Status& s, const std::string& what) {
  std::fprintf(stderr, "quantctl: %s%s%s (%s)\n", what.c_str(),
               what.empty() ? "" : ": ", std::string(s.message()).c_str(),
               absl::StatusCodeToString(s.code()).c_str());
  return ExitCodeFor(s.code());
}

absl::StatusOr<std::unique_ptr<Client>> Connect(const GlobalOptions& global) {
  ClientOptions o;
  o.address = global.server;
  o.token = global.token;
  o.tls_ca_file = global.tls_ca;
  return Client::Connect(o);
}

void PrintJson(const google::protobuf::Message& m, bool one_line) {
  std::cout << Json(m, one_line) << std::endl;
}

std::string StateName(v1::JobState s) {
  std::string n = v1::JobState_Name(s);
  if (absl::StartsWith(n, "JOB_STATE_")) n = n.substr(10);
  return n;
}

std::string JobName(const std::string& name) {
  return absl::StartsWith(name, "jobs/") ? name : "jobs/" + name;
}

}  // namespace quantd::client
