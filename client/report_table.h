// The table quantctl prints after a job: what quantization cost (fake-quant
// and true int8 against the float model) and what it gained (size, speed).
#ifndef QUANTD_CLIENT_REPORT_TABLE_H_
#define QUANTD_CLIENT_REPORT_TABLE_H_

#include <string>

#include "quantd/v1/report.pb.h"

namespace quantd::client {

std::string FormatReportTable(const v1::QuantizationReport& report);

}  // namespace quantd::client

#endif  // QUANTD_CLIENT_REPORT_TABLE_H_
