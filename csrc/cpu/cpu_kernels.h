// One CPU "kernel set": the few routines whose speed depends on the instruction set.
// Everything else (packing, blocking, tiling, threads) is portable C++ built on these.
// Sets exist for AVX-512, AVX2+FMA and a portable fallback; dispatch.cpp picks one at
// run time from what the processor supports (SIGLIP_SIMD=generic|avx2|avx512 overrides).
#pragma once
#include <cstdint>

namespace siglip::cpu {

// Per-tile inputs of the sigmoid epilogue. Ids point at the tile's first row / column
// (both null: the pair (i, j) is positive iff rowOffset + i == colOffset + j).
struct SigmoidTileParams {
  float temperature = 1;   // t = exp(logitScale)
  float bias = 0;          // b
  float gradScale = 0;     // t / N: turns -z·σ(-u) into the entries of t·G (SPEC.md)
  const int32_t* rowIds = nullptr;
  const int32_t* colIds = nullptr;
  int64_t rowOffset = 0;   // global index of the tile's first image row
  int64_t colOffset = 0;   // global index of the tile's first text row
  bool wantGradient = false;
};

// Float64 sums over the pairs of a tile (or of a row block): with u = z·(t·S + b),
//   softplus  = Σ softplus(-u)            (N · loss contribution)
//   dLogit    = Σ -z·σ(-u)                (N · ∂L/∂b contribution)
//   dLogitSim = Σ -z·σ(-u) · S            (N/t · ∂L/∂s contribution)
struct PairSums {
  double softplus = 0;
  double dLogit = 0;
  double dLogitSim = 0;
  void add(const PairSums& o) {
    softplus += o.softplus;
    dLogit += o.dLogit;
    dLogitSim += o.dLogitSim;
  }
};

struct KernelSet {
  const char* name;
  // Register tile of the micro-kernel: MR rows × NR columns of C.
  int mr;
  int nr;
  // Cache blocking of the GEMM driver (multiples of mr / nr where it matters).
  int mc;
  int kc;
  int nc;

  // C[MR×NR] = (accumulate ? C : 0) + Σ_k A[k·MR + r] · B[k·NR + c], over kc steps.
  // A and B are packed panels (gemm.cpp); C is row-major with leading dimension ldc.
  // The k-sum is formed from zero and then added to C, so a full tile and an edge tile
  // (computed into a scratch tile and copied) round identically.
  void (*microKernel)(int64_t kc, const float* a, const float* b, float* c, int64_t ldc, bool accumulate);

  // In place over a rows×cols tile of similarities S (leading dimension ld): adds the
  // tile's PairSums to `sums` and, when params.wantGradient, overwrites S with
  // gradScale · (-z·σ(-u)), the entries of t·G.
  void (*sigmoidEpilogue)(float* tile, int64_t ld, int64_t rows, int64_t cols, const SigmoidTileParams& params,
                          PairSums& sums);

  // x[i] = exp(x[i]) for i < n (inputs ≤ 0 in every caller; accurate to a few ulp).
  void (*expInPlace)(float* x, int64_t n);
};

const KernelSet& genericKernels();
#if defined(SIGLIP_HAVE_X86_KERNELS)
const KernelSet& avx2Kernels();
const KernelSet& avx512Kernels();
#endif

// The set in use (chosen once) and a sentence saying why.
const KernelSet& activeKernels();
const char* activeKernelsReason();

}  // namespace siglip::cpu
