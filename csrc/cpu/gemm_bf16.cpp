#include "gemm_bf16.h"

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "bf16_pack.h"
#include "thread_pool.h"

#if defined(SIGLIP_HAVE_X86_KERNELS) && (defined(__GNUC__) || defined(__clang__))
#include <cpuid.h>
#endif

namespace siglip::cpu {
namespace {

void convertMicroKernel(const Bf16Kernel& kn, int64_t kc, const void* a, const void* b, float* c, int64_t ldc,
                        bool accumulate) {
  kn.fp32->microKernel(kc, static_cast<const float*>(a), static_cast<const float*>(b), c, ldc, accumulate);
}

int64_t paddedK(const Bf16Kernel& kn, int64_t k) { return (k + kn.group - 1) / kn.group * kn.group; }
int64_t roundUp(int64_t v, int64_t to) { return (v + to - 1) / to * to; }
const char* advance(const void* p, int64_t elements, const Bf16Kernel& kn) {
  return static_cast<const char*>(p) + elements * kn.elementBytes;
}
char* advance(void* p, int64_t elements, const Bf16Kernel& kn) { return static_cast<char*>(p) + elements * kn.elementBytes; }
size_t floatsFor(const Bf16Kernel& kn, int64_t elements) { return size_t((elements * kn.elementBytes + 3) / 4); }

// C block (mc×nc) [+]= packed A (mc×kc) · packed B (kc×nc), as gemm.cpp's macroKernel.
void macroKernel(const Bf16Kernel& kn, int64_t mc, int64_t nc, int64_t kcp, const void* pa, const void* pb, float* c,
                 int64_t ldc, bool accumulate) {
  const int mr = kn.mr, nr = kn.nr;
  alignas(64) float edge[16 * 64];
  for (int64_t j = 0; j < nc; j += nr) {
    const int64_t cols = std::min<int64_t>(nr, nc - j);
    const void* bPanel = advance(pb, j * kcp, kn);
    for (int64_t i = 0; i < mc; i += mr) {
      const int64_t rows = std::min<int64_t>(mr, mc - i);
      const void* aPanel = advance(pa, i * kcp, kn);
      float* cTile = c + i * ldc + j;
      if (rows == mr && cols == nr) {
        kn.microKernel(kn, kcp, aPanel, bPanel, cTile, ldc, accumulate);
      } else {
        kn.microKernel(kn, kcp, aPanel, bPanel, edge, nr, false);
        for (int64_t r = 0; r < rows; ++r)
          for (int64_t q = 0; q < cols; ++q)
            cTile[r * ldc + q] = accumulate ? cTile[r * ldc + q] + edge[r * nr + q] : edge[r * nr + q];
      }
    }
  }
}

bool cpuHasAvx512Bf16() {
#if defined(SIGLIP_HAVE_X86_KERNELS) && (defined(__GNUC__) || defined(__clang__))
  unsigned eax, ebx, ecx, edx;
  if (!__get_cpuid_count(7, 1, &eax, &ebx, &ecx, &edx)) return false;
  return eax & (1u << 5);  // CPUID.(EAX=7, ECX=1):EAX[5] = AVX512_BF16
#else
  return false;
#endif
}

struct Bf16Choice {
  Bf16Kernel kernel;
  std::string reason;
};

Bf16Choice chooseBf16() {
  const KernelSet& fp32 = activeKernels();
  const char* env = std::getenv("SIGLIP_BF16");
  const std::string requested = env ? env : "";
  const bool hardware = cpuHasAvx512Bf16();
  std::string why;
#if defined(SIGLIP_HAVE_X86_KERNELS)
  // The native kernel also needs the AVX-512 state the fp32 set's dispatch checked. (By name:
  // calling avx512Kernels() would run code built for AVX-512 on a processor that may lack it.)
  const bool avx512 = std::strcmp(fp32.name, "avx512") == 0;
  if (requested == "convert") {
    why = "SIGLIP_BF16=convert";
  } else if (hardware && avx512) {
    return {avx512Bf16Kernel(), "AVX512_BF16 detected: vdpbf16ps micro-kernel"};
  } else {
    why = !hardware ? "no AVX512_BF16" : std::string("AVX512_BF16 present but the fp32 set in use is ") + fp32.name;
  }
#else
  (void)hardware;
  why = "no x86 SIMD kernels in this build";
#endif
  if (!requested.empty() && requested != "convert" && requested != "native") why += " (SIGLIP_BF16=" + requested + " ignored)";
  return {convertBf16Kernel(fp32), why + ": inputs rounded to bf16, widened and multiplied by the " + fp32.name +
                                       " float32 micro-kernel"};
}

const Bf16Choice& bf16Choice() {
  static const Bf16Choice c = chooseBf16();
  return c;
}

Bf16Kernel makeConvertKernel(const KernelSet& fp32) {
  return Bf16Kernel{"convert", fp32.mr, fp32.nr, fp32.mc, fp32.kc, fp32.nc, /*group=*/1, /*elementBytes=*/4,
                    packAAny<float, 1>, packBAny<float, 1>, convertMicroKernel, &fp32};
}

}  // namespace

const Bf16Kernel& convertBf16Kernel(const KernelSet& fp32) {
  // One per kernel set asked for (at most three), made on first use: only for sets the caller
  // has, never touching another set's code (built for instructions this processor may lack).
  static std::mutex mutex;
  static std::vector<std::unique_ptr<Bf16Kernel>> made;
  std::lock_guard<std::mutex> lock(mutex);
  for (const auto& k : made)
    if (k->fp32 == &fp32) return *k;
  made.push_back(std::make_unique<Bf16Kernel>(makeConvertKernel(fp32)));
  return *made.back();
}

const Bf16Kernel& activeBf16Kernel() { return bf16Choice().kernel; }
const char* activeBf16Reason() { return bf16Choice().reason.c_str(); }

Bf16Workspace::Bf16Workspace(const Bf16Kernel& kn)
    : packedA(floatsFor(kn, int64_t(kn.mc) * kn.kc)),
      packedB(floatsFor(kn, int64_t(kn.kc) * roundUp(kn.nc, kn.nr))) {}

int64_t bf16PackedSizeA(const Bf16Kernel& kn, int64_t m, int64_t k) {
  return int64_t(floatsFor(kn, roundUp(m, kn.mr) * paddedK(kn, k)));
}
int64_t bf16PackedSizeB(const Bf16Kernel& kn, int64_t k, int64_t n) {
  return int64_t(floatsFor(kn, roundUp(n, kn.nr) * paddedK(kn, k)));
}

// Whole-operand packing: the blocks the driver would pack, one k block after another (every
// block but the last has kc values of k, an even number, so padding only ever ends the last).
void bf16PackWholeA(const Bf16Kernel& kn, SourceView a, int64_t m, int64_t k, void* out) {
  const int64_t padded = roundUp(m, kn.mr);
  for (int64_t pc = 0; pc < k; pc += kn.kc)
    kn.packA(kn, a.offset(0, pc), m, std::min<int64_t>(kn.kc, k - pc), advance(out, pc * padded, kn));
}

void bf16PackWholeB(const Bf16Kernel& kn, SourceView b, int64_t k, int64_t n, void* out) {
  const int64_t padded = roundUp(n, kn.nr);
  for (int64_t pc = 0; pc < k; pc += kn.kc)
    kn.packB(kn, b.offset(pc, 0), std::min<int64_t>(kn.kc, k - pc), n, advance(out, pc * padded, kn));
}

void bf16Gemm(const Bf16Kernel& kn, int64_t m, int64_t n, int64_t k, Bf16Operand a, Bf16Operand b, float* c,
              int64_t ldc, bool accumulate, Bf16Workspace& ws) {
  const int64_t mPadded = roundUp(m, kn.mr);
  const int64_t nPadded = roundUp(n, kn.nr);
  for (int64_t jc = 0; jc < n; jc += kn.nc) {
    const int64_t nc = std::min<int64_t>(kn.nc, n - jc);
    for (int64_t pc = 0; pc < k; pc += kn.kc) {
      const int64_t kc = std::min<int64_t>(kn.kc, k - pc);
      const int64_t kcp = paddedK(kn, kc);
      const void* pb = b.packed ? static_cast<const void*>(advance(b.packed, pc * nPadded + jc * kcp, kn)) : ws.packedB.data();
      if (!b.packed) kn.packB(kn, b.view.offset(pc, jc), kc, nc, ws.packedB.data());
      const bool add = accumulate || pc > 0;
      for (int64_t ic = 0; ic < m; ic += kn.mc) {
        const int64_t mc = std::min<int64_t>(kn.mc, m - ic);
        const void* pa = a.packed ? static_cast<const void*>(advance(a.packed, pc * mPadded + ic * kcp, kn)) : ws.packedA.data();
        if (!a.packed) kn.packA(kn, a.view.offset(ic, pc), mc, kc, ws.packedA.data());
        macroKernel(kn, mc, nc, kcp, pa, pb, c + ic * ldc + jc, ldc, add);
      }
    }
  }
}

void bf16ParallelGemm(const Bf16Kernel& kn, int64_t m, int64_t n, int64_t k, SourceView a, SourceView b, float* c,
                      int64_t ldc, bool accumulate, int threads) {
  // As parallelGemm (gemm.cpp): the workers share one packed block of B, then split A's rows.
  const int64_t rowBlocks = (m + kn.mc - 1) / kn.mc;
  const int workers = int(std::max<int64_t>(1, std::min<int64_t>(threads, rowBlocks)));
  AlignedBuffer packedB(floatsFor(kn, int64_t(kn.kc) * roundUp(std::min<int64_t>(kn.nc, n), kn.nr)));
  std::vector<std::unique_ptr<AlignedBuffer>> packedA;
  for (int w = 0; w < workers; ++w) packedA.push_back(std::make_unique<AlignedBuffer>(floatsFor(kn, int64_t(kn.mc) * kn.kc)));
  SpinBarrier barrier(workers);
  ThreadPool::shared().run(workers, [&](int w) {
    for (int64_t jc = 0; jc < n; jc += kn.nc) {
      const int64_t nc = std::min<int64_t>(kn.nc, n - jc);
      const int64_t panels = (nc + kn.nr - 1) / kn.nr;
      for (int64_t pc = 0; pc < k; pc += kn.kc) {
        const int64_t kc = std::min<int64_t>(kn.kc, k - pc);
        const int64_t kcp = paddedK(kn, kc);
        const int64_t first = panels * w / workers, last = panels * (w + 1) / workers;
        if (last > first) {
          kn.packB(kn, b.offset(pc, jc + first * kn.nr), kc, std::min<int64_t>(nc, last * kn.nr) - first * kn.nr,
                   advance(packedB.data(), first * kn.nr * kcp, kn));
        }
        barrier.wait();
        const bool add = accumulate || pc > 0;
        for (int64_t block = w; block < rowBlocks; block += workers) {
          const int64_t ic = block * kn.mc;
          const int64_t mc = std::min<int64_t>(kn.mc, m - ic);
          kn.packA(kn, a.offset(ic, pc), mc, kc, packedA[size_t(w)]->data());
          macroKernel(kn, mc, nc, kcp, packedA[size_t(w)]->data(), packedB.data(), c + ic * ldc + jc, ldc, add);
        }
        barrier.wait();
      }
    }
  });
}

}  // namespace siglip::cpu
