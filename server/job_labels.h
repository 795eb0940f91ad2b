// A job's labels as one length-prefixed blob: they are only ever read and
// written together with their job, so they need no table of their own.
//
//   std::string blob = EncodeLabels({{"model", "resnet50"}});
//   std::map<std::string, std::string> back;
//   bool ok = DecodeLabels(blob, back);   // false on a corrupt blob
#ifndef QUANTD_SERVER_JOB_LABELS_H_
#define QUANTD_SERVER_JOB_LABELS_H_

#include <map>
#include <string>

#include "absl/strings/string_view.h"

namespace quantd {

// Appends `n` as 4 little-endian bytes (the length prefix used here and in
// page tokens).
void PutLength(std::string& out, size_t n);

std::string EncodeLabels(const std::map<std::string, std::string>& labels);
// False (and `labels` partly filled) when `in` is not a valid encoding.
bool DecodeLabels(absl::string_view in,
                  std::map<std::string, std::string>& labels);

}  // namespace quantd

#endif  // QUANTD_SERVER_JOB_LABELS_H_
