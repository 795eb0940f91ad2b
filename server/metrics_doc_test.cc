// docs/METRICS.md cannot drift from the code: every family the service
// declares is in its table with the same type, label names and help text,
// and the table lists nothing else.
#include <fstream>
#include <map>
#include <set>
#include <sstream>

#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "gtest/gtest.h"
#include "server/metrics.h"

namespace quantd {
namespace {

struct Row {
  std::string type;
  std::set<std::string> labels;
  std::string help;
};

std::map<std::string, Row> DocumentedFamilies() {
  std::ifstream f(std::string(QUANTD_TESTDATA_DIR) + "/../docs/METRICS.md");
  std::map<std::string, Row> rows;
  std::string line;
  while (std::getline(f, line)) {
    if (line.rfind("| `quantd_", 0) != 0) continue;
    std::vector<std::string> cells = absl::StrSplit(line, '|');
    // "", name, type, labels, meaning, ""
    if (cells.size() < 6) continue;
    auto cell = [&](int i) {
      return std::string(absl::StripAsciiWhitespace(cells[i]));
    };
    Row r;
    r.type = cell(2);
    for (absl::string_view l :
         absl::StrSplit(cell(3), ',', absl::SkipEmpty())) {
      r.labels.insert(std::string(absl::StripAsciiWhitespace(l)));
    }
    r.help = cell(4);
    std::string name = cell(1);
    rows[name.substr(1, name.size() - 2)] = r;
  }
  return rows;
}

std::string TypeName(prometheus::MetricType t) {
  switch (t) {
    case prometheus::MetricType::Counter:
      return "counter";
    case prometheus::MetricType::Gauge:
      return "gauge";
    case prometheus::MetricType::Histogram:
      return "histogram";
    case prometheus::MetricType::Summary:
      return "summary";
    default:
      return "untyped";
  }
}

TEST(MetricsDocTest, TableMatchesTheCode) {
  MetricsOptions o;
  o.listen_address = "";
  auto m = ServiceMetrics::Create(o);
  ASSERT_TRUE(m.ok()) << m.status();
  // One call of each kind, so that every family has a series whose label
  // names can be compared.
  v1::QuantizationReport report;
  report.mutable_fake_quant()->set_has_labels(true);
  report.mutable_fake_quant()->set_is_language_model(true);
  report.mutable_size()->set_compression_ratio(2);
  report.mutable_performance()->set_speedup(1.5);
  (*m)->JobQuality("ptq", "t", "m", report);
  (*m)->StageFinished("calibrate", 1);
  (*m)->GrpcCall("GetJob", "OK");

  const std::map<std::string, Row> doc = DocumentedFamilies();
  ASSERT_FALSE(doc.empty()) << "docs/METRICS.md has no table rows";
  std::set<std::string> seen;
  for (const prometheus::MetricFamily& f : (*m)->Collect()) {
    if (f.name.rfind("quantd_", 0) != 0) continue;
    seen.insert(f.name);
    auto it = doc.find(f.name);
    ASSERT_NE(it, doc.end()) << f.name << " is not in docs/METRICS.md";
    EXPECT_EQ(it->second.type, TypeName(f.type)) << f.name;
    EXPECT_EQ(it->second.help, f.help) << f.name;
    std::set<std::string> labels;
    for (const prometheus::ClientMetric& cm : f.metric) {
      for (const prometheus::ClientMetric::Label& l : cm.label) {
        labels.insert(l.name);
      }
    }
    EXPECT_EQ(absl::StrJoin(it->second.labels, ","), absl::StrJoin(labels, ","))
        << f.name;
  }
  for (const auto& [name, row] : doc) {
    EXPECT_TRUE(seen.contains(name))
        << name << " is documented but the code does not declare it";
  }
}

}  // namespace
}  // namespace quantd
