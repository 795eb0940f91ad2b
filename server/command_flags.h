// What quantd's commands (serve, run-job, run-model) share in declaring
// their flags with CLI11: the help layout, how integer flags are read, and
// how flag validation written with absl::Status ends a parse. One place, so
// that every command reads and explains its flags the same way.
#ifndef QUANTD_SERVER_COMMAND_FLAGS_H_
#define QUANTD_SERVER_COMMAND_FLAGS_H_

#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include "CLI/CLI.hpp"
#include "absl/status/status.h"
#include "absl/strings/string_view.h"

namespace quantd {

// The help layout of `quantd` and its commands: flag descriptions wrapped
// to 80 columns, and `description` (if not empty) atop the command's own
// --help in place of the one-line summary the parent's command list shows.
std::shared_ptr<CLI::Formatter> MakeHelpFormatter(std::string description);

// Adds the command `name` to `app`: `summary` is its entry in `quantd
// --help`, `description` heads its own --help and `footer` ends it.
CLI::App* AddCommand(CLI::App& app, const std::string& name,
                     const std::string& summary, std::string description,
                     const std::string& footer);

// Reads a flag's text into `*value`; an error's message is what the user
// sees.
using IntFlagParser =
    std::function<absl::Status(absl::string_view text, int64_t* value)>;

// The usual IntFlagParser: decimal digits only (absl::SimpleAtoi; CLI11's
// own conversion would read "010" as octal), within [min, max], else
// "<name> must be an integer >= <min>, got '<text>'" or "<name> must be at
// most <max>".
IntFlagParser IntAtLeast(std::string name, int64_t min,
                         int64_t max = INT64_MAX);

// Declares the integer flag `name` on `cmd`; `*value`'s initial content is
// the default the help shows.
CLI::Option* AddIntFlag(CLI::App& cmd, const std::string& name, int64_t* value,
                        IntFlagParser parse, const std::string& help);

// Ends the parse with `s`'s message if `s` is an error (a CLI::ParseError,
// which quantd reports as bad input: exit code 2). Validation is written
// with absl::Status; this is where it meets CLI11.
void ThrowIfError(const absl::Status& s);

}  // namespace quantd

#endif  // QUANTD_SERVER_COMMAND_FLAGS_H_
