#include "client/report_table.h"

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace quantd::client {
namespace {

using ::testing::HasSubstr;

TEST(ReportTable, ClassifierRowsShowAccuracyAndDelta) {
  v1::QuantizationReport r;
  for (v1::EvaluationMetrics* m : {r.mutable_fake_quant(), r.mutable_int8()}) {
    m->set_has_labels(true);
    m->set_top1_agreement(0.99);
    m->set_float_accuracy(0.9);
    m->set_quantized_accuracy(0.895);
    m->set_accuracy_delta_points(-0.5);
    m->set_output_sqnr_db(31.25);
  }
  r.mutable_size()->set_float_bytes(4000000);
  r.mutable_size()->set_quantized_bytes(1000000);
  r.mutable_size()->set_compression_ratio(4);
  r.mutable_performance()->set_speedup(1.8);
  r.mutable_performance()->set_batch_size(32);
  r.mutable_performance()->set_threads(2);
  r.mutable_performance()->set_cpu_isa("avx2");
  const std::string t = FormatReportTable(r);
  EXPECT_THAT(t, HasSubstr("accuracy"));
  EXPECT_THAT(t, HasSubstr("fake-quant     99.00%  90.00% -> 89.50%"));
  EXPECT_THAT(t, HasSubstr("-0.50 pt"));
  EXPECT_THAT(t, HasSubstr("31.25 dB"));
  EXPECT_THAT(t, HasSubstr("4.00 MB -> 1.00 MB (4.00x smaller)"));
  EXPECT_THAT(t, HasSubstr("speedup     1.80x"));
  EXPECT_THAT(t, HasSubstr("batch 32, 2 threads, avx2)"));
}

TEST(ReportTable, KernelsRowOnlyWhenTheServerSaysWhatRan) {
  v1::QuantizationReport r;
  EXPECT_THAT(FormatReportTable(r), ::testing::Not(HasSubstr("kernels")));
  r.mutable_performance()->set_quantized_kernels(
      "weight-only int4 MatMul (avx512): 49 layers");
  r.mutable_performance()->set_float_weight_bytes(648900000);
  r.mutable_performance()->set_quantized_weight_bytes(224200000);
  EXPECT_THAT(FormatReportTable(r),
              HasSubstr("kernels     weight-only int4 MatMul (avx512): 49 "
                        "layers; weights 648.90 MB -> 224.20 MB in memory"));
}

TEST(ReportTable, BudgetRowOnlyWithASizeBudget) {
  v1::QuantizationReport r;
  EXPECT_THAT(FormatReportTable(r), ::testing::Not(HasSubstr("budget")));
  v1::SizeBudgetReport* b = r.mutable_size_budget();
  b->set_budget_bytes(6500);
  b->set_planned_bytes(6336);
  b->set_chosen("sensitivity order");
  b->set_knapsack_metric(6.1);
  b->set_sensitivity_order_metric(3);
  EXPECT_THAT(FormatReportTable(r),
              HasSubstr("budget      6500 weight bytes: planned 6336 "
                        "(sensitivity order; metric knapsack 6.10, "
                        "sensitivity order 3.00)"));
}

TEST(ReportTable, LanguageModelRowsShowPerplexity) {
  v1::QuantizationReport r;
  r.mutable_int8()->set_is_language_model(true);
  r.mutable_int8()->set_float_perplexity(12.5);
  r.mutable_int8()->set_quantized_perplexity(12.75);
  r.mutable_int8()->set_perplexity_delta_percent(2);
  const std::string t = FormatReportTable(r);
  EXPECT_THAT(t, HasSubstr("perplexity"));
  EXPECT_THAT(t, HasSubstr("12.500 -> 12.750"));
  EXPECT_THAT(t, HasSubstr("+2.00%"));
}

}  // namespace
}  // namespace quantd::client
