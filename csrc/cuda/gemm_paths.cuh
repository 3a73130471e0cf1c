// Which kernels run the GEMMs, inside the backend: the selection (SIGLIP_CUBLAS,
// SIGLIP_TILE_GEMM, or setGemmSelection; declared in cuda_backend.h) and the cuBLAS handles
// that serve the backward GEMMs when the selection and the machine allow.
#pragma once
#include "cublas_loader.h"
#include "cuda_common.cuh"

namespace siglip::cuda {

// The tile GEMM's main loop for the next launch (launchGemm). Throws as gemmSelection.
TileGemm selectedTileGemm();

// A cuBLAS handle held by one loss call: bound to the call's stream and to the handle's own
// workspace (so the algorithm cuBLAS picks, and the bits, do not depend on what other streams
// do). Empty (false) when the backward GEMMs are to run on the tile GEMM. On release the
// handle waits for its stream to go idle, then returns to its device's pool: a handle and its
// workspace are never in use by two streams at once. Handles are created on first need, one
// per concurrent call per device, and kept for the life of the process.
class CublasLease {
 public:
  CublasLease() = default;
  CublasLease(CublasLease&& other) noexcept;
  CublasLease& operator=(CublasLease&& other) noexcept;
  CublasLease(const CublasLease&) = delete;
  CublasLease& operator=(const CublasLease&) = delete;
  ~CublasLease();

  explicit operator bool() const { return handle_ != nullptr; }
  const CublasLibrary& library() const { return *library_; }
  CublasHandle handle() const { return handle_; }

 private:
  friend CublasLease leaseCublas(int device, cudaStream_t stream);
  void release() noexcept;

  const CublasLibrary* library_ = nullptr;
  CublasHandle handle_ = nullptr;
  DeviceBuffer* workspace_ = nullptr;
  int device_ = -1;
  cudaStream_t stream_ = nullptr;
};

// cuBLAS for the backward GEMMs of one call on `device` (the current device) and `stream`: a
// lease when the selection allows and cuBLAS can be used there, an empty one when the tile
// GEMM is to run (SIGLIP_CUBLAS=off; or auto, and cuBLAS did not load or cannot create a
// handle on this device: remembered, and reported by gemmPathInfo). Throws siglip::Error when
// SIGLIP_CUBLAS=on and cuBLAS cannot be used, when a cuBLAS set-up call fails, or when the
// handle's workspace cannot be allocated (OutOfMemory).
CublasLease leaseCublas(int device, cudaStream_t stream);

}  // namespace siglip::cuda
