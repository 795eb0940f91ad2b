#include "kernels/dnnl_context.h"

#include <cpuid.h>
#include <omp.h>

#include <string>

namespace quantd {

dnnl::engine& CpuEngine() {
  static dnnl::engine* engine = new dnnl::engine(dnnl::engine::kind::cpu, 0);
  return *engine;
}

dnnl::stream& ThreadStream() {
  thread_local dnnl::stream stream(CpuEngine());
  return stream;
}

dnnl::memory::data_type ToDnnlType(DataType type) {
  using dt = dnnl::memory::data_type;
  switch (type) {
    case DataType::kFloat32:
      return dt::f32;
    case DataType::kFloat16:
      return dt::f16;
    case DataType::kInt8:
      return dt::s8;
    case DataType::kUInt8:
      return dt::u8;
    case DataType::kInt32:
      return dt::s32;
    default:
      return dt::undef;
  }
}

dnnl::memory::dims ToDnnlDims(absl::Span<const int64_t> shape) {
  return dnnl::memory::dims(shape.begin(), shape.end());
}

dnnl::memory::dims DenseStrides(absl::Span<const int64_t> shape) {
  dnnl::memory::dims strides(shape.size(), 1);
  for (int i = static_cast<int>(shape.size()) - 2; i >= 0; --i) {
    strides[i] = strides[i + 1] * std::max<int64_t>(shape[i + 1], 1);
  }
  return strides;
}

dnnl::memory::desc PlainDesc(DataType type, absl::Span<const int64_t> shape) {
  // oneDNN has no 0-d memory; a scalar is a 1-element 1-d array.
  if (shape.empty()) {
    return dnnl::memory::desc({1}, ToDnnlType(type), dnnl::memory::dims{1});
  }
  return dnnl::memory::desc(ToDnnlDims(shape), ToDnnlType(type),
                            DenseStrides(shape));
}

dnnl::memory WrapTensor(const Tensor& t) {
  return WrapTensor(t, PlainDesc(t.dtype(), t.shape()));
}

dnnl::memory WrapTensor(const Tensor& t, const dnnl::memory::desc& desc) {
  // oneDNN takes a non-const handle even for read-only sources.
  return dnnl::memory(desc, CpuEngine(), const_cast<void*>(t.raw_data()));
}

std::string CpuIsaName() {
  switch (dnnl::get_effective_cpu_isa()) {
    case dnnl::cpu_isa::sse41:
      return "sse41";
    case dnnl::cpu_isa::avx:
      return "avx";
    case dnnl::cpu_isa::avx2:
      return "avx2";
    case dnnl::cpu_isa::avx2_vnni:
      return "avx2_vnni";
    case dnnl::cpu_isa::avx512_core:
      return "avx512_core";
    case dnnl::cpu_isa::avx512_core_vnni:
      return "avx512_core_vnni";
    case dnnl::cpu_isa::avx512_core_bf16:
      return "avx512_core_bf16";
    case dnnl::cpu_isa::avx512_core_amx:
      return "avx512_core_amx";
    default:
      return "other";
  }
}

bool CpuHasVnni() {
  // Ask the CPU, not oneDNN's dispatch level: CPUID leaf 7 reports AVX512_VNNI
  // in ECX bit 11 and AVX-VNNI in EAX bit 4 of sub-leaf 1.
  unsigned eax, ebx, ecx, edx;
  if (__get_cpuid_count(7, 0, &eax, &ebx, &ecx, &edx) && (ecx & (1u << 11))) {
    return true;
  }
  if (__get_cpuid_count(7, 1, &eax, &ebx, &ecx, &edx) && (eax & (1u << 4))) {
    return true;
  }
  return false;
}

int KernelThreads() { return omp_get_max_threads(); }

SerialIfSmall::SerialIfSmall(int64_t elements) {
  if (elements >= kSerialDnnlElements) return;
  const int threads = omp_get_max_threads();
  if (threads <= 1) return;
  restore_ = threads;
  omp_set_num_threads(1);
}

SerialIfSmall::~SerialIfSmall() {
  if (restore_ > 0) omp_set_num_threads(restore_);
}

}  // namespace quantd
