// Shapes and helpers shared by the float and quantized convolution kernel
// tests (convolution_test.cc, quantized_convolution_test.cc).
#ifndef QUANTD_KERNELS_CONVOLUTION_TEST_CASES_H_
#define QUANTD_KERNELS_CONVOLUTION_TEST_CASES_H_

#include <string>
#include <vector>

#include "absl/status/status.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "kernels/convolution.h"
#include "kernels/kernel_test_util.h"

namespace quantd {
namespace conv_test {

struct ConvCase {
  std::string name;
  Shape src;
  Shape weights;
  ConvParams params;
};

inline ConvParams Params(std::vector<int64_t> strides, std::vector<int64_t> pb,
                         std::vector<int64_t> pe,
                         std::vector<int64_t> dilations = {},
                         int64_t groups = 1,
                         std::vector<int64_t> output_padding = {}) {
  ConvParams p;
  p.strides = std::move(strides);
  p.pads_begin = std::move(pb);
  p.pads_end = std::move(pe);
  p.dilations = std::move(dilations);
  p.groups = groups;
  p.output_padding = std::move(output_padding);
  return p;
}

inline std::vector<ConvCase> ConvCases() {
  return {
      {"basic_3x3_pad1",
       {1, 3, 8, 8},
       {4, 3, 3, 3},
       Params({}, {1, 1}, {1, 1})},
      {"batch2_stride2_asym_pad",
       {2, 16, 9, 7},
       {32, 16, 3, 3},
       Params({2, 2}, {0, 1}, {1, 0})},
      {"groups2",
       {2, 8, 6, 6},
       {6, 4, 3, 3},
       Params({}, {1, 1}, {1, 1}, {}, 2)},
      {"depthwise",
       {3, 16, 10, 10},
       {16, 1, 3, 3},
       Params({}, {1, 1}, {1, 1}, {}, 16)},
      {"depthwise_stride2_asym",
       {1, 24, 11, 9},
       {24, 1, 5, 5},
       Params({2, 2}, {2, 1}, {1, 2}, {}, 24)},
      {"depthwise_multiplier2",
       {2, 8, 7, 7},
       {16, 1, 3, 3},
       Params({}, {1, 1}, {1, 1}, {}, 8)},
      {"dilated",
       {1, 8, 12, 13},
       {8, 8, 3, 3},
       Params({}, {2, 3}, {2, 3}, {2, 3})},
      {"pointwise", {2, 32, 7, 7}, {64, 32, 1, 1}, Params({}, {}, {})},
      {"pointwise_stride2",
       {1, 16, 8, 8},
       {8, 16, 1, 1},
       Params({2, 2}, {}, {})},
      {"kernel_covers_input", {2, 3, 5, 5}, {7, 3, 5, 5}, Params({}, {}, {})},
      {"one_by_one_everything", {1, 1, 1, 1}, {1, 1, 1, 1}, Params({}, {}, {})},
      {"odd_channels_rect_kernel",
       {2, 5, 9, 11},
       {7, 5, 2, 4},
       Params({1, 3}, {0, 2}, {1, 1})},
      {"resnet_like",
       {2, 64, 14, 14},
       {64, 64, 3, 3},
       Params({}, {1, 1}, {1, 1})},
      {"conv1d", {2, 5, 17}, {7, 5, 5}, Params({2}, {2}, {1}, {2})},
      {"conv1d_grouped", {3, 6, 20}, {9, 2, 3}, Params({}, {1}, {1}, {}, 3)},
      {"conv3d",
       {1, 4, 5, 6, 7},
       {8, 4, 3, 3, 3},
       Params({1, 2, 1}, {1, 1, 1}, {1, 1, 1})},
  };
}

inline void ExpectInvalid(const absl::Status& s, const std::string& message) {
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << s;
  EXPECT_THAT(std::string(s.message()), ::testing::HasSubstr(message));
}

}  // namespace conv_test
}  // namespace quantd

#endif  // QUANTD_KERNELS_CONVOLUTION_TEST_CASES_H_
