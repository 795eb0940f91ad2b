// quantctl: the command-line client of quantd serve, built on client.h.
// Each command group adds its subcommands to the app; the one parsed runs.
#include <CLI/CLI.hpp>
#include <string>

#include "absl/strings/str_cat.h"
#include "client/command_context.h"
#include "client/exit_codes.h"
#include "client/jobs_commands.h"
#include "client/quantize_command.h"
#include "client/transfer_commands.h"

#ifndef QUANTD_VERSION
#define QUANTD_VERSION "dev"
#endif

namespace quantd::client {
namespace {

int Main(int argc, char** argv) {
  CommandContext context;
  CLI::App app{
      "quantctl: the client of quantd serve. Uploads models and datasets "
      "(skipping what the server has), runs quantization jobs, follows "
      "them, and downloads the quantized model and its report."};
  app.name("quantctl");
  app.set_version_flag("--version", std::string("quantctl ") + QUANTD_VERSION);
  app.require_subcommand(1);
  app.fallthrough();
  app.footer(absl::StrCat(
      "Environment: QUANTD_SERVER and QUANTD_TOKEN stand in for --server "
      "and --token.\n\n",
      ExitCodesHelp()));
  AddGlobalOptions(&app, &context.global);
  AddQuantizeCommand(&app, &context);
  AddJobsCommands(&app, &context);
  AddTransferCommands(&app, &context);

  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForAllHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForVersion& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    // Prints the parse error; quantctl's exit code for a bad request
    // replaces CLI11's own.
    app.exit(e);
    return kExitBadRequest;
  }
  return context.run ? context.run() : kExitOk;
}

}  // namespace
}  // namespace quantd::client

int main(int argc, char** argv) { return quantd::client::Main(argc, argv); }
