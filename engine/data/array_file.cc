#include "engine/data/array_file.h"

#include <zip.h>

#include <cstdio>
#include <cstring>
#include <fstream>

#include "absl/status/status.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "util/status_macros.h"

namespace quantd {
namespace {

// Sequential byte source for one array: a zip member or a plain file.
class ByteSource {
 public:
  virtual ~ByteSource() = default;
  // Reads exactly n bytes or fails.
  virtual absl::Status Read(void* dst, int64_t n) = 0;
  virtual absl::Status Restart() = 0;
  virtual int64_t size() const = 0;  // total bytes of the member/file
};

class ZipMemberSource : public ByteSource {
 public:
  ZipMemberSource(zip_t* archive, zip_uint64_t index, int64_t size,
                  std::string what)
      : archive_(archive), index_(index), size_(size), what_(std::move(what)) {}
  ~ZipMemberSource() override {
    if (file_ != nullptr) zip_fclose(file_);
  }
  absl::Status Restart() override {
    if (file_ != nullptr) zip_fclose(file_);
    file_ = zip_fopen_index(archive_, index_, 0);
    if (file_ == nullptr) {
      return absl::InvalidArgumentError(
          absl::StrCat("cannot open ", what_, ": ", zip_strerror(archive_)));
    }
    return absl::OkStatus();
  }
  absl::Status Read(void* dst, int64_t n) override {
    char* p = static_cast<char*>(dst);
    while (n > 0) {
      zip_int64_t got = zip_fread(file_, p, static_cast<zip_uint64_t>(n));
      if (got <= 0) {
        return absl::DataLossError(absl::StrCat(
            what_, " is truncated or corrupt (",
            got < 0 ? zip_file_strerror(file_) : "unexpected end", ")"));
      }
      p += got;
      n -= got;
    }
    return absl::OkStatus();
  }
  int64_t size() const override { return size_; }

 private:
  zip_t* archive_;
  zip_uint64_t index_;
  int64_t size_;
  std::string what_;
  zip_file_t* file_ = nullptr;
};

class PlainFileSource : public ByteSource {
 public:
  PlainFileSource(std::string path, int64_t size)
      : path_(std::move(path)), size_(size) {}
  ~PlainFileSource() override {
    if (f_ != nullptr) std::fclose(f_);
  }
  absl::Status Restart() override {
    if (f_ != nullptr) std::fclose(f_);
    f_ = std::fopen(path_.c_str(), "rb");
    if (f_ == nullptr) {
      return absl::NotFoundError(absl::StrCat("cannot open '", path_, "'"));
    }
    return absl::OkStatus();
  }
  absl::Status Read(void* dst, int64_t n) override {
    if (n > 0 && std::fread(dst, 1, n, f_) != static_cast<size_t>(n)) {
      return absl::DataLossError(absl::StrCat("'", path_, "' is truncated"));
    }
    return absl::OkStatus();
  }
  int64_t size() const override { return size_; }

 private:
  std::string path_;
  int64_t size_;
  FILE* f_ = nullptr;
};

class SourceStream : public ArrayStream {
 public:
  static absl::StatusOr<std::unique_ptr<ArrayStream>> Create(
      std::unique_ptr<ByteSource> source, const std::string& what) {
    QUANTD_RETURN_IF_ERROR(source->Restart());
    std::string prefix(12, '\0');
    int64_t have = 0, needed = 10;
    absl::StatusOr<NpyHeader> header;
    while (true) {
      if (needed > source->size()) {
        return absl::InvalidArgumentError(
            absl::StrCat(what, " is too short to be a .npy array"));
      }
      prefix.resize(needed);
      QUANTD_RETURN_IF_ERROR(source->Read(prefix.data() + have, needed - have));
      have = needed;
      header = ParseNpyHeader(prefix, &needed);
      if (header.ok()) break;
      if (header.status().code() != absl::StatusCode::kOutOfRange) {
        return absl::Status(
            header.status().code(),
            absl::StrCat(what, ": ", header.status().message()));
      }
    }
    const int64_t data_bytes =
        NumElements(header->shape) * header->disk_element_size();
    if (source->size() != header->header_bytes + data_bytes) {
      return absl::InvalidArgumentError(
          absl::StrCat(what, " declares shape ", ShapeToString(header->shape),
                       " (", data_bytes, " data bytes) but holds ",
                       source->size() - header->header_bytes));
    }
    auto stream = std::unique_ptr<SourceStream>(
        new SourceStream(std::move(source), *header, what));
    return std::unique_ptr<ArrayStream>(std::move(stream));
  }

  const NpyHeader& header() const override { return header_; }

  absl::StatusOr<Tensor> ReadRows(int64_t max_rows) override {
    Shape shape = header_.shape;
    if (shape.empty()) shape = {1};
    const int64_t total = shape[0];
    const int64_t n = std::max<int64_t>(0, std::min(max_rows, total - next_));
    shape[0] = n;
    Tensor out(header_.dtype, shape);
    const int64_t elements = out.num_elements();
    if (header_.stored_float64) {
      std::vector<double> buf(elements);
      QUANTD_RETURN_IF_ERROR(source_->Read(buf.data(), elements * 8));
      float* dst = out.mutable_data<float>();
      for (int64_t i = 0; i < elements; ++i)
        dst[i] = static_cast<float>(buf[i]);
    } else
      QUANTD_RETURN_IF_ERROR(
          source_->Read(out.mutable_raw_data(), out.byte_size()));
    next_ += n;
    if (header_.shape.empty() && n == 1) {
      return out.Reshaped({1});
    }
    return out;
  }

  absl::Status Rewind() override {
    next_ = 0;
    QUANTD_RETURN_IF_ERROR(source_->Restart());
    std::string skip(header_.header_bytes, '\0');
    return source_->Read(skip.data(), header_.header_bytes);
  }

 private:
  SourceStream(std::unique_ptr<ByteSource> source, NpyHeader header,
               std::string what)
      : source_(std::move(source)),
        header_(std::move(header)),
        what_(std::move(what)) {}

  std::unique_ptr<ByteSource> source_;
  NpyHeader header_;
  std::string what_;
  int64_t next_ = 0;
};

class NpzFile : public ArrayFile {
 public:
  NpzFile(zip_t* archive, std::string path)
      : archive_(archive), path_(std::move(path)) {}
  ~NpzFile() override { zip_discard(archive_); }

  absl::Status Index() {
    zip_int64_t n = zip_get_num_entries(archive_, 0);
    if (n > 100000) {
      return absl::InvalidArgumentError(
          absl::StrCat("'", path_, "' has too many members (", n, ")"));
    }
    for (zip_int64_t i = 0; i < n; ++i) {
      zip_stat_t st;
      zip_stat_init(&st);
      if (zip_stat_index(archive_, i, 0, &st) != 0 ||
          !(st.valid & ZIP_STAT_NAME) || !(st.valid & ZIP_STAT_SIZE)) {
        continue;
      }
      absl::string_view name = st.name;
      if (!absl::ConsumeSuffix(&name, ".npy")) continue;
      members_.push_back({std::string(name), static_cast<zip_uint64_t>(i),
                          static_cast<int64_t>(st.size)});
    }
    if (members_.empty()) {
      return absl::InvalidArgumentError(
          absl::StrCat("'", path_, "' holds no .npy arrays"));
    }
    return absl::OkStatus();
  }

  std::vector<std::string> names() const override {
    std::vector<std::string> out;
    for (const Member& m : members_) out.push_back(m.name);
    return out;
  }

  absl::StatusOr<std::unique_ptr<ArrayStream>> OpenStream(
      const std::string& name) override {
    for (const Member& m : members_) {
      if (m.name != name) continue;
      std::string what = absl::StrCat("array '", name, "' in '", path_, "'");
      return SourceStream::Create(
          std::make_unique<ZipMemberSource>(archive_, m.index, m.size, what),
          what);
    }
    return absl::NotFoundError(
        absl::StrCat("'", path_, "' has no array named '", name, "'"));
  }

 private:
  struct Member {
    std::string name;
    zip_uint64_t index;
    int64_t size;
  };
  zip_t* archive_;
  std::string path_;
  std::vector<Member> members_;
};

class NpyFile : public ArrayFile {
 public:
  NpyFile(std::string path, int64_t size)
      : path_(std::move(path)), size_(size) {}
  std::vector<std::string> names() const override { return {""}; }
  absl::StatusOr<std::unique_ptr<ArrayStream>> OpenStream(
      const std::string& name) override {
    if (!name.empty()) {
      return absl::NotFoundError(absl::StrCat(
          "'", path_, "' is a single .npy array; it has no array named '", name,
          "'"));
    }
    return SourceStream::Create(std::make_unique<PlainFileSource>(path_, size_),
                                absl::StrCat("'", path_, "'"));
  }

 private:
  std::string path_;
  int64_t size_;
};

}  // namespace

bool ArrayFile::Contains(const std::string& name) const {
  for (const std::string& n : names()) {
    if (n == name) return true;
  }
  return false;
}

absl::StatusOr<std::unique_ptr<ArrayFile>> ArrayFile::Open(
    const std::string& path) {
  FILE* f = std::fopen(path.c_str(), "rb");
  if (f == nullptr) {
    return absl::NotFoundError(absl::StrCat("cannot open '", path, "'"));
  }
  char magic[6] = {0};
  size_t got = std::fread(magic, 1, sizeof(magic), f);
  std::fseek(f, 0, SEEK_END);
  int64_t size = std::ftell(f);
  std::fclose(f);
  if (got >= 6 && std::memcmp(magic, "\x93NUMPY", 6) == 0) {
    return std::unique_ptr<ArrayFile>(new NpyFile(path, size));
  }
  int error = 0;
  zip_t* archive = zip_open(path.c_str(), ZIP_RDONLY | ZIP_CHECKCONS, &error);
  if (archive == nullptr) {
    zip_error_t ze;
    zip_error_init_with_code(&ze, error);
    std::string msg = zip_error_strerror(&ze);
    zip_error_fini(&ze);
    return absl::InvalidArgumentError(absl::StrCat(
        "'", path, "' is neither a .npy array nor a readable .npz archive (",
        msg, ")"));
  }
  auto npz = std::make_unique<NpzFile>(archive, path);
  QUANTD_RETURN_IF_ERROR(npz->Index());
  return std::unique_ptr<ArrayFile>(std::move(npz));
}

absl::StatusOr<Tensor> ArrayFile::ReadArray(const std::string& name,
                                            int64_t max_elements) {
  QUANTD_ASSIGN_OR_RETURN(std::unique_ptr<ArrayStream> s, OpenStream(name));
  const NpyHeader& h = (s)->header();
  if (NumElements(h.shape) > max_elements) {
    return absl::ResourceExhaustedError(
        absl::StrCat("array '", name, "' has ", NumElements(h.shape),
                     " elements, more than the limit of ", max_elements));
  }
  QUANTD_ASSIGN_OR_RETURN(Tensor t, (s)->ReadRows((s)->rows()));
  if (h.shape.empty()) return t.Reshaped({});
  return t;
}

absl::Status WriteNpz(
    const std::string& path,
    const std::vector<std::pair<std::string, Tensor>>& arrays) {
  const std::string tmp = absl::StrCat(path, ".tmp");
  std::remove(tmp.c_str());
  int error = 0;
  zip_t* archive = zip_open(tmp.c_str(), ZIP_CREATE | ZIP_TRUNCATE, &error);
  if (archive == nullptr) {
    return absl::InternalError(absl::StrCat("cannot create '", tmp, "'"));
  }
  std::vector<std::string> buffers;
  buffers.reserve(arrays.size());
  for (const auto& [name, tensor] : arrays) {
    buffers.push_back(SerializeNpy(tensor));
    zip_source_t* src = zip_source_buffer(archive, buffers.back().data(),
                                          buffers.back().size(), 0);
    if (src == nullptr ||
        zip_file_add(archive, absl::StrCat(name, ".npy").c_str(), src,
                     ZIP_FL_OVERWRITE) < 0) {
      if (src != nullptr) zip_source_free(src);
      zip_discard(archive);
      std::remove(tmp.c_str());
      return absl::InternalError(
          absl::StrCat("cannot add '", name, "' to '", path, "'"));
    }
  }
  if (zip_close(archive) != 0) {
    zip_discard(archive);
    std::remove(tmp.c_str());
    return absl::InternalError(absl::StrCat("cannot write '", path, "'"));
  }
  if (std::rename(tmp.c_str(), path.c_str()) != 0) {
    std::remove(tmp.c_str());
    return absl::InternalError(absl::StrCat("cannot rename to '", path, "'"));
  }
  return absl::OkStatus();
}

}  // namespace quantd
