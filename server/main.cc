// quantd: the quantization service and its batch commands. Each command
// declares its flags in its own *_flags.cc; this file only parses the
// command line and runs the command it names.
#include <algorithm>
#include <cstdio>
#include <memory>
#include <string>
#include <vector>

#include "CLI/CLI.hpp"
#include "absl/strings/match.h"
#include "server/command_flags.h"
#include "server/exit_codes.h"
#include "server/run_job_command.h"
#include "server/run_model_command.h"
#include "server/serve_command.h"

namespace quantd {
namespace {

constexpr char kDescription[] = "quantd — quantizes ONNX models\n";
constexpr char kFooter[] =
    "Exit codes: 0 success, 2 bad input, 1 other failure.";
constexpr char kVersion[] = "quantd " QUANTD_VERSION;

// The arguments after the program name, in the reverse order CLI11's
// parse() takes. Two spellings keep the meaning they had before CLI11:
// "quantd help" is "quantd --help", and "--flag=" is an empty value
// ("--metrics-address=" turns /metrics off) where CLI11 2.1 would take the
// next argument as the value.
std::vector<std::string> ReversedArgs(int argc, char** argv) {
  std::vector<std::string> args;
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    if (i == 1 && arg == "help") {
      args.push_back("--help");
    } else if (absl::StartsWith(arg, "--") && absl::EndsWith(arg, "=")) {
      args.push_back(arg.substr(0, arg.size() - 1));
      args.push_back("");
    } else {
      args.push_back(arg);
    }
  }
  std::reverse(args.begin(), args.end());
  return args;
}

// Bad flags, for every command: one line naming the command, exit code 2.
int ReportParseError(const CLI::App& app, const CLI::ParseError& e) {
  std::string command = app.get_name();
  for (const CLI::App* sub : app.get_subcommands()) {
    command += " " + sub->get_name();
  }
  std::fprintf(stderr, "%s: %s (see %s --help)\n", command.c_str(), e.what(),
               command.c_str());
  return kExitBadInput;
}

// The command list, even when the parse selected a command (whose help
// app.help() would print).
std::string TopLevelHelp(const CLI::App& app) {
  return app.get_formatter()->make_help(&app, app.get_name(),
                                        CLI::AppFormatMode::Normal);
}

int Main(int argc, char** argv) {
  CLI::App app(kDescription, "quantd");
  // Narrower than the commands' flag column: only command names go there.
  std::shared_ptr<CLI::Formatter> formatter = MakeHelpFormatter("");
  formatter->column_width(14);
  app.formatter(formatter);
  app.footer(kFooter);
  app.set_version_flag("--version", kVersion);
  app.require_subcommand(0, 1);
  // Words before a command are kept to be reported as an unknown command
  // (AddCommand turns this off within each command).
  app.allow_extras();
  ServeFlags serve;
  RunJobFlags run_job;
  RunModelFlags run_model;
  const CLI::App* serve_cmd = AddServeCommand(app, &serve);
  const CLI::App* run_job_cmd = AddRunJobCommand(app, &run_job);
  const CLI::App* run_model_cmd = AddRunModelCommand(app, &run_model);
  const CLI::App* version_cmd =
      AddCommand(app, "version", "print the version", "", "");

  try {
    app.parse(ReversedArgs(argc, argv));
  } catch (const CLI::Success& e) {  // --help, --version
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    return ReportParseError(app, e);
  }
  if (!app.remaining().empty()) {
    std::fprintf(stderr, "quantd: unknown command '%s'\n\n%s",
                 app.remaining().front().c_str(), TopLevelHelp(app).c_str());
    return kExitBadInput;
  }
  if (serve_cmd->parsed()) return ServeCommand(serve);
  if (run_job_cmd->parsed()) return RunJobCommand(run_job);
  if (run_model_cmd->parsed()) return RunModelCommand(run_model);
  if (version_cmd->parsed()) {
    std::printf("%s\n", kVersion);
    return kExitOk;
  }
  std::fputs(TopLevelHelp(app).c_str(), stderr);  // no command
  return kExitBadInput;
}

}  // namespace
}  // namespace quantd

int main(int argc, char** argv) { return quantd::Main(argc, argv); }
