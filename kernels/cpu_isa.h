// The x86 instruction sets quantd's hand-written kernels have paths for
// (weight-only MatMul, quantized Add), checked at run time so that one binary
// runs on AVX-512, AVX2-only and other CPUs. Kernels take an explicit
// CpuIsa in their internal entry points so that tests can run every path
// the CPU has against the reference.
//
//   const CpuIsa isa = BestCpuIsa();
//   if (CpuSupports(CpuIsa::kAvx2)) { ... }
//
// Functions compiled for a path carry these attributes:
#ifndef QUANTD_KERNELS_CPU_ISA_H_
#define QUANTD_KERNELS_CPU_ISA_H_

#define QUANTD_AVX512 __attribute__((target("avx512f,avx512bw,avx512vl,fma")))
#define QUANTD_AVX2 __attribute__((target("avx2,fma")))

namespace quantd {

enum class CpuIsa { kPortable, kAvx2, kAvx512 };

// kAvx512: avx512f, bw, vl and fma; kAvx2: avx2 and fma; kPortable: always.
bool CpuSupports(CpuIsa isa);
CpuIsa BestCpuIsa();
const char* CpuIsaName(CpuIsa isa);  // "avx512", "avx2", "portable"

}  // namespace quantd

#endif  // QUANTD_KERNELS_CPU_ISA_H_
