#include "server/s3_client.h"

#include <stdlib.h>

#include <cstdlib>
#include <fstream>
#include <random>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "server/s3_test_server.h"
#include "util/sha256.h"

namespace quantd {
namespace {

using ::testing::HasSubstr;

class S3ClientTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    absl::StatusOr<std::unique_ptr<S3TestServer>> s = S3TestServer::Start(
        {"AK:SK", "OTHERKEY:OTHERSECRET:other"}, {"quantd", "other"});
    ASSERT_TRUE(s.ok()) << s.status();
    server_ = s->release();
  }
  static void TearDownTestSuite() { delete server_; }

  void SetUp() override {
    ASSERT_NE(server_, nullptr);
    char tmpl[] = "/tmp/quantd_s3c_XXXXXX";
    dir_ = mkdtemp(tmpl);
  }
  void TearDown() override {
    std::system(absl::StrCat("rm -rf '", dir_, "'").c_str());
  }

  std::unique_ptr<S3Client> Client(S3Config config) {
    absl::StatusOr<std::unique_ptr<S3Client>> c = S3Client::Create(config);
    EXPECT_TRUE(c.ok()) << c.status();
    return c.ok() ? std::move(*c) : nullptr;
  }
  std::unique_ptr<S3Client> Client() {
    return Client(server_->Config("quantd", "AK", "SK"));
  }

  absl::StatusOr<std::string> GetAll(S3Client& c, const std::string& key) {
    std::string out;
    absl::Status s = c.Get(key, [&](absl::string_view b) {
      out.append(b.data(), b.size());
      return absl::OkStatus();
    });
    if (!s.ok()) return s;
    return out;
  }

  std::string WriteFile(const std::string& bytes) {
    const std::string path = absl::StrCat(dir_, "/f", files_++);
    std::ofstream(path, std::ios::binary) << bytes;
    return path;
  }

  static std::string RandomBytes(size_t n) {
    std::mt19937 rng(7);
    std::string s(n, '\0');
    for (char& c : s) c = static_cast<char>(rng());
    return s;
  }

  static S3TestServer* server_;
  std::string dir_;
  int files_ = 0;
};

S3TestServer* S3ClientTest::server_ = nullptr;

TEST_F(S3ClientTest, PutGetSizeDelete) {
  std::unique_ptr<S3Client> c = Client();
  ASSERT_TRUE(c->PutBytes("a/one", "hello object storage").ok());
  EXPECT_EQ(*GetAll(*c, "a/one"), "hello object storage");
  EXPECT_EQ(*c->Size("a/one"), 20);
  ASSERT_TRUE(c->Delete("a/one").ok());
  EXPECT_TRUE(absl::IsNotFound(c->Size("a/one").status()));
  EXPECT_TRUE(absl::IsNotFound(GetAll(*c, "a/one").status()));
  EXPECT_TRUE(c->Delete("a/one").ok()) << "deleting twice is not an error";
}

TEST_F(S3ClientTest, PutFileInOnePieceAndInParts) {
  S3Config config = server_->Config("quantd", "AK", "SK");
  config.part_size = 5 << 20;
  config.multipart_threshold = 5 << 20;
  std::unique_ptr<S3Client> c = Client(config);
  for (const size_t n : {size_t{0}, size_t{1000}, size_t{(12 << 20) + 17}}) {
    const std::string bytes = RandomBytes(n);
    const std::string path = WriteFile(bytes);
    const std::string key = absl::StrCat("files/", n);
    ASSERT_TRUE(c->PutFile(key, path, Sha256Hex(bytes), n).ok()) << n;
    absl::StatusOr<std::string> back = GetAll(*c, key);
    ASSERT_TRUE(back.ok()) << back.status();
    EXPECT_EQ(back->size(), n);
    EXPECT_TRUE(*back == bytes) << n;
    EXPECT_EQ(*c->Size(key), static_cast<int64_t>(n));
  }
}

TEST_F(S3ClientTest, ThePrefixIsPartOfEveryKey) {
  std::unique_ptr<S3Client> prefixed =
      Client(server_->Config("quantd", "AK", "SK", "team/x/"));
  ASSERT_TRUE(prefixed->PutBytes("k", "v").ok());
  EXPECT_EQ(*GetAll(*Client(), "team/x/k"), "v");
  EXPECT_TRUE(absl::IsNotFound(Client()->Size("k").status()));
}

TEST_F(S3ClientTest, TheServerChecksTheDeclaredDigest) {
  std::unique_ptr<S3Client> c = Client();
  const std::string path = WriteFile("real bytes");
  const absl::Status s = c->PutFile("bad", path, Sha256Hex("other"), 10);
  EXPECT_TRUE(absl::IsDataLoss(s)) << s;
  EXPECT_TRUE(absl::IsNotFound(c->Size("bad").status()));
}

TEST_F(S3ClientTest, AFailedMultipartUploadLeavesNoObject) {
  S3Config config = server_->Config("quantd", "AK", "SK");
  config.part_size = 5 << 20;
  config.multipart_threshold = 5 << 20;
  std::unique_ptr<S3Client> c = Client(config);
  const std::string bytes = RandomBytes(6 << 20);
  const std::string path = WriteFile(bytes);
  // Declared longer than the file: the second part cannot be read.
  const absl::Status s =
      c->PutFile("partial", path, Sha256Hex(bytes), (11 << 20));
  EXPECT_TRUE(absl::IsDataLoss(s)) << s;
  EXPECT_TRUE(absl::IsNotFound(c->Size("partial").status()));
}

TEST_F(S3ClientTest, WrongCredentialsAreRefusedWithAHint) {
  std::unique_ptr<S3Client> wrong_secret =
      Client(server_->Config("quantd", "AK", "not-the-secret"));
  absl::Status s = wrong_secret->PutBytes("x", "y");
  EXPECT_TRUE(absl::IsPermissionDenied(s)) << s;
  EXPECT_THAT(s.message(), HasSubstr("SignatureDoesNotMatch"));
  EXPECT_THAT(s.message(), HasSubstr("check the credentials"));
  std::unique_ptr<S3Client> other_bucket_key =
      Client(server_->Config("quantd", "OTHERKEY", "OTHERSECRET"));
  s = other_bucket_key->PutBytes("x", "y");
  EXPECT_TRUE(absl::IsPermissionDenied(s)) << s;
  EXPECT_THAT(s.message(), HasSubstr("AccessDenied"));
  std::unique_ptr<S3Client> own_bucket =
      Client(server_->Config("other", "OTHERKEY", "OTHERSECRET"));
  EXPECT_TRUE(own_bucket->PutBytes("x", "y").ok());
}

TEST_F(S3ClientTest, ASinkErrorStopsTheDownload) {
  std::unique_ptr<S3Client> c = Client();
  ASSERT_TRUE(c->PutBytes("big", RandomBytes(3 << 20)).ok());
  int calls = 0;
  const absl::Status s = c->Get("big", [&](absl::string_view) {
    ++calls;
    return absl::ResourceExhaustedError("disk full");
  });
  EXPECT_TRUE(absl::IsResourceExhausted(s)) << s;
  EXPECT_EQ(calls, 1) << "a failed GET that delivered bytes is not retried";
}

TEST_F(S3ClientTest, AnUnreachableEndpointIsUnavailable) {
  S3Config config = server_->Config("quantd", "AK", "SK");
  config.endpoint = "http://127.0.0.1:1";  // nothing listens on port 1
  const absl::Status s = Client(config)->PutBytes("x", "y");
  EXPECT_TRUE(absl::IsUnavailable(s)) << s;
  EXPECT_THAT(s.message(), HasSubstr("object storage unreachable"));
}

}  // namespace
}  // namespace quantd
