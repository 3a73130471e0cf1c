// The CUDA runtime API on the emulation: devices and errors, memory and copies, streams and
// events, host functions, and the extensions the test doubles call (siglip_emu_*).
#include <sys/mman.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <memory>
#include <mutex>
#include <vector>

#include "runtime_internal.h"

// ---- the runtime API -----------------------------------------------------------------------------------
using namespace siglip_emu;

namespace {
bool validDevice(int d) { return d >= 0 && d < config().devices; }
bool isPinned(const void* p);
std::map<const void*, size_t> g_pinned;
bool isPinned(const void* p) {
  auto it = g_pinned.upper_bound(p);
  if (it == g_pinned.begin()) return false;
  --it;
  return static_cast<const char*>(p) < static_cast<const char*>(it->first) + it->second;
}
bool isDevice(const void* p) { return inArena(reinterpret_cast<uintptr_t>(p)); }
}  // namespace

cudaError_t cudaGetDeviceCount(int* count) {
  ApiLock lock;
  *count = config().devices;
  return config().devices > 0 ? cudaSuccess : status(cudaErrorNoDevice);
}
cudaError_t cudaGetDevice(int* device) {
  ApiLock lock;
  *device = g_device;
  return cudaSuccess;
}
cudaError_t cudaSetDevice(int device) {
  ApiLock lock;
  if (!validDevice(device)) return status(cudaErrorInvalidDevice);
  g_device = device;
  return cudaSuccess;
}
cudaError_t cudaGetDeviceProperties(cudaDeviceProp* p, int device) {
  ApiLock lock;
  if (!validDevice(device)) return status(cudaErrorInvalidDevice);
  std::memset(p, 0, sizeof *p);
  std::snprintf(p->name, sizeof p->name, "NVIDIA H100 80GB HBM3 (emulated on the CPU)");
  p->totalGlobalMem = config().deviceMemory;
  p->sharedMemPerBlock = kStaticSmemLimit;
  p->regsPerBlock = 65536;
  p->warpSize = 32;
  p->maxThreadsPerBlock = 1024;
  p->maxThreadsDim[0] = p->maxThreadsDim[1] = 1024, p->maxThreadsDim[2] = 64;
  p->maxGridSize[0] = 0x7fffffff, p->maxGridSize[1] = p->maxGridSize[2] = 65535;
  p->clockRate = 1980000;
  p->major = 9, p->minor = 0;
  p->multiProcessorCount = kSms;
  p->l2CacheSize = 50 * 1024 * 1024;
  p->sharedMemPerBlockOptin = kOptinSmemLimit;
  p->sharedMemPerMultiprocessor = 228 * 1024;
  p->memoryBusWidth = 5120;
  return cudaSuccess;
}
cudaError_t cudaDeviceGetAttribute(int* v, cudaDeviceAttr attr, int device) {
  ApiLock lock;
  if (!validDevice(device)) return status(cudaErrorInvalidDevice);
  switch (attr) {
    case cudaDevAttrMaxThreadsPerBlock: *v = 1024; break;
    case cudaDevAttrMaxSharedMemoryPerBlock: *v = int(kStaticSmemLimit); break;
    case cudaDevAttrWarpSize: *v = 32; break;
    case cudaDevAttrMultiProcessorCount: *v = kSms; break;
    case cudaDevAttrComputeCapabilityMajor: *v = 9; break;
    case cudaDevAttrComputeCapabilityMinor: *v = 0; break;
    case cudaDevAttrMaxSharedMemoryPerBlockOptin: *v = int(kOptinSmemLimit); break;
    default: return status(cudaErrorInvalidValue);
  }
  return cudaSuccess;
}
cudaError_t cudaDeviceSynchronize() {
  ApiLock lock;
  runUntil([] { return deviceIdle(g_device); });
  collectStreams();
  return live();
}
cudaError_t cudaDeviceReset() { return cudaDeviceSynchronize(); }
cudaError_t cudaRuntimeGetVersion(int* v) {
  ApiLock lock;
  *v = 13000;
  return cudaSuccess;
}
cudaError_t cudaDriverGetVersion(int* v) {
  ApiLock lock;
  *v = 13000;
  return cudaSuccess;
}
cudaError_t cudaGetLastError() {
  ApiLock lock;
  const cudaError_t e = g_lastError != cudaSuccess ? g_lastError : g_sticky;
  g_lastError = cudaSuccess;
  return e;
}
cudaError_t cudaPeekAtLastError() { return g_lastError != cudaSuccess ? g_lastError : g_sticky; }
const char* cudaGetErrorName(cudaError_t e) {
  switch (e) {
    case cudaSuccess: return "cudaSuccess";
    case cudaErrorInvalidValue: return "cudaErrorInvalidValue";
    case cudaErrorMemoryAllocation: return "cudaErrorMemoryAllocation";
    case cudaErrorInvalidConfiguration: return "cudaErrorInvalidConfiguration";
    case cudaErrorInvalidDevice: return "cudaErrorInvalidDevice";
    case cudaErrorNoDevice: return "cudaErrorNoDevice";
    case cudaErrorInvalidResourceHandle: return "cudaErrorInvalidResourceHandle";
    case cudaErrorLaunchFailure: return "cudaErrorLaunchFailure";
    case cudaErrorIllegalAddress: return "cudaErrorIllegalAddress";
    case cudaErrorNotReady: return "cudaErrorNotReady";
    default: return "cudaErrorUnknown";
  }
}
const char* cudaGetErrorString(cudaError_t e) {
  switch (e) {
    case cudaSuccess: return "no error";
    case cudaErrorInvalidValue: return "invalid argument";
    case cudaErrorMemoryAllocation: return "out of memory";
    case cudaErrorInvalidConfiguration: return "invalid configuration argument";
    case cudaErrorInvalidDevice: return "invalid device ordinal";
    case cudaErrorNoDevice: return "no CUDA-capable device is detected";
    case cudaErrorLaunchFailure: return "unspecified launch failure (emulated kernel reported a fault)";
    default: return cudaGetErrorName(e);
  }
}

cudaError_t cudaMalloc(void** p, size_t bytes) {
  ApiLock lock;
  *p = nullptr;
  if (g_sticky != cudaSuccess) return status(g_sticky);
  std::lock_guard<std::mutex> memoryLock(g_memoryMutex);
  if (bytes == 0) return cudaSuccess;
  size_t& live = g_liveBytes[size_t(g_device)];
  if (bytes > config().deviceMemory || live > config().deviceMemory - bytes) return status(cudaErrorMemoryAllocation);
  const size_t pages = (bytes + kPage - 1) / kPage * kPage;
  if (g_arenaUsed + pages + kPage > kArenaBytes) return status(cudaErrorMemoryAllocation);
  unsigned char* region = g_arena + g_arenaUsed;
  g_arenaUsed += pages + kPage;  // one guard page after each allocation, never mapped
  if (mprotect(region, pages, PROT_READ | PROT_WRITE) != 0) return status(cudaErrorMemoryAllocation);
  // Right-aligned (start 256-byte aligned, as cudaMalloc's): a read past the end soon faults.
  unsigned char* data = region + (pages - bytes) / 256 * 256;
  std::memset(data, 0xa5, bytes);  // not zero: device memory starts undefined
  g_allocations[reinterpret_cast<uintptr_t>(data)] = Allocation{reinterpret_cast<uintptr_t>(data), bytes, g_device, true};
  live += bytes;
  *p = data;
  return cudaSuccess;
}
cudaError_t cudaFree(void* p) {
  ApiLock lock;
  if (!p) return cudaSuccess;
  runUntil([] { return deviceIdle(g_device); });  // cudaFree synchronises the device
  std::lock_guard<std::mutex> memoryLock(g_memoryMutex);
  auto it = g_allocations.find(reinterpret_cast<uintptr_t>(p));
  if (it == g_allocations.end() || !it->second.live) {
    report("cudaFree", "of %p, which is not a live device allocation", p);
    return status(cudaErrorInvalidDevicePointer);
  }
  Allocation& a = it->second;
  a.live = false;
  g_liveBytes[size_t(a.device)] -= a.bytes;
  const uintptr_t page = a.begin / kPage * kPage;
  const size_t span = (a.begin + a.bytes + kPage - 1) / kPage * kPage - page;
  mprotect(reinterpret_cast<void*>(page), span, PROT_NONE);
  madvise(reinterpret_cast<void*>(page), span, MADV_DONTNEED);
  g_lastHit = nullptr;
  return live();
}
cudaError_t cudaMallocHost(void** p, size_t bytes) {
  ApiLock lock;
  *p = std::aligned_alloc(4096, (bytes + 4095) / 4096 * 4096 + 4096);
  if (!*p) return status(cudaErrorMemoryAllocation);
  g_pinned[*p] = bytes;
  return cudaSuccess;
}
cudaError_t cudaFreeHost(void* p) {
  ApiLock lock;
  g_pinned.erase(p);
  std::free(p);
  return cudaSuccess;
}
cudaError_t cudaMemGetInfo(size_t* freeBytes, size_t* totalBytes) {
  ApiLock lock;
  *totalBytes = config().deviceMemory;
  *freeBytes = config().deviceMemory - g_liveBytes[size_t(g_device)];
  return live();
}
cudaError_t cudaPointerGetAttributes(cudaPointerAttributes* a, const void* p) {
  ApiLock lock;
  std::memset(a, 0, sizeof *a);
  const Allocation* hit = isDevice(p) ? findAllocation(reinterpret_cast<uintptr_t>(p)) : nullptr;
  if (hit && hit->live && reinterpret_cast<uintptr_t>(p) < hit->begin + hit->bytes) {
    a->type = cudaMemoryTypeDevice;
    a->device = hit->device;
    a->devicePointer = const_cast<void*>(p);
  } else {
    a->type = isPinned(p) ? cudaMemoryTypeHost : cudaMemoryTypeUnregistered;
    a->device = -1;
    a->hostPointer = const_cast<void*>(p);
  }
  return cudaSuccess;
}

namespace {
// Checks that [p, p + bytes) is within one live allocation when p is device memory.
bool checkRange(const void* p, size_t bytes, const char* what) {
  if (!bytes || !isDevice(p)) return true;
  const auto a = reinterpret_cast<uintptr_t>(p);
  const Allocation* hit = findAllocation(a);
  if (hit && hit->live && a + bytes <= hit->begin + hit->bytes) return true;
  report("device memory out of bounds", "%s of %zu bytes at %p is not inside one live allocation", what, bytes, p);
  return false;
}

cudaError_t copyAsync(void* dst, const void* src, size_t bytes, cudaStream_t s, bool hostWaits) {
  if (g_sticky != cudaSuccess) return status(g_sticky);
  if (!checkRange(dst, bytes, "cudaMemcpy destination") || !checkRange(src, bytes, "cudaMemcpy source"))
    return status(cudaErrorInvalidValue);
  if (!bytes) return cudaSuccess;
  Stream* stream = streamOf(s);
  if (!isDevice(src) && !isPinned(src)) {
    // From pageable memory the runtime stages the source before returning.
    auto staged = std::make_shared<std::vector<unsigned char>>(static_cast<const unsigned char*>(src),
                                                               static_cast<const unsigned char*>(src) + bytes);
    enqueue(stream, "memcpy", [dst, staged] { std::memcpy(dst, staged->data(), staged->size()); });
  } else {
    enqueue(stream, "memcpy", [dst, src, bytes] { std::memmove(dst, src, bytes); });
  }
  if (hostWaits) runUntil(stream->last);
  return live();
}
}  // namespace

cudaError_t cudaMemcpy(void* dst, const void* src, size_t bytes, cudaMemcpyKind) {
  ApiLock lock;
  // Synchronous towards pageable host memory; host → device and device → device return once
  // the source is staged or the copy is queued (the legacy stream orders what follows).
  return copyAsync(dst, src, bytes, nullptr, !isDevice(dst));
}
cudaError_t cudaMemcpyAsync(void* dst, const void* src, size_t bytes, cudaMemcpyKind, cudaStream_t s) {
  ApiLock lock;
  // Towards pageable host memory the copy is synchronous, as the real runtime's.
  return copyAsync(dst, src, bytes, s, !isDevice(dst) && !isPinned(dst));
}
cudaError_t cudaMemsetAsync(void* dst, int value, size_t bytes, cudaStream_t s) {
  ApiLock lock;
  if (g_sticky != cudaSuccess) return status(g_sticky);
  if (!isDevice(dst) || !checkRange(dst, bytes, "cudaMemset")) return status(cudaErrorInvalidValue);
  if (bytes) enqueue(streamOf(s), "memset", [dst, value, bytes] { std::memset(dst, value, bytes); });
  return live();
}
cudaError_t cudaMemset(void* dst, int value, size_t bytes) { return cudaMemsetAsync(dst, value, bytes, nullptr); }

cudaError_t cudaStreamCreateWithFlags(cudaStream_t* s, unsigned flags) {
  ApiLock lock;
  Stream* stream = newStream(g_device, !(flags & cudaStreamNonBlocking), false);
  *s = reinterpret_cast<cudaStream_t>(stream);
  return cudaSuccess;
}
cudaError_t cudaStreamCreate(cudaStream_t* s) { return cudaStreamCreateWithFlags(s, cudaStreamDefault); }
cudaError_t cudaStreamDestroy(cudaStream_t s) {
  ApiLock lock;
  Stream* stream = streamOf(s);
  if (stream->legacy || s == cudaStreamPerThread) return status(cudaErrorInvalidResourceHandle);
  stream->destroyed = true;  // its queued work still runs
  collectStreams();
  return cudaSuccess;
}
cudaError_t cudaStreamSynchronize(cudaStream_t s) {
  ApiLock lock;
  Stream* stream = streamOf(s);
  if (stream->last) runUntil(stream->last);
  return live();
}
cudaError_t cudaStreamQuery(cudaStream_t s) {
  ApiLock lock;
  Stream* stream = streamOf(s);
  // The device works while the host polls: ready work runs now, without waiting for other threads.
  if (stream->last) runUntil(stream->last, false);
  return stream->queue.empty() ? live() : cudaErrorNotReady;
}

cudaError_t cudaEventCreateWithFlags(cudaEvent_t* e, unsigned) {
  ApiLock lock;
  *e = reinterpret_cast<cudaEvent_t>(new Event());
  return cudaSuccess;
}
cudaError_t cudaEventCreate(cudaEvent_t* e) { return cudaEventCreateWithFlags(e, 0); }
cudaError_t cudaEventDestroy(cudaEvent_t e) {
  ApiLock lock;
  if (!e) return status(cudaErrorInvalidResourceHandle);
  delete reinterpret_cast<Event*>(e);
  return cudaSuccess;
}
cudaError_t cudaEventRecord(cudaEvent_t e, cudaStream_t s) {
  ApiLock lock;
  if (!e) return status(cudaErrorInvalidResourceHandle);
  Stream* stream = streamOf(s);
  enqueue(stream, "event", [] {});
  reinterpret_cast<Event*>(e)->op = stream->last;
  return live();
}
cudaError_t cudaStreamWaitEvent(cudaStream_t s, cudaEvent_t e, unsigned) {
  ApiLock lock;
  if (!e) return status(cudaErrorInvalidResourceHandle);
  Event* event = reinterpret_cast<Event*>(e);
  enqueue(streamOf(s), "wait", [] {}, event->op);
  return live();
}
cudaError_t cudaEventSynchronize(cudaEvent_t e) {
  ApiLock lock;
  if (!e) return status(cudaErrorInvalidResourceHandle);
  Event* event = reinterpret_cast<Event*>(e);
  if (event->op) runUntil(event->op);
  return live();
}
cudaError_t cudaEventQuery(cudaEvent_t e) {
  ApiLock lock;
  Event* event = reinterpret_cast<Event*>(e);
  if (event->op) runUntil(event->op, false);  // the device works while the host polls
  return !event->op || event->op->done ? live() : cudaErrorNotReady;
}
cudaError_t cudaLaunchHostFunc(cudaStream_t s, cudaHostFn_t fn, void* userData) {
  ApiLock lock;
  if (!fn) return status(cudaErrorInvalidValue);
  if (g_sticky != cudaSuccess) return status(g_sticky);
  enqueue(streamOf(s), "host function", [fn, userData] { fn(userData); });
  return live();
}
extern "C" int siglip_emu_check_device_range(const void* p, size_t bytes, const char* what) {
  ApiLock lock;
  if (!bytes) return 1;
  const auto a = reinterpret_cast<uintptr_t>(p);
  const Allocation* hit = isDevice(p) ? findAllocation(a) : nullptr;
  if (hit && hit->live && a >= hit->begin && a + bytes <= hit->begin + hit->bytes) return 1;
  report("device memory out of bounds", "%s: %zu bytes at %p are not inside one live device allocation", what, bytes, p);
  return 0;
}
extern "C" void siglip_emu_report(const char* kind, const char* text) { report(kind, "%s", text); }
extern "C" void siglip_emu_lock() {
  g_big.lock();
  ++t_depth;
}
extern "C" void siglip_emu_unlock() {
  --t_depth;
  g_big.unlock();
  if (t_depth == 0) notifyChange();
}
extern "C" void siglip_emu_wait(double seconds) { waitForChange(seconds); }
extern "C" cudaError_t siglip_emu_enqueue(cudaStream_t s, const char* what, void (*run)(void*), int (*gate)(void*), void* arg) {
  ApiLock lock;
  if (!run) return status(cudaErrorInvalidValue);
  if (g_sticky != cudaSuccess) return status(g_sticky);
  enqueue(streamOf(s), what, [run, arg] { run(arg); }, nullptr,
          gate ? std::function<bool()>([gate, arg] { return gate(arg) != 0; }) : std::function<bool()>());
  return live();
}
cudaError_t cudaEventElapsedTime(float* ms, cudaEvent_t, cudaEvent_t) {
  ApiLock lock;
  *ms = 0;  // the emulation measures nothing
  return live();
}
