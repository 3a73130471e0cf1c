// Shared CUDA plumbing: error translation, the current-device guard, dtype traits.
#pragma once
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <string>
#include <utility>

#include "../core/errors.h"
#include "cuda_backend.h"

namespace siglip::cuda {

// Turns a CUDA error into siglip::Error: out-of-memory keeps its own kind so that callers
// (and JavaScript) can tell it apart; everything else names the failing call.
[[noreturn]] inline void throwCudaError(cudaError_t status, const char* what) {
  cudaGetLastError();  // clear the sticky-free error state so the next call starts clean
  const std::string text = std::string(what) + ": " + cudaGetErrorName(status) + " (" + cudaGetErrorString(status) + ")";
  if (status == cudaErrorMemoryAllocation) throw Error(ErrorKind::OutOfMemory, "device", "CUDA out of memory in " + text);
  throw Error(ErrorKind::Internal, "device", "CUDA error in " + text);
}

#define SIGLIP_CUDA_CHECK(call)                                  \
  do {                                                           \
    const cudaError_t siglipStatus_ = (call);                    \
    if (siglipStatus_ != cudaSuccess) ::siglip::cuda::throwCudaError(siglipStatus_, #call); \
  } while (0)

// Kernel launches report configuration errors at once and faults at the next sync.
#define SIGLIP_CUDA_CHECK_LAUNCH(name) SIGLIP_CUDA_CHECK(cudaGetLastError())

// Makes `device` current for a scope and restores the previous one.
class DeviceGuard {
 public:
  explicit DeviceGuard(int device) {
    SIGLIP_CUDA_CHECK(cudaGetDevice(&previous_));
    if (device != previous_) SIGLIP_CUDA_CHECK(cudaSetDevice(device));
  }
  ~DeviceGuard() { cudaSetDevice(previous_); }
  DeviceGuard(const DeviceGuard&) = delete;
  DeviceGuard& operator=(const DeviceGuard&) = delete;

 private:
  int previous_ = 0;
};

// Element types of the input matrices and of the stored gradient tile G.
template <class T> struct DTypeTraits;
template <> struct DTypeTraits<float> {
  static __device__ __forceinline__ float toFloat(float v) { return v; }
  static __device__ __forceinline__ float fromFloat(float v) { return v; }
};
template <> struct DTypeTraits<__nv_bfloat16> {
  static __device__ __forceinline__ float toFloat(__nv_bfloat16 v) { return __bfloat162float(v); }
  static __device__ __forceinline__ __nv_bfloat16 fromFloat(float v) { return __float2bfloat16(v); }
};
template <> struct DTypeTraits<__half> {
  static __device__ __forceinline__ float toFloat(__half v) { return __half2float(v); }
  static __device__ __forceinline__ __half fromFloat(float v) { return __float2half(v); }
};

// G's entries -z·σ(-u) lie in [-1, 1]; in float16 the negatives' values (≈ e^-10 at the
// default t, b) would sit in the subnormal range, so float16 G is stored scaled by 2^15
// (still ≤ 65504) and the scale is divided out of the backward GEMMs' alpha.
template <class T> constexpr float kGradStoreScale = 1.0f;
template <> constexpr float kGradStoreScale<__half> = 32768.0f;

// Every kernel launch goes through here: `<<<…>>>` under nvcc; in the CPU emulation of the
// CUDA execution model (test/cuda-emulated, SIGLIP_CUDA_EMULATION), which compiles these
// sources as C++, the emulator's launcher. The arguments convert to the kernel's parameter
// types as they would at a `<<<…>>>` launch.
template <class... Params, class... Args>
inline void launchKernel(void (*kernel)(Params...), dim3 grid, dim3 block, size_t sharedBytes, cudaStream_t stream,
                         Args&&... args) {
#ifdef SIGLIP_CUDA_EMULATION
  ::siglip_emu::launch(kernel, grid, block, sharedBytes, stream, std::forward<Args>(args)...);
#else
  kernel<<<grid, block, sharedBytes, stream>>>(std::forward<Args>(args)...);
#endif
}

// `extern __shared__ T name[]` (dynamic shared memory), which C++ cannot spell.
#ifdef SIGLIP_CUDA_EMULATION
#define SIGLIP_DYNAMIC_SHARED(type, name) SIGLIP_EMU_DYNAMIC_SHARED(type, name)
#else
#define SIGLIP_DYNAMIC_SHARED(type, name) extern __shared__ __align__(128) type name[]
#endif

inline int blocksFor(int64_t items, int threads) { return int((items + threads - 1) / threads); }

}  // namespace siglip::cuda
