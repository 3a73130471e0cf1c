// The few CPU routines whose speed depends on the instruction set, in two parts: the GEMM's
// context (KernelSet: register tile, cache blocking, micro-kernel) and the loss epilogues
// (EpilogueSet: the sigmoid and softmax per-tile math, exp). Everything else (packing,
// blocking, tiling, threads) is portable C++ built on these. Each instruction set (AVX-512,
// AVX2+FMA, NEON, a portable fallback) provides both; dispatch.cpp picks one set at run time
// from what the processor supports (SIGLIP_SIMD=generic|avx2|avx512 overrides), and the two
// parts always come from the same choice.
#pragma once
#include <cmath>
#include <cstdint>

#include "../core/pair_block.h"  // PairSums

namespace siglip::cpu {

using siglip::PairSums;

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

// The softmax (CLIP) loss, chunked (chunked_softmax.cpp), tile by tile. Its statistics are
// kept in units of the similarities S, not of the logits l = t·S: t > 0, so the logits'
// max is t·max S, and l - max l = t·(S - max S) is then computed from an exact difference
// (S close to its max) instead of two rounded float logits, whose rounding error
// (half an ulp of l: 3e-5 at l = 1000) would be all the loss of a converged batch. It also
// means no logit is ever formed in float: t up to e^80 is fine.
// Positives as for the sigmoid: ids compared, or the diagonal (rowOffset + r == colOffset + c).
// Pointers point at the tile's first row / column.
struct SoftmaxTileParams {
  float temperature = 1;        // t = exp(logitScale), for the float lanes
  double temperatureExact = 1;  // and in double, for the double paths
  const int32_t* rowIds = nullptr;
  const int32_t* colIds = nullptr;
  int64_t rowOffset = 0;
  int64_t colOffset = 0;
  // Pass 2 (gradient) only: the finished log-sum-exps of the tile's rows and columns as
  // (max S, log Σ exp(t·(S - max S))), the log in float for the vector lanes and in double
  // for the positives, which are recomputed in double (P ≈ T there once a batch converges);
  // the targets 1/(number of positives); the weights 1/(2N) and 1/(2M) of H.
  const float* rowMaxS = nullptr;
  const float* rowLogSum = nullptr;
  const double* rowLogSumExact = nullptr;
  const double* rowTarget = nullptr;
  const float* colMaxS = nullptr;
  const float* colLogSum = nullptr;
  const double* colLogSumExact = nullptr;
  const double* colTarget = nullptr;
  double rowScale = 0;
  double colScale = 0;

  // H at the positive (r, c) of the tile, in double: P - T cancels to a tiny difference
  // there once a batch converges, which float32 would turn into noise.
  double positiveH(int64_t r, int64_t c, float similarity) const {
    const double s = similarity;
    const double pRow = std::exp(temperatureExact * (s - double(rowMaxS[r])) - rowLogSumExact[r]) - rowTarget[r];
    const double pCol = std::exp(temperatureExact * (s - double(colMaxS[c])) - colLogSumExact[c]) - colTarget[c];
    return rowScale * pRow + colScale * pCol;
  }
};

// Pass 1's per-tile partial statistics, overwritten by softmaxStatsEpilogue: for each row
// (rows entries) and column (cols entries) of the tile, max S, Σ exp(t·(S - max S)) over
// the tile, and the sum of S over the positives and their number.
struct SoftmaxTilePartials {
  float* rowMaxS;
  double* rowSum;
  double* rowPositiveSumS;
  int64_t* rowPositives;
  float* colMaxS;
  double* colSum;
  double* colPositiveSumS;
  int64_t* colPositives;
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
};

// The loss epilogues of one instruction set: what the tile loops (fused_sigmoid.cpp,
// chunked_softmax.cpp) and the naive baselines run on each tile of similarities S.
struct EpilogueSet {
  const char* name;  // the instruction set's, as KernelSet::name

  // In place over a rows×cols tile of similarities S (leading dimension ld): adds the
  // tile's PairSums to `sums` and, when params.wantGradient, overwrites S with
  // gradScale · (-z·σ(-u)), the entries of t·G.
  void (*sigmoidEpilogue)(float* tile, int64_t ld, int64_t rows, int64_t cols, const SigmoidTileParams& params,
                          PairSums& sums);

  // x[i] = exp(x[i]) for i < n (inputs ≤ 0 in every caller; accurate to a few ulp).
  void (*expInPlace)(float* x, int64_t n);

  // Softmax pass 1 over a rows×cols tile of similarities S (leading dimension ld): fills
  // `out` (see SoftmaxTilePartials). Terms exp(t·(S - max S)) below e^-87 count as 0.
  void (*softmaxStatsEpilogue)(const float* tile, int64_t ld, int64_t rows, int64_t cols,
                               const SoftmaxTileParams& params, SoftmaxTilePartials& out);

  // Softmax pass 2, in place over a tile of S: with H = (P_row - T_row)·rowScale +
  // (P_col - T_col)·colScale, overwrites S with t·H (the entries of ∂L/∂S) and returns
  // Σ H ⊙ S (times t, the tile's share of ∂L/∂s = Σ H ⊙ logits).
  double (*softmaxGradientEpilogue)(float* tile, int64_t ld, int64_t rows, int64_t cols,
                                    const SoftmaxTileParams& params);
};

const KernelSet& genericKernels();
const EpilogueSet& genericEpilogues();
#if defined(SIGLIP_HAVE_X86_KERNELS)
const KernelSet& avx2Kernels();  // x86/kernels_avx2.cpp
const EpilogueSet& avx2Epilogues();
const KernelSet& avx512Kernels();  // x86/kernels_avx512.cpp
const EpilogueSet& avx512Epilogues();
#endif
#if defined(__aarch64__)
// arm/kernels_neon.cpp: NEON is part of AArch64, no run-time check
const KernelSet& neonKernels();
const EpilogueSet& neonEpilogues();
#endif

// The L2 cache per core in bytes, from CPUID (AMD leaf 0x80000006, Intel leaf 4); 0 when
// unknown. Kernel sets size their packed A block by it.
int64_t l2CacheBytes();

// The instruction set in use (chosen once): its GEMM context, its epilogues, and a sentence
// saying why.
const KernelSet& activeKernels();
const EpilogueSet& activeEpilogues();
const char* activeKernelsReason();

}  // namespace siglip::cpu
