// Shared memory and its race shadow, device memory and its bounds, cp.async and atomics, the
// instrumentation's entry point (onAccess), and the runtime's start-up.
#include <sys/mman.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <mutex>
#include <vector>

#include "runtime_internal.h"

extern "C" {
// The linker's bounds of the section that holds every static __shared__ variable.
extern unsigned char __start_siglip_emu_shared[] __attribute__((weak));
extern unsigned char __stop_siglip_emu_shared[] __attribute__((weak));
}

namespace siglip_emu {
namespace internal {

// ---- shared memory and its shadow ------------------------------------------------------------
namespace {
struct ShadowByte {
  uint32_t wEpoch = 0, wStamp = 0;  // block epoch and warp stamp of the last write
  uint32_t rEpoch = 0, rStamp = 0;  // block epoch of the reads recorded, latest warp stamp among them
  uint16_t writer = 0, reader = 0;
  uint8_t readers = 0;  // bit 0: several lanes of the reader's warp; bit 1: several warps
};

}  // namespace

size_t g_dynamicBytes = 0;

namespace {
alignas(4096) unsigned char g_dynamicSmem[kOptinSmemLimit + 4096];
std::vector<ShadowByte> g_staticShadow, g_dynamicShadow(sizeof g_dynamicSmem);

struct Region {
  unsigned char* base;
  size_t bytes;
  ShadowByte* shadow;
  const char* name;
};

void sharedRace(const char* kind, const Region& region, size_t offset, int other, const char* what) {
  Launch& l = *g_launch;
  if (++l.blockReports > 4) return;  // a broken kernel races everywhere: a few per block
  report(kind, "%s of %s memory at offset %zu by thread %d (warp %d) %s thread %d (warp %d), with no barrier between",
         kind, region.name, offset, g_current->tid, g_current->tid / 32, what, other, other / 32);
}

void sharedAccess(const Region& region, size_t offset, size_t size, bool write) {
  const int t = g_current->tid, w = t / 32;
  const uint32_t stamp = g_launch->warps[size_t(w)].stamp;
  for (size_t i = 0; i < size; ++i) {
    ShadowByte& e = region.shadow[offset + i];
    const bool ordered = e.writer == t || e.wEpoch != g_epoch || (e.writer / 32 == w && stamp != e.wStamp);
    if (!write) {
      if (e.wEpoch < g_blockStart) {
        if (++g_launch->blockReports <= 4)
          report("uninitialized shared read", "thread %d reads %s memory at offset %zu, which no thread of this block has written",
                 t, region.name, offset + i);
        return;
      }
      if (!ordered) return sharedRace("shared-memory race (read after write)", region, offset + i, e.writer, "after a write by");
      if (e.rEpoch != g_epoch) {
        e.rEpoch = g_epoch, e.reader = uint16_t(t), e.readers = 0, e.rStamp = stamp;
      } else if (e.reader != t) {
        e.readers |= e.reader / 32 == w ? 1 : 2;
        e.rStamp = std::max(e.rStamp, stamp);
      }
    } else {
      if (!ordered) return sharedRace("shared-memory race (two writers)", region, offset + i, e.writer, "after a write by");
      if (e.rEpoch == g_epoch && (e.reader != t || e.readers)) {
        const bool sameWarp = !(e.readers & 2) && e.reader / 32 == w;
        if (!sameWarp || stamp == e.rStamp)
          return sharedRace("shared-memory race (write after read)", region, offset + i, e.reader, "after a read by");
      }
      e.wEpoch = g_epoch, e.wStamp = stamp, e.writer = uint16_t(t), e.rEpoch = 0;
    }
  }
}

bool sharedRegion(uintptr_t a, Region* out) {
  const auto sbase = reinterpret_cast<uintptr_t>(__start_siglip_emu_shared);
  const auto send = reinterpret_cast<uintptr_t>(__stop_siglip_emu_shared);
  if (sbase && a >= sbase && a < send) {
    *out = Region{__start_siglip_emu_shared, size_t(send - sbase), g_staticShadow.data(), "static shared"};
    return true;
  }
  const auto dbase = reinterpret_cast<uintptr_t>(g_dynamicSmem);
  if (a >= dbase && a < dbase + sizeof g_dynamicSmem) {
    *out = Region{g_dynamicSmem, g_dynamicBytes, g_dynamicShadow.data(), "dynamic shared"};
    return true;
  }
  return false;
}
}  // namespace

// ---- device memory ---------------------------------------------------------------------------------
unsigned char* g_arena = nullptr;
size_t g_arenaUsed = 0;
std::map<uintptr_t, Allocation> g_allocations;  // by begin
std::vector<size_t> g_liveBytes;
std::mutex g_memoryMutex;
const Allocation* g_lastHit = nullptr;

bool inArena(uintptr_t a) {
  const auto base = reinterpret_cast<uintptr_t>(g_arena);
  return g_arena && a >= base && a < base + kArenaBytes;
}

const Allocation* findAllocation(uintptr_t a) {
  if (g_lastHit && a >= g_lastHit->begin && a < g_lastHit->begin + g_lastHit->bytes) return g_lastHit;
  auto it = g_allocations.upper_bound(a);
  if (it == g_allocations.begin()) return nullptr;
  --it;
  return &it->second;
}

void deviceAccess(uintptr_t a, size_t size, bool write) {
  const Allocation* hit = findAllocation(a);
  if (hit && hit->live && a >= hit->begin && a + size <= hit->begin + hit->bytes) {
    g_lastHit = hit;
    return;
  }
  char where[160];
  if (!hit)
    std::snprintf(where, sizeof where, "before every allocation");
  else if (!hit->live && a < hit->begin + hit->bytes)
    std::snprintf(where, sizeof where, "inside a freed allocation of %zu bytes (offset %zu)", hit->bytes, size_t(a - hit->begin));
  else
    std::snprintf(where, sizeof where, "%zu bytes past the end of an allocation of %zu bytes",
                  size_t(a + size - (hit->begin + hit->bytes)), hit->bytes);
  if (g_launch && ++g_launch->blockReports > 4) return;
  report("device memory out of bounds", "%s of %zu bytes at %p, %s", write ? "write" : "read", size,
         reinterpret_cast<void*>(a), where);
  if (g_current) deviceTrap("out-of-bounds device access");
  std::abort();  // host code touching device memory outside any allocation
}

// Start-up: the static shared section's shadow, the device arena, the report at exit. In this
// file, after the globals it sets up (their initialisation order is only defined within one file).
namespace {
struct Init {
  Init() {
    const auto sbase = reinterpret_cast<uintptr_t>(__start_siglip_emu_shared);
    const auto send = reinterpret_cast<uintptr_t>(__stop_siglip_emu_shared);
    if (sbase) g_staticShadow.resize(send - sbase);
    g_arena = static_cast<unsigned char*>(mmap(nullptr, kArenaBytes, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0));
    if (g_arena == MAP_FAILED) {
      std::perror("siglip-emu: reserving the device arena");
      std::abort();
    }
    g_liveBytes.assign(size_t(std::max(config().devices, 1)), 0);
    std::atexit(atExit);
    g_checking = true;
  }
};
Init g_init;
}  // namespace

}  // namespace internal

unsigned char* dynamicShared() { return g_dynamicSmem; }

// cp.async: the destination holds NaN (all bits set) until the wait_group that covers the copy.
void cpAsync16(void* smemDst, const void* gmemSrc, int srcBytes) {
  Fiber& f = *g_current;
  Region region;
  const auto d = reinterpret_cast<uintptr_t>(smemDst), s = reinterpret_cast<uintptr_t>(gmemSrc);
  if (!sharedRegion(d, &region)) deviceTrap("cp.async destination is not shared memory");
  if ((d & 15) || (s & 15)) {
    report("cp.async", "16-byte cp.async with misaligned addresses (shared %p, global %p)", smemDst, gmemSrc);
    deviceTrap("misaligned cp.async");
  }
  if (srcBytes < 0 || srcBytes > 16) {
    report("cp.async", "source size %d outside 0…16", srcBytes);
    deviceTrap("bad cp.async source size");
  }
  const size_t offset = size_t(d - reinterpret_cast<uintptr_t>(region.base));
  if (offset + 16 > region.bytes) {
    report("shared memory out of bounds", "cp.async writes 16 bytes at offset %zu of %s memory of %zu bytes", offset,
           region.name, region.bytes);
    deviceTrap("cp.async out of bounds");
  }
  Fiber::Copy copy;
  copy.dst = static_cast<unsigned char*>(smemDst);
  std::memset(copy.data, 0, 16);
  if (srcBytes > 0) {
    if (inArena(s)) deviceAccess(s, size_t(srcBytes), false);
    std::memcpy(copy.data, gmemSrc, size_t(srcBytes));
  }
  // In flight: the bytes are undefined (NaN here) and owned by this thread until they land.
  sharedAccess(region, offset, 16, true);
  std::memset(smemDst, 0xff, 16);
  f.open.push_back(copy);
}

void cpAsyncCommit() {
  Fiber& f = *g_current;
  f.groups.push_back(std::move(f.open));
  f.open.clear();
}

namespace {
void landGroup(Fiber&, std::vector<Fiber::Copy>& group) {
  for (const Fiber::Copy& c : group) {
    Region region;
    sharedRegion(reinterpret_cast<uintptr_t>(c.dst), &region);
    sharedAccess(region, size_t(c.dst - region.base), 16, true);
    std::memcpy(c.dst, c.data, 16);
  }
}
}  // namespace

void cpAsyncWait(int pending) {
  Fiber& f = *g_current;
  while (int(f.groups.size()) > pending) {
    landGroup(f, f.groups.front());
    f.groups.pop_front();
  }
}

unsigned long long atomicMinU64(unsigned long long* p, unsigned long long v) {
  deviceAccess(reinterpret_cast<uintptr_t>(p), 8, true);
  const unsigned long long old = *p;
  if (v < old) *p = v;
  return old;
}
namespace {
template <class T>
T atomicAddT(T* p, T v) {
  Region r;
  if (!sharedRegion(reinterpret_cast<uintptr_t>(p), &r)) deviceAccess(reinterpret_cast<uintptr_t>(p), sizeof(T), true);
  const T old = *p;
  *p = old + v;
  return old;
}
}  // namespace
float atomicAddF32(float* p, float v) { return atomicAddT(p, v); }
double atomicAddF64(double* p, double v) { return atomicAddT(p, v); }
int atomicAddI32(int* p, int v) { return atomicAddT(p, v); }
unsigned atomicAddU32(unsigned* p, unsigned v) { return atomicAddT(p, v); }
unsigned long long atomicAddU64(unsigned long long* p, unsigned long long v) { return atomicAddT(p, v); }
int atomicMaxI32(int* p, int v) {
  const int old = *p;
  if (v > old) *p = v;
  return old;
}
int atomicMinI32(int* p, int v) {
  const int old = *p;
  if (v < old) *p = v;
  return old;
}
int atomicCasI32(int* p, int c, int v) {
  const int old = *p;
  if (old == c) *p = v;
  return old;
}

// ---- the instrumentation's entry point -------------------------------------------------------------
void onAccess(const void* addr, size_t size, bool write) {
  const auto a = reinterpret_cast<uintptr_t>(addr);
  if (!g_current) {
    if (inArena(a)) {
      report("host access to device memory", "host code %s %zu bytes of device memory at %p", write ? "writes" : "reads", size,
             addr);
    }
    return;
  }
  Region region;
  if (sharedRegion(a, &region)) {
    const size_t offset = size_t(a - reinterpret_cast<uintptr_t>(region.base));
    if (offset + size > region.bytes) {
      if (++g_launch->blockReports <= 4)
        report("shared memory out of bounds", "%s of %zu bytes at offset %zu of %s memory of %zu bytes (the launch's size)",
               write ? "write" : "read", size, offset, region.name, region.bytes);
      deviceTrap("shared memory out of bounds");
    }
    sharedAccess(region, offset, size, write);
    return;
  }
  if (inArena(a)) deviceAccess(a, size, write);
}

}  // namespace siglip_emu
