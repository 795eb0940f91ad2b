#include "engine/data/npy.h"

#include <algorithm>
#include <cstring>

#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "util/status_macros.h"

namespace quantd {
namespace {

constexpr char kMagic[] = "\x93NUMPY";

// Finds `'key':` in the header dict and returns the text after it.
absl::StatusOr<absl::string_view> DictValue(absl::string_view dict,
                                            absl::string_view key) {
  for (const char quote : {'\'', '"'}) {
    std::string needle =
        absl::StrCat(std::string(1, quote), key, std::string(1, quote));
    size_t pos = dict.find(needle);
    if (pos == absl::string_view::npos) continue;
    absl::string_view rest = dict.substr(pos + needle.size());
    rest = absl::StripLeadingAsciiWhitespace(rest);
    if (!absl::ConsumePrefix(&rest, ":")) break;
    return absl::StripLeadingAsciiWhitespace(rest);
  }
  return absl::InvalidArgumentError(
      absl::StrCat("the .npy header has no '", key, "' entry"));
}

absl::StatusOr<std::pair<DataType, bool>> ParseDescr(absl::string_view descr) {
  if (descr.size() < 3) {
    return absl::InvalidArgumentError(
        absl::StrCat("unreadable .npy dtype '", descr, "'"));
  }
  const char order = descr[0];
  absl::string_view code = descr.substr(1);
  if (order == '>' && code != "i1" && code != "u1" && code != "b1") {
    return absl::UnimplementedError(absl::StrCat(
        ".npy dtype '", descr,
        "' is big-endian; save the array as little-endian (astype('<f4'))"));
  }
  if (code == "f4") return std::make_pair(DataType::kFloat32, false);
  if (code == "f8") return std::make_pair(DataType::kFloat32, true);
  if (code == "f2") return std::make_pair(DataType::kFloat16, false);
  if (code == "i8") return std::make_pair(DataType::kInt64, false);
  if (code == "i4") return std::make_pair(DataType::kInt32, false);
  if (code == "i1") return std::make_pair(DataType::kInt8, false);
  if (code == "u1") return std::make_pair(DataType::kUInt8, false);
  if (code == "b1") return std::make_pair(DataType::kBool, false);
  return absl::UnimplementedError(absl::StrCat(
      ".npy dtype '", descr,
      "' is not supported (use float32, float64, float16, int64, int32, int8, "
      "uint8 or bool)"));
}

// The bytes before the header dict (magic, version, length field) and the
// dict's length.
struct Preamble {
  int64_t bytes = 0;
  int64_t header_len = 0;
};

// OutOfRange with *needed set while `prefix` is too short to hold the
// preamble and the whole dict.
absl::StatusOr<Preamble> ParsePreamble(absl::string_view prefix,
                                       int64_t* needed) {
  if (prefix.size() < 10) {
    *needed = 10;
    return absl::OutOfRangeError("need more bytes");
  }
  if (prefix.substr(0, 6) != absl::string_view(kMagic, 6)) {
    return absl::InvalidArgumentError(
        "not a .npy array (the file does not start with \\x93NUMPY)");
  }
  const uint8_t major = static_cast<uint8_t>(prefix[6]);
  Preamble p;
  if (major == 1) {
    p.header_len = static_cast<uint8_t>(prefix[8]) |
                   (static_cast<uint8_t>(prefix[9]) << 8);
    p.bytes = 10;
  } else if (major == 2 || major == 3) {
    if (prefix.size() < 12) {
      *needed = 12;
      return absl::OutOfRangeError("need more bytes");
    }
    uint32_t len = 0;
    std::memcpy(&len, prefix.data() + 8, 4);
    p.header_len = len;
    p.bytes = 12;
  } else {
    return absl::UnimplementedError(
        absl::StrCat(".npy format version ", major, " is not supported"));
  }
  if (p.header_len > kMaxNpyHeaderBytes) {
    return absl::InvalidArgumentError(
        absl::StrCat(".npy header of ", p.header_len, " bytes is too long"));
  }
  if (static_cast<int64_t>(prefix.size()) < p.bytes + p.header_len) {
    *needed = p.bytes + p.header_len;
    return absl::OutOfRangeError("need more bytes");
  }
  return p;
}

// The dict's 'descr' (a plain quoted dtype) and 'fortran_order' (False).
absl::Status ParseElementType(absl::string_view dict, NpyHeader& h) {
  QUANTD_ASSIGN_OR_RETURN(const absl::string_view descr,
                          DictValue(dict, "descr"));
  if (descr.empty() || (descr[0] != '\'' && descr[0] != '"')) {
    return absl::UnimplementedError(
        "structured .npy dtypes are not supported; save one plain array per "
        "name");
  }
  size_t end = descr.find(descr[0], 1);
  if (end == absl::string_view::npos) {
    return absl::InvalidArgumentError("unterminated dtype in .npy header");
  }
  QUANTD_ASSIGN_OR_RETURN(const auto type,
                          ParseDescr(descr.substr(1, end - 1)));
  h.dtype = type.first;
  h.stored_float64 = type.second;

  QUANTD_ASSIGN_OR_RETURN(const absl::string_view fortran,
                          DictValue(dict, "fortran_order"));
  if (absl::StartsWith(fortran, "True")) {
    return absl::UnimplementedError(
        "Fortran-ordered .npy arrays are not supported; save with "
        "np.ascontiguousarray(x)");
  }
  return absl::OkStatus();
}

// The dict's 'shape' tuple: at most 8 non-negative dims whose product fits.
absl::Status ParseShape(absl::string_view dict, NpyHeader& h) {
  QUANTD_ASSIGN_OR_RETURN(const absl::string_view shape,
                          DictValue(dict, "shape"));
  if (shape.empty() || shape[0] != '(') {
    return absl::InvalidArgumentError("unreadable shape in .npy header");
  }
  size_t close = shape.find(')');
  if (close == absl::string_view::npos) {
    return absl::InvalidArgumentError("unterminated shape in .npy header");
  }
  for (absl::string_view part : absl::StrSplit(shape.substr(1, close - 1), ',',
                                               absl::SkipWhitespace())) {
    int64_t d;
    if (!absl::SimpleAtoi(absl::StripAsciiWhitespace(part), &d) || d < 0) {
      return absl::InvalidArgumentError(
          absl::StrCat("bad dimension '", part, "' in .npy shape"));
    }
    h.shape.push_back(d);
  }
  if (h.shape.size() > 8) {
    return absl::InvalidArgumentError(".npy array has more than 8 dims");
  }
  // Bytes, not only elements, must fit: readers compute the data's size as
  // elements times element size (a 2^61-element float64 array overflows).
  const absl::StatusOr<int64_t> elements = CheckedNumElements(h.shape);
  const int64_t element_bytes = std::max<int64_t>(1, h.disk_element_size());
  if (!elements.ok() || *elements > kMaxNpyDataBytes / element_bytes) {
    return absl::InvalidArgumentError(
        absl::StrCat(".npy shape ", ShapeToString(h.shape), " holds more than ",
                     kMaxNpyDataBytes,
                     " bytes of data; the header is corrupt or the array is "
                     "too large to read"));
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<NpyHeader> ParseNpyHeader(absl::string_view prefix,
                                         int64_t* needed) {
  QUANTD_ASSIGN_OR_RETURN(const Preamble p, ParsePreamble(prefix, needed));
  absl::string_view dict = prefix.substr(p.bytes, p.header_len);
  NpyHeader h;
  h.header_bytes = p.bytes + p.header_len;
  QUANTD_RETURN_IF_ERROR(ParseElementType(dict, h));
  QUANTD_RETURN_IF_ERROR(ParseShape(dict, h));
  return h;
}

std::string SerializeNpy(const Tensor& tensor) {
  const char* descr = "<f4";
  switch (tensor.dtype()) {
    case DataType::kFloat32:
      descr = "<f4";
      break;
    case DataType::kFloat16:
      descr = "<f2";
      break;
    case DataType::kInt64:
      descr = "<i8";
      break;
    case DataType::kInt32:
      descr = "<i4";
      break;
    case DataType::kInt8:
      descr = "|i1";
      break;
    case DataType::kUInt8:
      descr = "|u1";
      break;
    case DataType::kBool:
      descr = "|b1";
      break;
    case DataType::kUndefined:
      break;
  }
  std::string shape = absl::StrJoin(tensor.shape(), ", ");
  if (tensor.rank() == 1) shape += ",";
  std::string dict =
      absl::StrCat("{'descr': '", descr,
                   "', 'fortran_order': False, 'shape': (", shape, "), }");
  // Pad so that the data starts on a 64-byte boundary, ending in '\n'.
  size_t total = 10 + dict.size() + 1;
  size_t padded = (total + 63) / 64 * 64;
  dict.append(padded - total, ' ');
  dict.push_back('\n');
  std::string out(kMagic, 6);
  out.push_back('\x01');
  out.push_back('\x00');
  out.push_back(static_cast<char>(dict.size() & 0xff));
  out.push_back(static_cast<char>(dict.size() >> 8));
  out += dict;
  out.append(static_cast<const char*>(tensor.raw_data()), tensor.byte_size());
  return out;
}

}  // namespace quantd
