// The two GEMMs that turn a block of ∂L/∂S into embedding gradients, shared by the fused
// sigmoid, the chunked softmax and the naive baselines:
//   ∂X (rows × d) (+)= alpha · G · Y        ∂Y (cols × d) (+)= alpha · Gᵀ · X
// with G the rows × cols gradient block (input dtype, read in place for Gᵀ), X rows × d and
// Y cols × d. No epilogue, float32 accumulation into float32 gradients: exactly what a vendor
// GEMM does best, so they run on cuBLAS when gemm_paths.cuh hands out a handle, and on the
// tile GEMM otherwise. Precision as everywhere: bf16/fp16 inputs on tensor cores, float32 as
// TF32 or (precision 'fp32') exact; accumulation and output float32.
#pragma once
#include <climits>

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

template <class T>
constexpr CublasDataType cublasDataType() {
  return std::is_same<T, float>::value ? CublasDataType::R32F
         : std::is_same<T, __nv_bfloat16>::value ? CublasDataType::R16BF
                                                 : CublasDataType::R16F;
}

// The backward GEMMs of one loss call, on `stream` of `device` (current). Holds the call's
// cuBLAS handle, if any, until destroyed: destroy it after the call's last use of the stream
// and before the stream itself.
template <class T>
class BackwardGemms {
 public:
  BackwardGemms(int device, cudaStream_t stream, bool exactFloat32)
      : cublas_(leaseCublas(device, stream)), stream_(stream), exact_(exactFloat32) {}

  void run(const GradientBlock<T>& b) const {
    if (!cublas_) {
      launchGemm<T, false, false>(GemmOperands<T>{b.g, b.ldg, b.y, b.d, b.rows, b.d, b.cols},
                                  StoreEpilogue{b.dX, b.d, b.alpha, b.accumulate}, exact_, stream_);
      launchGemm<T, true, false>(GemmOperands<T>{b.g, b.ldg, b.x, b.d, b.cols, b.d, b.rows},
                                 StoreEpilogue{b.dY, b.d, b.alpha, b.accumulate}, exact_, stream_);
      return;
    }
    if (b.rows > INT_MAX || b.cols > INT_MAX || b.d > INT_MAX || b.ldg > INT_MAX)
      throw Error(ErrorKind::Internal, "device", "cuBLAS GEMM dimensions past 2^31 (cuBLAS takes int sizes)");
    const int rows = int(b.rows), cols = int(b.cols), d = int(b.d), ldg = int(b.ldg);
    const CublasLibrary& lib = cublas_.library();
    const CublasCompute compute = !std::is_same<T, float>::value ? CublasCompute::F32
                                  : exact_                       ? CublasCompute::F32Pedantic
                                                                 : CublasCompute::F32FastTf32;
    const float beta = b.accumulate ? 1.0f : 0.0f;
    const CublasDataType in = cublasDataType<T>(), out = CublasDataType::R32F;
    check(lib.gemmAB(cublas_.handle(), rows, d, cols, b.g, ldg, b.y, d, b.dX, d, in, out, compute, b.alpha, beta),
          "dX = G·Y", rows, d, cols);
    check(lib.gemmAtB(cublas_.handle(), cols, d, rows, b.g, ldg, b.x, d, b.dY, d, in, out, compute, b.alpha, beta),
          "dY = Gᵀ·X", cols, d, rows);
  }

 private:
  void check(CublasStatus status, const char* what, int m, int n, int k) const {
    if (status == 0) return;
    throw Error(ErrorKind::Internal, "device",
                std::string("cublasGemmEx (") + what + ", " + std::to_string(m) + "×" + std::to_string(n) + "×" +
                    std::to_string(k) + ") failed: " + cublas_.library().statusText(status) + " (" +
                    cublas_.library().path + "); SIGLIP_CUBLAS=off runs this package's own kernel instead");
  }

  CublasLease cublas_;
  cudaStream_t stream_;
  bool exact_;
};

}  // namespace siglip::cuda
