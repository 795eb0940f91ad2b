// The flags of quantd's commands, parsed in-process the way main.cc parses
// them: defaults, the checks between flags, and the messages scripts see.
#include "server/command_flags.h"

#include <algorithm>
#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "server/run_job_flags.h"
#include "server/run_model_flags.h"
#include "server/serve_flags.h"

namespace quantd {
namespace {

using ::testing::HasSubstr;

// Parses `args` (after the program name) with CLI11; a parse error's
// message as InvalidArgument.
absl::Status Parse(CLI::App& app, std::vector<std::string> args) {
  std::reverse(args.begin(), args.end());
  try {
    app.parse(args);
  } catch (const CLI::ParseError& e) {
    return absl::InvalidArgumentError(e.what());
  }
  return absl::OkStatus();
}

TEST(ServeFlagsTest, DefaultsServeOneTenantOnLoopback) {
  CLI::App app;
  ServeFlags flags;
  AddServeCommand(app, &flags);
  ASSERT_TRUE(Parse(app, {"serve"}).ok());
  EXPECT_EQ(flags.port, 50051);
  EXPECT_EQ(flags.listen_address, "127.0.0.1");
  EXPECT_EQ(flags.metrics_address, "127.0.0.1:9464");  // gRPC's host
  EXPECT_EQ(flags.data_dir, "quantd-data");
  EXPECT_EQ(flags.workers, 1);
  EXPECT_GE(flags.threads_per_job, 1);  // cores / workers
  EXPECT_EQ(flags.max_upload_bytes, 4294967296);
  EXPECT_EQ(flags.max_tenant_storage_bytes, 53687091200);
  EXPECT_EQ(flags.max_message_bytes, 8388608);
  EXPECT_EQ(flags.grace_seconds, 30);
}

TEST(ServeFlagsTest, TokensOpenAllAddresses) {
  CLI::App app;
  ServeFlags flags;
  AddServeCommand(app, &flags);
  ASSERT_TRUE(Parse(app, {"serve", "--tokens-file=tokens"}).ok());
  EXPECT_EQ(flags.listen_address, "0.0.0.0");
  EXPECT_EQ(flags.metrics_address, "0.0.0.0:9464");
}

TEST(ServeFlagsTest, MetricsFollowTheGrpcHostUnlessGiven) {
  const std::vector<std::pair<std::vector<std::string>, std::string>> cases = {
      {{"serve", "--listen-address=[::1]"}, "[::1]:9464"},
      {{"serve", "--metrics-address=:9100"}, "127.0.0.1:9100"},
      {{"serve", "--metrics-address=10.0.0.5:9100", "--tokens-file=t"},
       "10.0.0.5:9100"},
      {{"serve", "--metrics-address", ""}, ""}};
  for (const auto& [args, want] : cases) {
    CLI::App app;
    ServeFlags flags;
    AddServeCommand(app, &flags);
    ASSERT_TRUE(Parse(app, args).ok()) << args.back();
    EXPECT_EQ(flags.metrics_address, want) << args.back();
  }
}

TEST(ServeFlagsTest, RefusesUnsafeOrIncompleteCombinations) {
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"--listen-address=0.0.0.0",
       "without --tokens-file quantd serves one tenant on loopback only"},
      {"--tls-client-ca=ca.pem",
       "--tls-client-ca needs --tls-cert and --tls-key"}};
  for (const auto& [flag, message] : cases) {
    CLI::App app;
    ServeFlags flags;
    AddServeCommand(app, &flags);
    EXPECT_THAT(Parse(app, {"serve", flag}).message(), HasSubstr(message));
  }
}

TEST(ServeFlagsTest, IntegersAreDecimalAndCheckedWithTheirOwnMessages) {
  const std::vector<std::pair<std::vector<std::string>, std::string>> cases = {
      {{"--port", "abc"}, "--port must be an integer >= 0, got 'abc'"},
      {{"--port", "70000"}, "--port must be at most 65535"},
      {{"--port=-1"}, "--port must be an integer >= 0, got '-1'"},
      {{"--workers", "0"}, "--workers must be an integer >= 1, got '0'"},
      {{"--max-message-bytes", "100"},
       "--max-message-bytes must be an integer >= 4096, got '100'"},
      {{"--receive-window-bytes", "1024"},
       "--receive-window-bytes must be an integer >= 65535, got '1024'"},
      {{"--grace-seconds", "1.5"},
       "--grace-seconds must be an integer >= 0, got '1.5'"}};
  for (const auto& [args, message] : cases) {
    CLI::App app;
    ServeFlags flags;
    AddServeCommand(app, &flags);
    std::vector<std::string> command_line = {"serve"};
    command_line.insert(command_line.end(), args.begin(), args.end());
    EXPECT_EQ(Parse(app, command_line).message(), message);
  }
  CLI::App app;
  ServeFlags flags;
  AddServeCommand(app, &flags);
  ASSERT_TRUE(Parse(app, {"serve", "--port", "010"}).ok());
  EXPECT_EQ(flags.port, 10);  // not octal
}

// tests/service/serve_lib.sh appends overrides to its default flags.
TEST(ServeFlagsTest, ARepeatedFlagTakesItsLastValue) {
  CLI::App app;
  ServeFlags flags;
  AddServeCommand(app, &flags);
  ASSERT_TRUE(Parse(app, {"serve", "--port", "0", "--metrics-address", "",
                          "--port", "7000", "--metrics-address", "[::1]:0"})
                  .ok());
  EXPECT_EQ(flags.port, 7000);
  EXPECT_EQ(flags.metrics_address, "[::1]:0");
}

TEST(ServeFlagsTest, RefusesUnknownFlagsAndArguments) {
  for (const char* bad : {"--bogus", "extra"}) {
    CLI::App app;
    ServeFlags flags;
    AddServeCommand(app, &flags);
    EXPECT_THAT(Parse(app, {"serve", bad}).message(), HasSubstr(bad));
  }
}

TEST(RunJobFlagsTest, NeedsSpecAndOut) {
  CLI::App app;
  RunJobFlags flags;
  AddRunJobCommand(app, &flags);
  EXPECT_EQ(Parse(app, {"run-job", "--spec", "job.json"}).message(),
            "--spec and --out are required");
}

TEST(RunJobFlagsTest, ReadsEveryFlag) {
  CLI::App app;
  RunJobFlags flags;
  AddRunJobCommand(app, &flags);
  ASSERT_TRUE(Parse(app, {"run-job", "--spec", "job.json", "--out", "out",
                          "--quiet", "--push-gateway", "pgw:9091"})
                  .ok());
  EXPECT_EQ(flags.spec_path, "job.json");
  EXPECT_EQ(flags.out_dir, "out");
  EXPECT_TRUE(flags.quiet);
  EXPECT_EQ(flags.push_gateway, "pgw:9091");
  EXPECT_EQ(flags.push_job, "quantd-batch");
}

TEST(RunModelFlagsTest, DefaultsAndChecks) {
  {
    CLI::App app;
    RunModelFlags flags;
    AddRunModelCommand(app, &flags);
    ASSERT_TRUE(Parse(app, {"run-model", "--model", "m", "--data", "d"}).ok());
    EXPECT_EQ(flags.samples, 1024);
    EXPECT_EQ(flags.repeats, 10);
  }
  for (const char* bad : {"-3", "0", "abc", "1000001"}) {
    CLI::App app;
    RunModelFlags flags;
    AddRunModelCommand(app, &flags);
    EXPECT_EQ(Parse(app, {"run-model", "--model", "m", "--data", "d",
                          "--samples", bad})
                  .message(),
              "--samples takes a number >= 1")
        << bad;
  }
  CLI::App app;
  RunModelFlags flags;
  AddRunModelCommand(app, &flags);
  EXPECT_EQ(Parse(app, {"run-model", "--model", "m"}).message(),
            "--model and --data are required");
}

// Every flag of every command is explained in its --help.
TEST(CommandFlagsTest, HelpDocumentsEveryFlag) {
  CLI::App app;
  ServeFlags serve;
  RunJobFlags run_job;
  RunModelFlags run_model;
  for (CLI::App* cmd :
       {AddServeCommand(app, &serve), AddRunJobCommand(app, &run_job),
        AddRunModelCommand(app, &run_model)}) {
    const std::string help = cmd->help();
    for (const CLI::Option* option : cmd->get_options()) {
      const std::string name = option->get_name(false, true);
      EXPECT_THAT(help, HasSubstr(name)) << cmd->get_name();
      EXPECT_FALSE(option->get_description().empty()) << name;
    }
  }
}

}  // namespace
}  // namespace quantd
