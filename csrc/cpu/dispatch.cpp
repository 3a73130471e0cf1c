// Run-time choice of the kernel set: the best one the processor *and* the operating
// system support (the OS must save the wider registers, hence the XCR0 check), unless
// SIGLIP_SIMD=generic|avx2|avx512 asks for another (for tests and comparisons).
#include <cstdlib>
#include <cstring>
#include <string>
#include <utility>

#include "cpu_kernels.h"

#if defined(SIGLIP_HAVE_X86_KERNELS) && (defined(__GNUC__) || defined(__clang__))
#include <cpuid.h>
#endif

namespace siglip::cpu {
namespace {

struct X86Features {
  bool avx2Fma = false;
  bool avx512 = false;  // F + DQ + BW + VL, what kernels_avx512.cpp is compiled for
};

#if defined(SIGLIP_HAVE_X86_KERNELS) && (defined(__GNUC__) || defined(__clang__))
X86Features detectX86() {
  X86Features f;
  unsigned eax, ebx, ecx, edx;
  if (!__get_cpuid(1, &eax, &ebx, &ecx, &edx)) return f;
  const bool osxsave = ecx & (1u << 27);
  const bool fma = ecx & (1u << 12);
  const bool avx = ecx & (1u << 28);
  if (!osxsave || !avx) return f;
  unsigned xcrLo, xcrHi;
  __asm__ volatile("xgetbv" : "=a"(xcrLo), "=d"(xcrHi) : "c"(0));
  const bool osYmm = (xcrLo & 0x6) == 0x6;      // SSE + AVX state
  const bool osZmm = (xcrLo & 0xe6) == 0xe6;    // + opmask, ZMM_Hi256, Hi16_ZMM
  if (!__get_cpuid_count(7, 0, &eax, &ebx, &ecx, &edx)) return f;
  const bool avx2 = ebx & (1u << 5);
  const bool avx512f = ebx & (1u << 16), avx512dq = ebx & (1u << 17);
  const bool avx512bw = ebx & (1u << 30), avx512vl = ebx & (1u << 31);
  f.avx2Fma = osYmm && avx2 && fma;
  f.avx512 = f.avx2Fma && osZmm && avx512f && avx512dq && avx512bw && avx512vl;
  return f;
}
#else
X86Features detectX86() { return {}; }
#endif

// One instruction set: its GEMM context and its epilogues, always together.
struct Choice {
  const KernelSet* set;
  const EpilogueSet* epilogues;
  std::string reason;
};

Choice generic(std::string reason) { return {&genericKernels(), &genericEpilogues(), std::move(reason)}; }
#if defined(SIGLIP_HAVE_X86_KERNELS)
Choice avx2(std::string reason) { return {&avx2Kernels(), &avx2Epilogues(), std::move(reason)}; }
Choice avx512(std::string reason) { return {&avx512Kernels(), &avx512Epilogues(), std::move(reason)}; }
#endif
#if defined(__aarch64__)
Choice neon(std::string reason) { return {&neonKernels(), &neonEpilogues(), std::move(reason)}; }
#endif

Choice choose() {
  const X86Features f = detectX86();
  const char* env = std::getenv("SIGLIP_SIMD");
  const std::string requested = env ? env : "";
#if defined(SIGLIP_HAVE_X86_KERNELS)
  const auto best = [&f](std::string reason) {
    return f.avx512 ? avx512(std::move(reason)) : f.avx2Fma ? avx2(std::move(reason)) : generic(std::move(reason));
  };
  const std::string detected = f.avx512 ? "AVX-512 (F/DQ/BW/VL) detected"
                               : f.avx2Fma ? "AVX2+FMA detected, no usable AVX-512"
                                           : "neither AVX2+FMA nor AVX-512 usable";
  if (requested.empty()) return best(detected);
  if (requested == "generic") return generic("SIGLIP_SIMD=generic");
  if (requested == "avx2" && f.avx2Fma) return avx2("SIGLIP_SIMD=avx2");
  if (requested == "avx512" && f.avx512) return avx512("SIGLIP_SIMD=avx512");
  return best("SIGLIP_SIMD=" + requested + " is not available here; " + detected);
#elif defined(__aarch64__)
  (void)f;
  if (requested == "generic") return generic("SIGLIP_SIMD=generic");
  if (requested.empty() || requested == "neon") return neon(requested.empty() ? "AArch64: NEON is always present" : "SIGLIP_SIMD=neon");
  return neon("SIGLIP_SIMD=" + requested + " is not available here; AArch64: NEON is always present");
#else
  (void)f;
  return generic(requested.empty() ? "no x86 SIMD kernels in this build"
                                   : "SIGLIP_SIMD=" + requested + " ignored: portable build");
#endif
}

const Choice& choice() {
  static const Choice c = choose();
  return c;
}

}  // namespace

int64_t l2CacheBytes() {
#if defined(SIGLIP_HAVE_X86_KERNELS) && (defined(__GNUC__) || defined(__clang__))
  unsigned eax, ebx, ecx, edx;
  if (!__get_cpuid(0, &eax, &ebx, &ecx, &edx)) return 0;
  const bool amd = ebx == 0x68747541u;  // "Auth"enticAMD
  if (amd) {
    if (!__get_cpuid(0x80000006u, &eax, &ebx, &ecx, &edx)) return 0;
    return int64_t(ecx >> 16) * 1024;  // ECX[31:16]: L2 size in KiB
  }
  // Intel: the deterministic cache parameters (leaf 4), the level-2 data or unified cache.
  if (eax < 4) return 0;
  for (unsigned sub = 0; sub < 16; ++sub) {
    __cpuid_count(4, sub, eax, ebx, ecx, edx);
    const unsigned type = eax & 0x1f, level = (eax >> 5) & 0x7;
    if (type == 0) break;
    if (level == 2 && (type == 1 || type == 3)) {
      const int64_t ways = ((ebx >> 22) & 0x3ff) + 1, partitions = ((ebx >> 12) & 0x3ff) + 1;
      const int64_t line = (ebx & 0xfff) + 1, sets = int64_t(ecx) + 1;
      return ways * partitions * line * sets;
    }
  }
  return 0;
#else
  return 0;
#endif
}

const KernelSet& activeKernels() { return *choice().set; }
const EpilogueSet& activeEpilogues() { return *choice().epilogues; }
const char* activeKernelsReason() { return choice().reason.c_str(); }

}  // namespace siglip::cpu
