#include "server/job_labels.h"

#include <cstdint>

namespace quantd {
namespace {

bool TakeString(absl::string_view& in, std::string& out) {
  if (in.size() < 4) return false;
  size_t n = 0;
  for (int i = 0; i < 4; ++i) {
    n |= size_t{static_cast<uint8_t>(in[i])} << (8 * i);
  }
  in.remove_prefix(4);
  if (in.size() < n) return false;
  out.assign(in.data(), n);
  in.remove_prefix(n);
  return true;
}

}  // namespace

void PutLength(std::string& out, size_t n) {
  for (int i = 0; i < 4; ++i) out.push_back(static_cast<char>(n >> (8 * i)));
}

std::string EncodeLabels(const std::map<std::string, std::string>& labels) {
  std::string out;
  for (const auto& [key, value] : labels) {
    PutLength(out, key.size());
    out += key;
    PutLength(out, value.size());
    out += value;
  }
  return out;
}

bool DecodeLabels(absl::string_view in,
                  std::map<std::string, std::string>& labels) {
  while (!in.empty()) {
    std::string key, value;
    if (!TakeString(in, key) || !TakeString(in, value)) return false;
    labels[std::move(key)] = std::move(value);
  }
  return true;
}

}  // namespace quantd
