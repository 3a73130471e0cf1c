// The two GEMMs that turn a block of ∂L/∂S into embedding gradients, shared by the fused
// sigmoid, the chunked softmax and the naive baselines:
//   ∂X (rows × d) (+)= alpha · G · Y        ∂Y (cols × d) (+)= alpha · Gᵀ · X
// with G the rows × cols gradient block (input dtype, read in place for Gᵀ), X rows × d and
// Y cols × d. No epilogue, float32 accumulation into float32 gradients: exactly what a vendor
// GEMM does best, so they run on cuBLAS when gemm_paths.cuh hands out a handle, and on the
// tile GEMM otherwise. Precision as everywhere: bf16/fp16 inputs on tensor cores, float32 as
// TF32 or (precision 'fp32') exact; accumulation and output float32.
#pragma once
#include "gemm_paths.cuh"
#include "tile_gemm.cuh"

namespace siglip::cuda {

template <class T>
struct GradientBlock {
  const T* g;        // rows × cols, line stride ldg
  int64_t ldg;
  const T* x;        // rows × d, line stride d
  const T* y;        // cols × d, line stride d
  int64_t rows, cols, d;
  float* dX;         // rows × d float32, line stride d
  float* dY;         // cols × d float32, line stride d
  float alpha;
  bool accumulate;   // add to dX and dY (true) or overwrite them
};

// The backward GEMMs of one loss call, on `stream` of the current device: on cuBLAS when the
// lease serves them (CublasLease::backward; a lease bound to `stream`), else on the tile GEMM.
// Borrows the lease, which must outlive it (on the call's stream GEMM1 may use it too; the
// fused sigmoid's overlapped schedule gives its second stream a lease of its own).
template <class T>
class BackwardGemms {
 public:
  BackwardGemms(const CublasLease& cublas, cudaStream_t stream, bool exactFloat32)
      : cublas_(cublas), stream_(stream), exact_(exactFloat32) {}

  void run(const GradientBlock<T>& b) const {
    if (!cublas_.backward()) {
      launchGemm<T, false, false>(GemmOperands<T>{b.g, b.ldg, b.y, b.d, b.rows, b.d, b.cols},
                                  StoreEpilogue{b.dX, b.d, b.alpha, b.accumulate}, exact_, stream_);
      launchGemm<T, true, false>(GemmOperands<T>{b.g, b.ldg, b.x, b.d, b.cols, b.d, b.rows},
                                 StoreEpilogue{b.dY, b.d, b.alpha, b.accumulate}, exact_, stream_);
      return;
    }
    CublasLease::checkSizes("backward", b.rows, b.cols, b.d, b.ldg);
    const int rows = int(b.rows), cols = int(b.cols), d = int(b.d), ldg = int(b.ldg);
    const CublasLibrary& lib = cublas_.library();
    const CublasCompute compute = cublasComputeType<T>(exact_);
    const float beta = b.accumulate ? 1.0f : 0.0f;
    const CublasDataType in = cublasDataType<T>(), out = CublasDataType::R32F;
    cublas_.check(lib.gemmAB(cublas_.handle(), rows, d, cols, b.g, ldg, b.y, d, b.dX, d, in, out, compute, b.alpha, beta),
                  "dX = G·Y", rows, d, cols, kInstead);
    cublas_.check(lib.gemmAtB(cublas_.handle(), cols, d, rows, b.g, ldg, b.x, d, b.dY, d, in, out, compute, b.alpha, beta),
                  "dY = Gᵀ·X", cols, d, rows, kInstead);
  }

 private:
  static constexpr const char* kInstead = "SIGLIP_CUBLAS=off";

  const CublasLease& cublas_;
  cudaStream_t stream_;
  bool exact_;
};

}  // namespace siglip::cuda
