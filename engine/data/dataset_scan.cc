#include "engine/data/dataset_scan.h"

#include <zip.h>
#include <zlib.h>

#include <algorithm>
#include <cfloat>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <limits>
#include <memory>

#include "absl/status/status.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/strip.h"
#include "engine/data/dataset.h"
#include "engine/data/npy.h"
#include "util/status_macros.h"

namespace quantd {
namespace {

// Inside the scan, a problem with the file's contents is any error status;
// one that says the file could not be read (worth retrying, not a verdict)
// is Unavailable.
bool IsIoError(const absl::Status& s) {
  return s.code() == absl::StatusCode::kUnavailable;
}

absl::Status Bad(absl::string_view reason) {
  return absl::InvalidArgumentError(reason);
}

// Unbuffered sequential bytes: a zip member or a plain file.
class ByteSource {
 public:
  virtual ~ByteSource() = default;
  // Up to `n` bytes into `dst`; how many were read, 0 at the end.
  virtual absl::StatusOr<int64_t> ReadSome(char* dst, int64_t n) = 0;
};

class ZipMemberSource : public ByteSource {
 public:
  ZipMemberSource(zip_file_t* file, std::string what)
      : file_(file), what_(std::move(what)) {}
  ~ZipMemberSource() override { zip_fclose(file_); }

  absl::StatusOr<int64_t> ReadSome(char* dst, int64_t n) override {
    const zip_int64_t got = zip_fread(file_, dst, static_cast<zip_uint64_t>(n));
    if (got >= 0) return static_cast<int64_t>(got);
    const int code = zip_error_code_zip(zip_file_get_error(file_));
    if (code == ZIP_ER_CRC) {
      return Bad(absl::StrCat(what_,
                              " fails its CRC-32 check: the bytes are not the "
                              "ones that were zipped"));
    }
    if (code == ZIP_ER_READ || code == ZIP_ER_MEMORY) {
      return absl::UnavailableError(absl::StrCat(
          "reading ", what_, " failed: ", zip_file_strerror(file_)));
    }
    return Bad(
        absl::StrCat(what_, " is corrupt (", zip_file_strerror(file_), ")"));
  }

 private:
  zip_file_t* file_;
  std::string what_;
};

class PlainFileSource : public ByteSource {
 public:
  explicit PlainFileSource(FILE* f) : f_(f) {}
  ~PlainFileSource() override { std::fclose(f_); }

  absl::StatusOr<int64_t> ReadSome(char* dst, int64_t n) override {
    const size_t got = std::fread(dst, 1, static_cast<size_t>(n), f_);
    if (got == 0 && std::ferror(f_)) {
      return absl::UnavailableError("reading the dataset file failed");
    }
    return static_cast<int64_t>(got);
  }

 private:
  FILE* f_;
};

// A source read in exact amounts, with the CRC-32 of every byte and the
// statistics the scan reports.
class CountingReader {
 public:
  CountingReader(ByteSource* source, std::string what, ScanStats* stats)
      : source_(source), what_(std::move(what)), stats_(stats) {}

  // Exactly `n` bytes, or a problem naming the member as truncated.
  absl::Status ReadExactly(char* dst, int64_t n) {
    while (n > 0) {
      QUANTD_ASSIGN_OR_RETURN(const int64_t got, ReadSome(dst, n));
      if (got == 0) {
        return Bad(absl::StrCat(what_, " is truncated"));
      }
      dst += got;
      n -= got;
    }
    return absl::OkStatus();
  }

  // Reads to the end into `buf` (of `cap` bytes); returns how many bytes
  // there were.
  absl::StatusOr<int64_t> Drain(char* buf, int64_t cap) {
    int64_t total = 0;
    while (true) {
      QUANTD_ASSIGN_OR_RETURN(const int64_t got, ReadSome(buf, cap));
      if (got == 0) return total;
      total += got;
    }
  }

  uint32_t crc() const { return crc_; }

 private:
  absl::StatusOr<int64_t> ReadSome(char* dst, int64_t n) {
    QUANTD_ASSIGN_OR_RETURN(const int64_t got, source_->ReadSome(dst, n));
    ++stats_->reads;
    stats_->largest_read = std::max(stats_->largest_read, n);
    stats_->bytes_read += got;
    crc_ = crc32_z(crc_, reinterpret_cast<const Bytef*>(dst),
                   static_cast<z_size_t>(got));
    return got;
  }

  ByteSource* source_;
  std::string what_;
  ScanStats* stats_;
  uint32_t crc_ = 0;
};

std::string ArrayWhat(const std::string& name) {
  return absl::StrCat("array '", name, "'");
}

std::string StoredTypeName(const NpyHeader& h) {
  return h.stored_float64 ? "f64" : DataTypeName(h.dtype);
}

// "(sample 12)" for flat index `i` of an array of `shape`.
std::string SampleOf(const Shape& shape, int64_t i) {
  if (shape.size() < 2) return absl::StrCat("(sample ", i, ")");
  const int64_t per_row =
      std::max<int64_t>(1, NumElements(absl::MakeSpan(shape).subspan(1)));
  return absl::StrCat("(sample ", i / per_row, ")");
}

std::string ValueName(double v) {
  if (std::isnan(v)) return "NaN";
  if (std::isinf(v)) return v > 0 ? "Inf" : "-Inf";
  return absl::StrFormat("%g", v);
}

// The state of the scan across arrays.
struct ScanState {
  ScanOptions options;
  DatasetScan* out;
  std::vector<uint64_t> buffer;  // chunk_bytes, 8-byte aligned
  int64_t rows = -1;             // samples, set by the first array
  std::string rows_from;
  char* buf() { return reinterpret_cast<char*>(buffer.data()); }
  int64_t chunk() const { return static_cast<int64_t>(buffer.size()) * 8; }
};

// Header-level checks of one array: the label's form, the sample count.
absl::Status CheckArrayHeader(const std::string& name, const NpyHeader& h,
                              ScanState& st) {
  if (name == kLabelArray) {
    if (h.shape.size() != 1 || h.stored_float64 ||
        (h.dtype != DataType::kInt64 && h.dtype != DataType::kInt32)) {
      return Bad(absl::StrCat(ArrayWhat(name),
                              " must be a 1-D int64 (or int32) array of class "
                              "ids, one per sample; it is ",
                              StoredTypeName(h), ShapeToString(h.shape)));
    }
    st.out->has_labels = true;
    st.out->label_min = std::numeric_limits<int64_t>::max();
    st.out->label_max = std::numeric_limits<int64_t>::min();
  }
  const int64_t rows = h.shape.empty() ? 1 : h.shape[0];
  if (st.rows < 0) {
    st.rows = rows;
    st.rows_from = name;
  } else if (rows != st.rows) {
    return Bad(absl::StrCat(ArrayWhat(name), " has ", rows,
                            " samples but array '", st.rows_from, "' has ",
                            st.rows, "; every array needs one row per sample"));
  }
  return absl::OkStatus();
}

template <typename Bits>
bool AnyAllOnes(const char* p, int64_t n, Bits mask) {
  bool any = false;
  for (int64_t i = 0; i < n; ++i) {
    Bits b;
    std::memcpy(&b, p + i * sizeof(Bits), sizeof(Bits));
    any |= (b & mask) == mask;
  }
  return any;
}

// The first non-finite value of `n` elements at `p`, or -1 (float64 values
// beyond float32's range count: quantd reads float64 as float32).
int64_t FirstBadFloat(const NpyHeader& h, const char* p, int64_t n,
                      double* value) {
  if (h.stored_float64) {
    for (int64_t i = 0; i < n; ++i) {
      double v;
      std::memcpy(&v, p + i * 8, 8);
      if (!std::isfinite(v) || std::fabs(v) > FLT_MAX) {
        *value = v;
        return i;
      }
    }
    return -1;
  }
  if (h.dtype == DataType::kFloat32) {
    if (!AnyAllOnes<uint32_t>(p, n, 0x7f800000u)) return -1;
    for (int64_t i = 0; i < n; ++i) {
      float v;
      std::memcpy(&v, p + i * 4, 4);
      if (!std::isfinite(v)) {
        *value = v;
        return i;
      }
    }
  }
  if (h.dtype == DataType::kFloat16) {
    for (int64_t i = 0; i < n; ++i) {
      uint16_t b;
      std::memcpy(&b, p + i * 2, 2);
      if ((b & 0x7c00u) == 0x7c00u) {
        const bool nan = (b & 0x3ffu) != 0;
        *value =
            nan ? std::nan("")
                : ((b & 0x8000u) ? -HUGE_VAL : static_cast<double>(HUGE_VAL));
        return i;
      }
    }
  }
  return -1;
}

template <typename T>
absl::Status ScanLabels(const char* p, int64_t n, int64_t first,
                        DatasetScan& out) {
  for (int64_t i = 0; i < n; ++i) {
    T v;
    std::memcpy(&v, p + i * sizeof(T), sizeof(T));
    const int64_t y = v;
    if (y < 0) {
      return Bad(absl::StrCat(ArrayWhat(kLabelArray), " has class id ", y,
                              " at index ", first + i,
                              "; class ids start at 0"));
    }
    out.label_min = std::min(out.label_min, y);
    out.label_max = std::max(out.label_max, y);
  }
  return absl::OkStatus();
}

// Checks `n` elements starting at flat index `first`.
absl::Status CheckValues(const std::string& name, const NpyHeader& h,
                         const char* p, int64_t n, int64_t first,
                         ScanState& st) {
  double value = 0;
  if (const int64_t bad = FirstBadFloat(h, p, n, &value); bad >= 0) {
    const bool overflow = std::isfinite(value);
    return Bad(absl::StrCat(ArrayWhat(name), " has ", ValueName(value),
                            " at flat index ", first + bad, " ",
                            SampleOf(h.shape, first + bad),
                            overflow ? ", beyond float32's range" : "",
                            "; every value must be finite"));
  }
  if (name != kLabelArray) return absl::OkStatus();
  if (h.dtype == DataType::kInt64) {
    return ScanLabels<int64_t>(p, n, first, *st.out);
  }
  return ScanLabels<int32_t>(p, n, first, *st.out);
}

// Reads the .npy header of an array of `size` bytes.
absl::StatusOr<NpyHeader> ReadHeader(CountingReader& r, int64_t size,
                                     const std::string& name) {
  std::string prefix;
  int64_t have = 0, needed = 10;
  while (true) {
    if (needed > size) {
      return Bad(
          absl::StrCat(ArrayWhat(name), " is too short to be a .npy array"));
    }
    prefix.resize(needed);
    QUANTD_RETURN_IF_ERROR(r.ReadExactly(prefix.data() + have, needed - have));
    have = needed;
    absl::StatusOr<NpyHeader> h = ParseNpyHeader(prefix, &needed);
    if (h.ok()) return h;
    if (h.status().code() != absl::StatusCode::kOutOfRange) {
      return Bad(absl::StrCat(ArrayWhat(name), ": ", h.status().message()));
    }
  }
}

// One .npy stream of `size` bytes, read to its end.
absl::Status ScanArray(CountingReader& r, int64_t size, const std::string& name,
                       ScanState& st) {
  QUANTD_ASSIGN_OR_RETURN(const NpyHeader h, ReadHeader(r, size, name));
  const int64_t elements = NumElements(h.shape);
  const int64_t esize = h.disk_element_size();
  if (elements > std::numeric_limits<int64_t>::max() / esize ||
      size - h.header_bytes != elements * esize) {
    return Bad(absl::StrCat(ArrayWhat(name), " declares shape ",
                            ShapeToString(h.shape), " (", elements * esize,
                            " data bytes) but holds ", size - h.header_bytes));
  }
  st.out->arrays.push_back({name, StoredTypeName(h), h.shape});
  QUANTD_RETURN_IF_ERROR(CheckArrayHeader(name, h, st));
  const int64_t per_chunk = st.chunk() / esize;
  for (int64_t first = 0; first < elements; first += per_chunk) {
    const int64_t n = std::min(per_chunk, elements - first);
    QUANTD_RETURN_IF_ERROR(r.ReadExactly(st.buf(), n * esize));
    QUANTD_RETURN_IF_ERROR(CheckValues(name, h, st.buf(), n, first, st));
  }
  return absl::OkStatus();
}

// One zip member: a .npy array scanned, anything else only read; then its
// CRC-32 compared with the one the archive records.
absl::Status ScanMember(zip_t* archive, zip_int64_t index, ScanState& st) {
  zip_stat_t zs;
  zip_stat_init(&zs);
  if (zip_stat_index(archive, index, 0, &zs) != 0 ||
      !(zs.valid & ZIP_STAT_NAME) || !(zs.valid & ZIP_STAT_SIZE)) {
    return Bad(absl::StrCat("zip member ", index, " is unreadable (",
                            zip_strerror(archive), ")"));
  }
  const std::string member = zs.name;
  absl::string_view name = member;
  const bool is_array = absl::ConsumeSuffix(&name, ".npy");
  const std::string what = absl::StrCat("zip member '", member, "'");
  zip_file_t* file = zip_fopen_index(archive, index, 0);
  if (file == nullptr) {
    return Bad(
        absl::StrCat("cannot open ", what, " (", zip_strerror(archive), ")"));
  }
  ZipMemberSource source(file, what);
  CountingReader reader(&source, what, &st.out->stats);
  const int64_t size = static_cast<int64_t>(zs.size);
  if (is_array) {
    QUANTD_RETURN_IF_ERROR(ScanArray(reader, size, std::string(name), st));
  }
  QUANTD_ASSIGN_OR_RETURN(const int64_t rest,
                          reader.Drain(st.buf(), st.chunk()));
  if (is_array && rest != 0) {
    return Bad(absl::StrCat(what, " is longer than the archive says"));
  }
  if ((zs.valid & ZIP_STAT_CRC) && reader.crc() != zs.crc) {
    return Bad(absl::StrFormat(
        "%s fails its CRC-32 check (recorded %08x, its bytes give %08x): "
        "the file was damaged after it was zipped",
        what, zs.crc, reader.crc()));
  }
  return absl::OkStatus();
}

absl::Status ScanZip(const std::string& path, ScanState& st) {
  int error = 0;
  zip_t* archive = zip_open(path.c_str(), ZIP_RDONLY | ZIP_CHECKCONS, &error);
  if (archive == nullptr) {
    zip_error_t ze;
    zip_error_init_with_code(&ze, error);
    const std::string msg = zip_error_strerror(&ze);
    zip_error_fini(&ze);
    if (error == ZIP_ER_OPEN || error == ZIP_ER_READ ||
        error == ZIP_ER_MEMORY) {
      return absl::UnavailableError(
          absl::StrCat("cannot read '", path, "': ", msg));
    }
    return Bad(absl::StrCat(
        "the file is neither a .npy array nor a readable .npz archive (", msg,
        ")"));
  }
  std::unique_ptr<zip_t, void (*)(zip_t*)> closer(archive, zip_discard);
  const zip_int64_t n = zip_get_num_entries(archive, 0);
  if (n > kMaxScanMembers) {
    return Bad(absl::StrCat("the archive has ", n, " members; at most ",
                            kMaxScanMembers, " are accepted"));
  }
  for (zip_int64_t i = 0; i < n; ++i) {
    QUANTD_RETURN_IF_ERROR(ScanMember(archive, i, st));
  }
  if (st.out->arrays.empty()) {
    return Bad("the archive holds no .npy arrays");
  }
  return absl::OkStatus();
}

absl::Status ScanNpyFile(FILE* f, ScanState& st) {
  std::fseek(f, 0, SEEK_END);
  const int64_t size = std::ftell(f);
  std::rewind(f);
  PlainFileSource source(f);
  CountingReader reader(&source, "the .npy file", &st.out->stats);
  return ScanArray(reader, size, "", st);
}

// Opens `path`; `*npy` tells a .npy file (by its magic) from anything else.
absl::StatusOr<FILE*> OpenFile(const std::string& path, bool* npy) {
  FILE* f = std::fopen(path.c_str(), "rb");
  if (f == nullptr) {
    return absl::UnavailableError(absl::StrCat("cannot open '", path, "'"));
  }
  char magic[6] = {0};
  const size_t got = std::fread(magic, 1, sizeof(magic), f);
  *npy = got == sizeof(magic) && std::memcmp(magic, "\x93NUMPY", 6) == 0;
  return f;
}

}  // namespace

absl::StatusOr<DatasetScan> ScanDatasetFile(const std::string& path,
                                            const ScanOptions& options) {
  DatasetScan scan;
  ScanState st;
  st.options = options;
  st.out = &scan;
  st.buffer.resize(std::max<int64_t>(64, options.chunk_bytes) / 8);
  bool npy = false;
  QUANTD_ASSIGN_OR_RETURN(FILE * f, OpenFile(path, &npy));
  absl::Status s;
  if (npy) {
    s = ScanNpyFile(f, st);  // closes f
  } else {
    std::fclose(f);
    s = ScanZip(path, st);
  }
  if (s.ok() && st.rows <= 0) s = Bad("the dataset holds no samples");
  if (IsIoError(s)) return s;
  if (!s.ok()) {
    scan.ok = false;
    scan.reason = std::string(s.message());
  }
  scan.samples = std::max<int64_t>(0, st.rows);
  if (!scan.ok || !scan.has_labels || scan.samples == 0) {
    scan.label_min = scan.label_max = 0;
  }
  return scan;
}

absl::Status CheckLabelRange(const DatasetScan& scan, int64_t classes) {
  if (!scan.has_labels || classes <= 0 || scan.samples == 0) {
    return absl::OkStatus();
  }
  if (scan.label_min < 0 || scan.label_max >= classes) {
    const int64_t y = scan.label_min < 0 ? scan.label_min : scan.label_max;
    return absl::InvalidArgumentError(
        absl::StrCat(ArrayWhat(kLabelArray), " has class id ", y,
                     " but the model's output has ", classes, " classes [0, ",
                     classes, ")"));
  }
  return absl::OkStatus();
}

}  // namespace quantd
