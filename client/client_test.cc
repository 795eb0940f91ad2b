// The client library's pure pieces; the calls themselves run against a real
// server in tests/service/quantctl_test.sh.
#include "client/client.h"

#include <fstream>
#include <string>

#include "gtest/gtest.h"

namespace quantd::client {
namespace {

std::string WriteTemp(const std::string& name, const std::string& bytes) {
  const std::string path = ::testing::TempDir() + "/" + name;
  std::ofstream(path, std::ios::binary) << bytes;
  return path;
}

TEST(Sha256OfFile, KnownDigests) {
  EXPECT_EQ(*Sha256OfFile(WriteTemp("empty", "")),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  EXPECT_EQ(*Sha256OfFile(WriteTemp("abc", "abc")),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
}

TEST(Sha256OfFile, SpansSeveralReadBlocks) {
  // 2.5 MiB of 'a': crosses the 1 MiB read blocks.
  const std::string path = WriteTemp("big", std::string((5 << 20) / 2, 'a'));
  absl::StatusOr<std::string> d = Sha256OfFile(path);
  ASSERT_TRUE(d.ok());
  EXPECT_EQ(d->size(), 64u);
  // Recomputing gives the same digest; a one-byte change does not.
  EXPECT_EQ(*Sha256OfFile(path), *d);
  std::string bytes((5 << 20) / 2, 'a');
  bytes.back() = 'b';
  EXPECT_NE(*Sha256OfFile(WriteTemp("big2", bytes)), *d);
}

TEST(Sha256OfFile, MissingFileIsNotFound) {
  EXPECT_EQ(Sha256OfFile("/nonexistent/x").status().code(),
            absl::StatusCode::kNotFound);
}

TEST(UploadIdFor, IsAValidUploadIdAndStable) {
  const std::string d(64, 'a');
  EXPECT_EQ(UploadIdFor(d), d);
  EXPECT_LE(UploadIdFor(d).size(), 64u);
}

TEST(FromGrpc, KeepsCodeAndMessage) {
  EXPECT_TRUE(FromGrpc(grpc::Status::OK).ok());
  absl::Status s =
      FromGrpc(grpc::Status(grpc::StatusCode::RESOURCE_EXHAUSTED, "full"));
  EXPECT_EQ(s.code(), absl::StatusCode::kResourceExhausted);
  EXPECT_EQ(s.message(), "full");
  EXPECT_EQ(
      FromGrpc(grpc::Status(grpc::StatusCode::UNAUTHENTICATED, "")).code(),
      absl::StatusCode::kUnauthenticated);
}

TEST(IsTerminal, States) {
  EXPECT_TRUE(IsTerminal(v1::JOB_STATE_SUCCEEDED));
  EXPECT_TRUE(IsTerminal(v1::JOB_STATE_FAILED));
  EXPECT_TRUE(IsTerminal(v1::JOB_STATE_CANCELLED));
  EXPECT_FALSE(IsTerminal(v1::JOB_STATE_CANCELLING));
  EXPECT_FALSE(IsTerminal(v1::JOB_STATE_RUNNING));
  EXPECT_FALSE(IsTerminal(v1::JOB_STATE_QUEUED));
}

TEST(Client, ConnectNeedsAnAddressAndAReadableCa) {
  ClientOptions o;
  o.address = "";
  EXPECT_EQ(Client::Connect(o).status().code(),
            absl::StatusCode::kInvalidArgument);
  o.address = "127.0.0.1:1";
  o.tls_ca_file = "/nonexistent/ca.pem";
  EXPECT_EQ(Client::Connect(o).status().code(), absl::StatusCode::kNotFound);
}

TEST(Client, UnreachableServerIsUnavailable) {
  ClientOptions o;
  o.address = "127.0.0.1:1";  // nothing listens on port 1
  o.call_timeout = absl::Seconds(5);
  absl::StatusOr<std::unique_ptr<Client>> c = Client::Connect(o);
  ASSERT_TRUE(c.ok());
  EXPECT_EQ((*c)->GetJob("jobs/x").status().code(),
            absl::StatusCode::kUnavailable);
}

}  // namespace
}  // namespace quantd::client
