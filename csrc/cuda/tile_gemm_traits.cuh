// The tile GEMM's traits, shared by its kernels (tile_gemm_simple.cuh, tile_gemm_pipelined.cuh):
// the operands, the per-dtype tensor-core types, the CTA and warp tile, the shared-memory
// layout of one k slice, and one warp's MMAs over a staged slice. Both tensor-core kernels use
// the same 128×128 CTA tile and warp split, so they launch the same grid and every epilogue
// (and every per-CTA partial array sized by gemmBlockCount) sees the same tiles whichever runs.
//
// Layout is a compile-time choice per operand, so X·Yᵀ, G·Y and Gᵀ·X need no transposes:
//   A(r, kk) = a[r·lda + kk]   (row-major)   or a[kk·lda + r]   (A_COL)
//   B(kk, c) = b[kk·ldb + c]   (row-major)   or b[c·ldb + kk]   (B_COL)
// In shared memory the dimension that is contiguous in global memory stays contiguous (the
// copies are raw), padded by 16 bytes per line so that WMMA's 32-byte fragment alignment and
// the bank spread both hold.
#pragma once
#include <mma.h>

#include <cstdint>
#include <type_traits>

#include "cuda_common.cuh"

namespace siglip::cuda {

template <class T>
struct GemmOperands {
  const T* a;
  int64_t lda;
  const T* b;
  int64_t ldb;
  int64_t m, n, k;
};

template <class T>
struct TensorCoreTraits;  // per input dtype: fragment precision, the k of one MMA, the line padding

template <>
struct TensorCoreTraits<__nv_bfloat16> {
  using Precision = __nv_bfloat16;
  static constexpr int kStep = 16;
  static constexpr int kPad = 8;
  template <class Frag> __device__ static void convert(Frag&) {}
};
template <>
struct TensorCoreTraits<__half> {
  using Precision = __half;
  static constexpr int kStep = 16;
  static constexpr int kPad = 8;
  template <class Frag> __device__ static void convert(Frag&) {}
};
template <>
struct TensorCoreTraits<float> {  // TF32 tensor cores: float in shared memory, rounded on load
  using Precision = nvcuda::wmma::precision::tf32;
  static constexpr int kStep = 8;
  static constexpr int kPad = 4;
  template <class Frag> __device__ static void convert(Frag& f) {
#pragma unroll
    for (int t = 0; t < f.num_elements; ++t) f.x[t] = nvcuda::wmma::__float_to_tf32(f.x[t]);
  }
};

// The CTA tile: 128×128, 8 warps in 2 rows × 4 columns, each warp 64×32 (4 × 2 fragments).
constexpr int kTcBM = 128, kTcBN = 128, kTcThreads = 256;
constexpr int kTcWarpM = 64, kTcWarpN = 32;
constexpr int kTcFragM = kTcWarpM / 16, kTcFragN = kTcWarpN / 16;

template <class T>
using TcAccumulator = nvcuda::wmma::fragment<nvcuda::wmma::accumulator, 16, 16, TensorCoreTraits<T>::kStep, float>;

// One k slice in shared memory: A's BM × BK block then B's BK × BN block, each stored with its
// global-contiguous dimension as the line (ld = line length + padding).
template <class T, bool A_COL, bool B_COL, int BK>
struct SliceLayout {
  static constexpr int kPad = TensorCoreTraits<T>::kPad;
  static constexpr int kALd = A_COL ? kTcBM + kPad : BK + kPad;
  static constexpr int kBLd = B_COL ? BK + kPad : kTcBN + kPad;
  static constexpr int kAElems = A_COL ? BK * kALd : kTcBM * kALd;
  static constexpr int kBElems = B_COL ? kTcBN * kBLd : BK * kBLd;
  static constexpr int kElems = kAElems + kBElems;
  static constexpr int kBytes = kElems * int(sizeof(T));
};

// One warp's MMAs over a staged slice: acc += A(warp's rows, slice) · B(slice, warp's columns).
template <class T, bool A_COL, bool B_COL, int BK>
__device__ __forceinline__ void warpSliceMma(const T* as, const T* bs, int warpRow, int warpCol,
                                             TcAccumulator<T> (&acc)[kTcFragM][kTcFragN]) {
  namespace wmma = nvcuda::wmma;
  using Tr = TensorCoreTraits<T>;
  using L = SliceLayout<T, A_COL, B_COL, BK>;
  using ALayout = typename std::conditional<A_COL, wmma::col_major, wmma::row_major>::type;
  using BLayout = typename std::conditional<B_COL, wmma::col_major, wmma::row_major>::type;
  constexpr int KS = Tr::kStep;
#pragma unroll
  for (int kk = 0; kk < BK; kk += KS) {
    wmma::fragment<wmma::matrix_a, 16, 16, KS, typename Tr::Precision, ALayout> a[kTcFragM];
    wmma::fragment<wmma::matrix_b, 16, 16, KS, typename Tr::Precision, BLayout> b[kTcFragN];
#pragma unroll
    for (int i = 0; i < kTcFragM; ++i) {
      const int r = warpRow * kTcWarpM + i * 16;
      wmma::load_matrix_sync(a[i], A_COL ? as + kk * L::kALd + r : as + r * L::kALd + kk, L::kALd);
      Tr::convert(a[i]);
    }
#pragma unroll
    for (int j = 0; j < kTcFragN; ++j) {
      const int c = warpCol * kTcWarpN + j * 16;
      wmma::load_matrix_sync(b[j], B_COL ? bs + c * L::kBLd + kk : bs + kk * L::kBLd + c, L::kBLd);
      Tr::convert(b[j]);
    }
#pragma unroll
    for (int i = 0; i < kTcFragM; ++i)
#pragma unroll
      for (int j = 0; j < kTcFragN; ++j) wmma::mma_sync(acc[i][j], a[i], b[j], acc[i][j]);
  }
}

}  // namespace siglip::cuda
