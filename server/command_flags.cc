#include "server/command_flags.h"

#include <sstream>
#include <utility>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"

namespace quantd {
namespace {

constexpr size_t kHelpWidth = 80;
// Wide enough for most "--flag NAME=DEFAULT" columns; longer ones put their
// description on the next line.
constexpr size_t kFlagColumn = 34;

// Word-wraps `text` to `width` columns, keeping its own line breaks. CLI11
// indents each line of a description but does not wrap them.
std::string Wrap(absl::string_view text, size_t width) {
  std::string out;
  bool first_line = true;
  for (absl::string_view line : absl::StrSplit(text, '\n')) {
    if (!first_line) out += '\n';
    first_line = false;
    size_t column = 0;
    for (absl::string_view word :
         absl::StrSplit(line, ' ', absl::SkipEmpty())) {
      if (column > 0 && column + 1 + word.size() > width) {
        out += '\n';
        column = 0;
      } else if (column > 0) {
        out += ' ';
        ++column;
      }
      absl::StrAppend(&out, word);
      column += word.size();
    }
  }
  return out;
}

class HelpFormatter : public CLI::Formatter {
 public:
  explicit HelpFormatter(std::string description)
      : description_(std::move(description)) {
    column_width(kFlagColumn);
    label("SUBCOMMAND", "COMMAND");
  }

  std::string make_description(const CLI::App* app) const override {
    if (description_.empty()) return CLI::Formatter::make_description(app);
    return description_ + "\n";
  }

  std::string make_option_desc(const CLI::Option* opt) const override {
    return Wrap(opt->get_description(), kHelpWidth - get_column_width());
  }

  std::string make_subcommand(const CLI::App* sub) const override {
    std::stringstream out;
    CLI::detail::format_help(
        out, sub->get_display_name(),
        Wrap(sub->get_description(), kHelpWidth - get_column_width()),
        get_column_width());
    return out.str();
  }

 private:
  const std::string description_;
};

}  // namespace

std::shared_ptr<CLI::Formatter> MakeHelpFormatter(std::string description) {
  return std::make_shared<HelpFormatter>(std::move(description));
}

CLI::App* AddCommand(CLI::App& app, const std::string& name,
                     const std::string& summary, std::string description,
                     const std::string& footer) {
  CLI::App* cmd = app.add_subcommand(name, summary);
  cmd->group("Commands");
  cmd->formatter(MakeHelpFormatter(std::move(description)));
  cmd->footer(footer);
  // Inherited from `app`, which lets unknown words through to report them
  // as unknown commands; within a command they are errors.
  cmd->allow_extras(false);
  // Scripts append overrides to a default command line
  // (tests/service/serve_lib.sh): a repeated flag takes its last value.
  cmd->option_defaults()->multi_option_policy(CLI::MultiOptionPolicy::TakeLast);
  return cmd;
}

IntFlagParser IntAtLeast(std::string name, int64_t min, int64_t max) {
  return [name = std::move(name), min, max](absl::string_view text,
                                            int64_t* value) {
    if (!absl::SimpleAtoi(text, value) || *value < min) {
      return absl::InvalidArgumentError(absl::StrCat(
          name, " must be an integer >= ", min, ", got '", text, "'"));
    }
    if (*value > max) {
      return absl::InvalidArgumentError(
          absl::StrCat(name, " must be at most ", max));
    }
    return absl::OkStatus();
  };
}

CLI::Option* AddIntFlag(CLI::App& cmd, const std::string& name, int64_t* value,
                        IntFlagParser parse, const std::string& help) {
  const std::string default_text = absl::StrCat(*value);
  return cmd
      .add_option(
          name,
          [value, parse = std::move(parse)](const CLI::results_t& results) {
            ThrowIfError(parse(results.back(), value));
            return true;
          },
          help)
      ->type_name("N")
      ->default_str(default_text);
}

void ThrowIfError(const absl::Status& s) {
  if (!s.ok()) throw CLI::ValidationError(std::string(s.message()));
}

}  // namespace quantd
