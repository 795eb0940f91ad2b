// The few pieces of S3's XML that the client reads and writes: an error's
// Code and Message, a multipart upload's UploadId, the list of parts that
// completes an upload. S3's answers are flat and small, so a search for
// the element is enough; no XML library is needed.
//
//   S3Error e = ParseS3Error(body);  // e.code "NoSuchKey", e.message "..."
//   std::string id = XmlElement(body, "UploadId");
#ifndef QUANTD_SERVER_S3_XML_H_
#define QUANTD_SERVER_S3_XML_H_

#include <string>
#include <vector>

#include "absl/strings/string_view.h"

namespace quantd {

struct S3Error {
  std::string code;  // empty when `body` is not an <Error> document
  std::string message;
};

// The text of the first <name>...</name> element, entities decoded; empty
// when there is none.
std::string XmlElement(absl::string_view xml, absl::string_view name);

S3Error ParseS3Error(absl::string_view body);

// The CompleteMultipartUpload document for parts 1..N with these ETags.
std::string CompleteMultipartXml(const std::vector<std::string>& etags);

}  // namespace quantd

#endif  // QUANTD_SERVER_S3_XML_H_
