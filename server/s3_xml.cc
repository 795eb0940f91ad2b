#include "server/s3_xml.h"

#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"

namespace quantd {
namespace {

std::string Unescape(absl::string_view text) {
  // &amp; last, so that "&amp;lt;" becomes "&lt;" and not "<".
  return absl::StrReplaceAll(text, {{"&lt;", "<"},
                                    {"&gt;", ">"},
                                    {"&quot;", "\""},
                                    {"&apos;", "'"},
                                    {"&#34;", "\""},
                                    {"&amp;", "&"}});
}

std::string Escape(absl::string_view text) {
  return absl::StrReplaceAll(
      text, {{"&", "&amp;"}, {"<", "&lt;"}, {">", "&gt;"}, {"\"", "&quot;"}});
}

}  // namespace

std::string XmlElement(absl::string_view xml, absl::string_view name) {
  const std::string open = absl::StrCat("<", name, ">");
  const std::string close = absl::StrCat("</", name, ">");
  const size_t begin = xml.find(open);
  if (begin == absl::string_view::npos) return "";
  const size_t text = begin + open.size();
  const size_t end = xml.find(close, text);
  if (end == absl::string_view::npos) return "";
  return Unescape(xml.substr(text, end - text));
}

S3Error ParseS3Error(absl::string_view body) {
  S3Error e;
  if (body.find("<Error>") == absl::string_view::npos) return e;
  e.code = XmlElement(body, "Code");
  e.message = XmlElement(body, "Message");
  return e;
}

std::string CompleteMultipartXml(const std::vector<std::string>& etags) {
  std::string xml = "<CompleteMultipartUpload>";
  for (size_t i = 0; i < etags.size(); ++i) {
    absl::StrAppend(&xml, "<Part><PartNumber>", i + 1, "</PartNumber><ETag>",
                    Escape(etags[i]), "</ETag></Part>");
  }
  absl::StrAppend(&xml, "</CompleteMultipartUpload>");
  return xml;
}

}  // namespace quantd
