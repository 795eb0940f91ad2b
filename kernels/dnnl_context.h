// The process-wide oneDNN CPU engine, a stream per thread, and the glue that
// turns Tensors into dnnl::memory and dnnl::error into absl::Status.
//
// oneDNN throws dnnl::error; nothing above kernels/ should see an exception,
// so every kernel wraps its oneDNN calls in CatchDnnl:
//
//   return CatchDnnl("conv forward", [&] { prim.execute(ThreadStream(), args);
//                                          ThreadStream().wait(); });
#ifndef QUANTD_KERNELS_DNNL_CONTEXT_H_
#define QUANTD_KERNELS_DNNL_CONTEXT_H_

#include <exception>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "kernels/tensor.h"
#include "oneapi/dnnl/dnnl.hpp"

namespace quantd {

dnnl::engine& CpuEngine();
// oneDNN streams are not thread-safe; each thread gets its own.
dnnl::stream& ThreadStream();

// kUndefined for element types oneDNN cannot hold (s64, bool).
dnnl::memory::data_type ToDnnlType(DataType type);
dnnl::memory::dims ToDnnlDims(absl::Span<const int64_t> shape);
// Dense row-major strides for `shape`.
dnnl::memory::dims DenseStrides(absl::Span<const int64_t> shape);
// A plain (row-major) memory descriptor for a tensor of this type and shape.
dnnl::memory::desc PlainDesc(DataType type, absl::Span<const int64_t> shape);
// Wraps tensor storage without copying. The tensor must outlive the memory.
dnnl::memory WrapTensor(const Tensor& t);
dnnl::memory WrapTensor(const Tensor& t, const dnnl::memory::desc& desc);

template <typename F>
absl::Status CatchDnnl(absl::string_view what, F&& f) {
  try {
    f();
  } catch (const dnnl::error& e) {
    return absl::InternalError(absl::StrCat("oneDNN failed in ", what, ": ",
                                            e.what(), " (status ",
                                            static_cast<int>(e.status), ")"));
  } catch (const std::bad_alloc&) {
    return absl::ResourceExhaustedError(
        absl::StrCat("out of memory in ", what));
  }
  return absl::OkStatus();
}

// The instruction set oneDNN dispatches to on this CPU, e.g. "avx2" or
// "avx512_core_vnni"; reports record it because int8 numerics and speed depend
// on it.
std::string CpuIsaName();
// True when the CPU has VNNI (u8*s8 dot products without a saturating 16-bit
// intermediate). Without it, u8 x s8 products can saturate.
bool CpuHasVnni();
// The threads a kernel runs on (OpenMP's current maximum for this thread).
int KernelThreads();

// Executes the oneDNN primitives in its scope on the calling thread alone
// when they touch fewer than kSerialDnnlElements elements. oneDNN's simple
// primitives (eltwise, softmax, layer norm, reorder, reduction) open an
// OpenMP region for any size, and waking the other threads costs ~2 us,
// more than the work of a small op (a chain of 400 Add/Relu nodes on
// [1, 768]: 4.4 us per node on 2 threads, 2.0 on 1). They read the thread
// count when they execute, from the calling thread's OpenMP nthreads
// setting, which this lowers to 1 and restores. Create primitives outside
// the scope: a primitive planned for one thread must not run on more.
//
//   SerialIfSmall serial(x.num_elements());
//   return CatchDnnl("softmax", [&] { prim.execute(...); ... });
inline constexpr int64_t kSerialDnnlElements = 1 << 14;
class SerialIfSmall {
 public:
  explicit SerialIfSmall(int64_t elements);
  ~SerialIfSmall();
  SerialIfSmall(const SerialIfSmall&) = delete;
  SerialIfSmall& operator=(const SerialIfSmall&) = delete;

 private:
  int restore_ = 0;  // 0: nothing to restore
};

}  // namespace quantd

#endif  // QUANTD_KERNELS_DNNL_CONTEXT_H_
