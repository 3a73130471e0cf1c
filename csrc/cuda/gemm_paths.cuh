// Which kernels run the GEMMs, inside the backend: the selection (SIGLIP_CUBLAS,
// SIGLIP_TILE_GEMM, SIGLIP_GEMM1, SIGLIP_GEMM_OVERLAP, or setGemmSelection; declared in
// cuda_backend.h) and the cuBLAS handles that serve a call's GEMMs when the selection and the
// machine allow.
#pragma once
#include <climits>
#include <type_traits>

#include "cublas_loader.h"
#include "cuda_common.cuh"

namespace siglip::cuda {

// cuBLAS's names for an input dtype, and the compute type of a precision: float accumulation
// always; float32 inputs as TF32 or, for the exact 'fp32' precision, pedantic float32.
template <class T>
constexpr CublasDataType cublasDataType() {
  return std::is_same<T, float>::value ? CublasDataType::R32F
         : std::is_same<T, __nv_bfloat16>::value ? CublasDataType::R16BF
                                                 : CublasDataType::R16F;
}
template <class T>
constexpr CublasCompute cublasComputeType(bool exactFloat32) {
  return !std::is_same<T, float>::value ? CublasCompute::F32
         : exactFloat32                 ? CublasCompute::F32Pedantic
                                        : CublasCompute::F32FastTf32;
}

// The tile GEMM's main loop for the next launch (launchGemm). Throws as gemmSelection.
TileGemm selectedTileGemm();

// The GEMMs of a loss call that may run on cuBLAS; the selection decides which do.
struct CublasUse {
  bool gemm1 = false;    // X·Yᵀ of the fused sigmoid (GemmSelection::forward)
  bool backward = true;  // ∂X (+)= G·Y and ∂Y (+)= Gᵀ·X (GemmSelection::backward)
};

// A cuBLAS handle held by one loss call on one stream, for every GEMM the call runs on cuBLAS
// there: bound to that stream and to the handle's own workspace (so the algorithm cuBLAS
// picks, and the bits, do not depend on what other streams do). Empty (false) when none of
// them does. A call whose GEMMs run on two streams at once (the fused sigmoid with
// SIGLIP_GEMM_OVERLAP=on: GEMM1 on the call's stream, the backward GEMMs on a second one)
// holds one lease per stream. On release the handle waits for its stream to go idle, then
// returns to its device's pool: a handle and its workspace are never in use by two streams at
// once. Handles are created on first need, one per concurrent lease per device, and kept for
// the life of the process.
class CublasLease {
 public:
  CublasLease() = default;
  CublasLease(CublasLease&& other) noexcept;
  CublasLease& operator=(CublasLease&& other) noexcept;
  CublasLease(const CublasLease&) = delete;
  CublasLease& operator=(const CublasLease&) = delete;
  ~CublasLease();

  explicit operator bool() const { return handle_ != nullptr; }
  bool gemm1() const { return handle_ && gemm1_; }        // X·Yᵀ runs on cuBLAS
  bool backward() const { return handle_ && backward_; }  // the backward GEMMs run on cuBLAS
  const CublasLibrary& library() const { return *library_; }
  CublasHandle handle() const { return handle_; }

  // Throws siglip::Error when a cuBLAS call returned `status` ≠ success: `what` is the product,
  // m × n × k its shape, `instead` the setting that avoids cuBLAS for it.
  void check(CublasStatus status, const char* what, int64_t m, int64_t n, int64_t k, const char* instead) const;
  // Throws unless every size fits cuBLAS's int arguments.
  template <class... Sizes>
  static void checkSizes(const char* what, Sizes... sizes) {
    if (((int64_t(sizes) > INT_MAX) || ...)) throwTooLarge(what);
  }

 private:
  friend CublasLease leaseCublas(int device, cudaStream_t stream, const GemmSelection& selection, CublasUse use);
  void release() noexcept;
  [[noreturn]] static void throwTooLarge(const char* what);

  const CublasLibrary* library_ = nullptr;
  CublasHandle handle_ = nullptr;
  bool gemm1_ = false, backward_ = false;
  DeviceBuffer* workspace_ = nullptr;
  int device_ = -1;
  cudaStream_t stream_ = nullptr;
};

// cuBLAS for the GEMMs of one call on `device` (the current device) and `stream` that `use`
// names and `selection` puts there: a lease when cuBLAS can be used, an empty one when all of
// them run on the tile GEMM (none selected for cuBLAS; or only the backward GEMMs, as auto,
// and cuBLAS did not load or cannot create a handle on this device: remembered, and reported by
// gemmPathInfo). Throws siglip::Error when SIGLIP_CUBLAS=on (for the backward GEMMs) or
// SIGLIP_GEMM1=cublas (for GEMM1, never run on the tile GEMM instead) and cuBLAS cannot be
// used, when a cuBLAS set-up call fails, or when the handle's workspace cannot be allocated
// (OutOfMemory).
CublasLease leaseCublas(int device, cudaStream_t stream, const GemmSelection& selection, CublasUse use = {});

}  // namespace siglip::cuda
