// The CUDA execution model emulated on the CPU (test only: docs/CUDA_EMULATION.md).
//
// csrc/cuda's .cu files compile as C++ against this header (the include directory next to
// it stands in for cuda_runtime.h, cuda_bf16.h, cuda_fp16.h, mma.h and math_constants.h) and
// run on src/ (runtime.cpp lists its files): every CUDA thread is a fiber, a block's fibers run in a seeded
// random order and switch only at __syncthreads, warp collectives (shuffles, __syncwarp,
// wmma::mma_sync) and the end of the kernel. Memory accesses of the kernel translation units
// reach the runtime through GCC's -fsanitize=thread instrumentation (src/hooks.cpp implements
// the hooks; libtsan is never linked), which is how shared-memory races and out-of-bounds
// device accesses are seen.
#pragma once
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <functional>
#include <memory>
#include <tuple>
#include <type_traits>
#include <utility>

#define SIGLIP_CUDA_EMULATION 1

// ---- qualifiers -------------------------------------------------------------------------
#define __global__
#define __device__
#define __host__
#define __forceinline__ inline __attribute__((always_inline))
#define __noinline__ __attribute__((noinline))
#define __launch_bounds__(...)
#define __align__(n) __attribute__((aligned(n)))
#define __constant__ const
// Static shared memory: one object for every thread of the block (the blocks of a launch run
// one after another). The kernel translation units are compiled with -fdata-sections, and
// shared.ld gathers their function-local statics (.bss._ZZ*) into one output section whose
// bounds tell the runtime what is shared memory (host-only statics there are never checked:
// only accesses made by a CUDA thread are).
#define __shared__ static
#define CUDART_NAN (__builtin_nan(""))
#define CUDART_INF (__builtin_inf())
#define CUDART_NAN_F (__builtin_nanf(""))
#define CUDART_INF_F (__builtin_inff())

struct uint3 {
  unsigned x, y, z;
};
struct dim3 {
  unsigned x = 1, y = 1, z = 1;
  constexpr dim3(unsigned vx = 1, unsigned vy = 1, unsigned vz = 1) : x(vx), y(vy), z(vz) {}
  constexpr dim3(uint3 v) : x(v.x), y(v.y), z(v.z) {}
};
struct alignas(16) uint4 {
  unsigned x, y, z, w;
};
struct alignas(16) float4 {
  float x, y, z, w;
};
struct alignas(8) float2 {
  float x, y;
};

namespace siglip_emu {

// ---- the running thread (set by the scheduler) -------------------------------------------
struct ThreadState {
  uint3 thread;
  uint3 block;
  dim3 blockDims;
  dim3 gridDims;
};
extern thread_local ThreadState* g_thread;  // null outside a kernel

[[noreturn]] void deviceTrap(const char* what);
void syncthreads(const char* file, int line);
void syncwarp(unsigned mask, const char* file, int line);
// A warp collective: every lane in `mask` calls it with its own payload; the last lane to
// arrive runs complete(payloads, mask, ctx) on all of them, then every lane continues.
using CollectiveFn = void (*)(void* const* payloads, unsigned mask);
void warpCollective(const char* kind, unsigned mask, void* payload, CollectiveFn complete, const char* file, int line);
int laneId();

// cp.async (tile_gemm_pipelined.cuh's wrappers)
void cpAsync16(void* smemDst, const void* gmemSrc, int srcBytes);
void cpAsyncCommit();
void cpAsyncWait(int pending);
// The random element ↔ (row, col) map of a wmma fragment: 32·(rows·cols/32) positions
// (row·cols + col), lane-major. Drawn once per run from the seed.
const uint16_t* fragmentLayout(int use, int rows, int cols);
void reportWmmaMisuse(const char* what, const void* ptr, unsigned ldm);

// Atomics (uninstrumented: they are never races).
unsigned long long atomicMinU64(unsigned long long* p, unsigned long long v);
float atomicAddF32(float* p, float v);
double atomicAddF64(double* p, double v);
int atomicAddI32(int* p, int v);
unsigned atomicAddU32(unsigned* p, unsigned v);
unsigned long long atomicAddU64(unsigned long long* p, unsigned long long v);
int atomicMaxI32(int* p, int v);
int atomicMinI32(int* p, int v);
int atomicCasI32(int* p, int compare, int v);

}  // namespace siglip_emu

#define threadIdx (::siglip_emu::g_thread->thread)
#define blockIdx (::siglip_emu::g_thread->block)
#define blockDim (::siglip_emu::g_thread->blockDims)
#define gridDim (::siglip_emu::g_thread->gridDims)
constexpr int warpSize = 32;

inline void __syncthreads(const char* file = __builtin_FILE(), int line = __builtin_LINE()) {
  ::siglip_emu::syncthreads(file, line);
}
inline void __syncwarp(unsigned mask = 0xffffffffu, const char* file = __builtin_FILE(), int line = __builtin_LINE()) {
  ::siglip_emu::syncwarp(mask, file, line);
}
[[noreturn]] inline void __trap() { ::siglip_emu::deviceTrap("__trap()"); }
template <class T>
inline T __ldg(const T* p) {
  return *p;
}
inline void __threadfence() { __atomic_thread_fence(__ATOMIC_SEQ_CST); }
inline void __threadfence_block() { __atomic_thread_fence(__ATOMIC_SEQ_CST); }

// ---- warp shuffles ---------------------------------------------------------------------
namespace siglip_emu {
struct ShuffleSlot {
  unsigned char value[16];
  unsigned char result[16];
  int srcLane;
  int size;
};
void shuffleComplete(void* const* payloads, unsigned mask);
template <class T>
inline T shuffle(const char* kind, unsigned mask, T v, int srcLane, const char* file, int line) {
  static_assert(sizeof(T) <= 16 && std::is_trivially_copyable<T>::value, "shuffled values are ≤ 16 bytes");
  ShuffleSlot slot;
  std::memcpy(slot.value, &v, sizeof(T));
  slot.srcLane = srcLane;
  slot.size = int(sizeof(T));
  warpCollective(kind, mask, &slot, shuffleComplete, file, line);
  T out;
  std::memcpy(&out, slot.result, sizeof(T));
  return out;
}
}  // namespace siglip_emu

template <class T>
inline T __shfl_sync(unsigned mask, T v, int src, int width = 32, const char* f = __builtin_FILE(), int l = __builtin_LINE()) {
  const int lane = ::siglip_emu::laneId();
  return ::siglip_emu::shuffle("__shfl_sync", mask, v, (lane & ~(width - 1)) + (src % width), f, l);
}
template <class T>
inline T __shfl_xor_sync(unsigned mask, T v, int laneMask, int width = 32, const char* f = __builtin_FILE(),
                         int l = __builtin_LINE()) {
  const int lane = ::siglip_emu::laneId();
  int src = lane ^ laneMask;
  if ((src & ~(width - 1)) != (lane & ~(width - 1))) src = lane;
  return ::siglip_emu::shuffle("__shfl_xor_sync", mask, v, src, f, l);
}
template <class T>
inline T __shfl_down_sync(unsigned mask, T v, unsigned delta, int width = 32, const char* f = __builtin_FILE(),
                          int l = __builtin_LINE()) {
  const int lane = ::siglip_emu::laneId();
  int src = lane + int(delta);
  if ((src & ~(width - 1)) != (lane & ~(width - 1))) src = lane;
  return ::siglip_emu::shuffle("__shfl_down_sync", mask, v, src, f, l);
}
template <class T>
inline T __shfl_up_sync(unsigned mask, T v, unsigned delta, int width = 32, const char* f = __builtin_FILE(),
                        int l = __builtin_LINE()) {
  const int lane = ::siglip_emu::laneId();
  int src = lane - int(delta);
  if (src < (lane & ~(width - 1))) src = lane;
  return ::siglip_emu::shuffle("__shfl_up_sync", mask, v, src, f, l);
}
namespace siglip_emu {
void ballotComplete(void* const* payloads, unsigned mask);
}
inline unsigned __ballot_sync(unsigned mask, int predicate, const char* f = __builtin_FILE(), int l = __builtin_LINE()) {
  unsigned slot[2] = {predicate ? 1u : 0u, 0u};
  ::siglip_emu::warpCollective("__ballot_sync", mask, slot, ::siglip_emu::ballotComplete, f, l);
  return slot[1];
}
inline int __all_sync(unsigned mask, int p) { return __ballot_sync(mask, p) == mask; }
inline int __any_sync(unsigned mask, int p) { return __ballot_sync(mask, p) != 0; }

// ---- atomics ---------------------------------------------------------------------------
inline unsigned long long atomicMin(unsigned long long* p, unsigned long long v) { return ::siglip_emu::atomicMinU64(p, v); }
inline int atomicMin(int* p, int v) { return ::siglip_emu::atomicMinI32(p, v); }
inline int atomicMax(int* p, int v) { return ::siglip_emu::atomicMaxI32(p, v); }
inline float atomicAdd(float* p, float v) { return ::siglip_emu::atomicAddF32(p, v); }
inline double atomicAdd(double* p, double v) { return ::siglip_emu::atomicAddF64(p, v); }
inline int atomicAdd(int* p, int v) { return ::siglip_emu::atomicAddI32(p, v); }
inline unsigned atomicAdd(unsigned* p, unsigned v) { return ::siglip_emu::atomicAddU32(p, v); }
inline unsigned long long atomicAdd(unsigned long long* p, unsigned long long v) { return ::siglip_emu::atomicAddU64(p, v); }
inline int atomicCAS(int* p, int c, int v) { return ::siglip_emu::atomicCasI32(p, c, v); }

// ---- math (the device's functions are the host's here) -----------------------------------
using std::isfinite;
using std::isinf;
using std::isnan;
inline float __expf(float x) { return std::exp(x); }
inline float __logf(float x) { return std::log(x); }
inline float __fdividef(float a, float b) { return a / b; }
inline float __saturatef(float x) { return x < 0 ? 0 : x > 1 ? 1 : x; }

#include "half.h"
#include "runtime_api.h"
#include "wmma.h"
#include "launch.h"
