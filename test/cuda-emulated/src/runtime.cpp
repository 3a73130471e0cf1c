// The CUDA emulation's runtime (docs/CUDA_EMULATION.md): fibers and their scheduler, block
// barriers and warp collectives, shared memory and its race shadow, cp.async, device memory,
// streams and events, and the reports. Compiled without instrumentation: only the kernels'
// translation units report their memory accesses (hooks.cpp).
#include <dlfcn.h>
#include <link.h>
#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <functional>
#include <cinttypes>
#include <cstdarg>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "runtime.h"
#include "siglip_emu/emu.h"

extern "C" {
// The linker's bounds of the section that holds every static __shared__ variable.
extern unsigned char __start_siglip_emu_shared[] __attribute__((weak));
extern unsigned char __stop_siglip_emu_shared[] __attribute__((weak));
}

namespace siglip_emu {

thread_local ThreadState* g_thread = nullptr;
bool g_checking = false;

namespace {

// ---- configuration --------------------------------------------------------------------------
uint64_t envU64(const char* name, uint64_t fallback) {
  const char* v = std::getenv(name);
  return v && *v ? std::strtoull(v, nullptr, 0) : fallback;
}

struct Config {
  uint64_t seed = envU64("SIGLIP_EMU_SEED", 1);
  size_t deviceMemory = size_t(envU64("SIGLIP_EMU_DEVICE_MEMORY", 80ull << 30));  // per device
  int devices = int(envU64("SIGLIP_EMU_DEVICES", 1));
  std::string streamOrder = std::getenv("SIGLIP_EMU_STREAM_ORDER") ? std::getenv("SIGLIP_EMU_STREAM_ORDER") : "newest";
  long maxPrinted = long(envU64("SIGLIP_EMU_MAX_REPORTS", 12));
  // How long a host thread waits for another one (a stream op gated on another thread's work,
  // e.g. an NCCL receive whose sender has not posted) before the wait is reported as a hang.
  double hangSeconds = double(envU64("SIGLIP_EMU_HANG_S", 60));
};
Config& config() {
  static Config c;
  return c;
}

// H100 SXM (sm_90) limits.
constexpr size_t kStaticSmemLimit = 48 * 1024;
constexpr size_t kDefaultDynamicLimit = 48 * 1024;
constexpr size_t kOptinSmemLimit = 227 * 1024;
constexpr int kSms = 132;

struct Rng {
  uint64_t s;
  explicit Rng(uint64_t seed) : s(seed * 0x9E3779B97F4A7C15ull + 0x1234567ull) {}
  uint64_t next() {
    s ^= s << 13, s ^= s >> 7, s ^= s << 17;
    return s;
  }
  size_t below(size_t n) { return size_t(next() % n); }
};
Rng& rng() {
  static Rng r(config().seed);
  return r;
}

// ---- the device lock ----------------------------------------------------------------------------
// Several host threads may use the runtime (the ring's ranks, each with its own device and
// streams): every runtime entry point holds this recursive lock, and the device's work (the
// streams' queues, the kernels) runs on whichever thread waits for it, one op at a time. A
// thread that must wait for another thread (a gated op: NCCL) gives the lock up entirely
// while it waits; every release of the lock counts as a change it may wake up for.
std::recursive_mutex g_big;
thread_local int t_depth = 0;
std::mutex g_changeMutex;
std::condition_variable g_changed;
uint64_t g_generation = 0;

void notifyChange() {
  {
    std::lock_guard<std::mutex> l(g_changeMutex);
    ++g_generation;
  }
  g_changed.notify_all();
}

struct ApiLock {
  ApiLock() {
    g_big.lock();
    ++t_depth;
  }
  ~ApiLock() {
    --t_depth;
    g_big.unlock();
    if (t_depth == 0) notifyChange();
  }
  ApiLock(const ApiLock&) = delete;
  ApiLock& operator=(const ApiLock&) = delete;
};

// Gives the lock up (all levels), waits for a change by another thread or `seconds`, takes it back.
void waitForChange(double seconds) {
  uint64_t seen;
  {
    std::lock_guard<std::mutex> l(g_changeMutex);
    seen = g_generation;
  }
  const int depth = t_depth;
  for (int i = 0; i < depth; ++i) g_big.unlock();
  t_depth = 0;
  {
    std::unique_lock<std::mutex> l(g_changeMutex);
    g_changed.wait_for(l, std::chrono::duration<double>(seconds), [&] { return g_generation != seen; });
  }
  for (int i = 0; i < depth; ++i) g_big.lock();
  t_depth = depth;
}

// ---- reports ----------------------------------------------------------------------------------
std::atomic<long> g_reports{0};

std::string kernelName(const void* kernel);

struct Launch;
thread_local Launch* g_launch = nullptr;
std::string launchContext();

void report(const char* kind, const char* fmt, ...) {
  const long n = ++g_reports;
  if (n > config().maxPrinted) {
    if (n == config().maxPrinted + 1) std::fprintf(stderr, "siglip-emu: further reports counted, not printed\n");
    return;
  }
  char text[2048];
  va_list ap;
  va_start(ap, fmt);
  std::vsnprintf(text, sizeof text, fmt, ap);
  va_end(ap);
  std::fprintf(stderr, "siglip-emu: %s: %s%s\n", kind, text, launchContext().c_str());
}

void atExit() {
  const long n = g_reports.load();
  if (n > 0) {
    std::fprintf(stderr, "siglip-emu: %ld problem(s) reported: failing the run\n", n);
    std::fflush(stderr);
    _exit(70);
  }
}

// ---- fibers (x86-64 System V: callee-saved registers on the fiber's own stack) -----------------
extern "C" void siglip_emu_switch(void** save, void* to);
extern "C" void siglip_emu_trampoline();
asm(R"(
  .text
  .globl siglip_emu_switch
  .type siglip_emu_switch,@function
siglip_emu_switch:
  pushq %rbp
  pushq %rbx
  pushq %r12
  pushq %r13
  pushq %r14
  pushq %r15
  movq %rsp, (%rdi)
  movq %rsi, %rsp
  popq %r15
  popq %r14
  popq %r13
  popq %r12
  popq %rbx
  popq %rbp
  ret
  .size siglip_emu_switch,.-siglip_emu_switch
  .globl siglip_emu_trampoline
  .type siglip_emu_trampoline,@function
siglip_emu_trampoline:
  movq %r12, %rdi
  callq *%r13
  ud2
  .size siglip_emu_trampoline,.-siglip_emu_trampoline
)");

constexpr size_t kStackBytes = 256 * 1024;
enum class FiberState { Runnable, Waiting, Finished, Trapped };

struct Fiber {
  void* sp = nullptr;
  unsigned char* stack = nullptr;
  int tid = 0;
  FiberState state = FiberState::Runnable;
  const char* waitKind = nullptr;  // what it waits at
  const char* waitFile = nullptr;
  int waitLine = 0;
  ThreadState thread{};
  // cp.async: copies issued since the last commit, and the committed groups not yet landed.
  struct Copy {
    unsigned char* dst;
    unsigned char data[16];
  };
  std::vector<Copy> open;
  std::deque<std::vector<Copy>> groups;
};

thread_local void* g_schedulerSp = nullptr;
thread_local Fiber* g_current = nullptr;

// ---- a launch, a block ----------------------------------------------------------------------------
struct WarpState {
  unsigned arrived = 0, mask = 0;
  const char* kind = nullptr;
  const char* file = nullptr;
  int line = 0;
  CollectiveFn fn = nullptr;
  void* payloads[32] = {};
  uint32_t stamp = 0;  // changes at every __syncwarp: orders the lanes' shared accesses
};

struct Launch {
  LaunchConfig cfg;
  std::function<void()> body;
  std::string name;
  uint3 block{};
  int threads = 0;
  std::vector<Fiber> fibers;
  std::vector<int> runnable;
  std::vector<WarpState> warps;
  int barrierArrived = 0;
  const char* barrierFile = nullptr;
  int barrierLine = 0;
  bool barrierSiteReported = false;
  bool trapped = false;
  bool failed = false;
  long blockReports = 0;
};

std::string launchContext() {
  if (!g_launch) return "";
  char text[512];
  std::snprintf(text, sizeof text, "\n    in %s, grid (%u,%u,%u) × block (%u,%u,%u), block (%u,%u,%u)%s",
                g_launch->name.c_str(), g_launch->cfg.grid.x, g_launch->cfg.grid.y, g_launch->cfg.grid.z,
                g_launch->cfg.block.x, g_launch->cfg.block.y, g_launch->cfg.block.z, g_launch->block.x, g_launch->block.y,
                g_launch->block.z, g_current ? (", thread " + std::to_string(g_current->tid)).c_str() : "");
  return text;
}

uint32_t g_epoch = 1;       // +1 at every block start and every completed __syncthreads
uint32_t g_blockStart = 1;  // g_epoch when the running block started
uint32_t g_stampCounter = 1;

std::vector<unsigned char*> g_stackPool;

void fiberEntry(Fiber* f);

void initFiber(Fiber& f, int tid) {
  if (!f.stack) {
    if (!g_stackPool.empty()) {
      f.stack = g_stackPool.back();
      g_stackPool.pop_back();
    } else {
      f.stack = static_cast<unsigned char*>(
          mmap(nullptr, kStackBytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0));
      if (f.stack == MAP_FAILED) {
        std::perror("siglip-emu: fiber stack");
        std::abort();
      }
    }
  }
  f.tid = tid;
  f.state = FiberState::Runnable;
  f.open.clear();
  f.groups.clear();
  // Initial frame: r15 r14 r13 r12 rbx rbp, then the return address (the trampoline), with
  // the stack 16-byte aligned at the trampoline's call (sp + 56 = top).
  const uintptr_t top = (reinterpret_cast<uintptr_t>(f.stack) + kStackBytes) & ~uintptr_t(15);
  auto* sp = reinterpret_cast<uintptr_t*>(top - 7 * 8);
  sp[0] = 0, sp[1] = 0;
  sp[2] = reinterpret_cast<uintptr_t>(&fiberEntry);  // r13
  sp[3] = reinterpret_cast<uintptr_t>(&f);           // r12
  sp[4] = 0, sp[5] = 0;
  sp[6] = reinterpret_cast<uintptr_t>(&siglip_emu_trampoline);
  f.sp = sp;
}

void toScheduler() { siglip_emu_switch(&g_current->sp, g_schedulerSp); }

void landGroup(Fiber& f, std::vector<Fiber::Copy>& group);

void fiberEntry(Fiber* f) {
  g_launch->body();
  if (!f->open.empty() || !f->groups.empty())
    report("cp.async", "thread %d exited with cp.async copies not waited for (%zu uncommitted, %zu groups)", f->tid,
           f->open.size(), f->groups.size());
  f->state = FiberState::Finished;
  toScheduler();
  std::abort();  // never resumed
}

void block(const char* kind, const char* file, int line) {
  Fiber* f = g_current;
  f->state = FiberState::Waiting;
  f->waitKind = kind, f->waitFile = file, f->waitLine = line;
  toScheduler();
}

void wake(int tid) {
  Fiber& f = g_launch->fibers[size_t(tid)];
  f.state = FiberState::Runnable;
  g_launch->runnable.push_back(tid);
}

void reportDeadlock(Launch& l) {
  std::string waits;
  std::map<std::string, std::vector<int>> bySite;
  int finished = 0;
  for (const Fiber& f : l.fibers) {
    if (f.state == FiberState::Finished) {
      ++finished;
      continue;
    }
    if (f.state != FiberState::Waiting) continue;
    bySite[std::string(f.waitKind) + " at " + f.waitFile + ":" + std::to_string(f.waitLine)].push_back(f.tid);
  }
  for (auto& [site, tids] : bySite) {
    waits += "\n    " + std::to_string(tids.size()) + " thread(s) wait in " + site + " (threads " + std::to_string(tids[0]);
    for (size_t i = 1; i < tids.size() && i < 8; ++i) waits += ", " + std::to_string(tids[i]);
    waits += tids.size() > 8 ? ", …)" : ")";
  }
  report("deadlock", "a barrier or warp collective that not every thread it needs reaches: %d of %d thread(s) finished%s",
         finished, l.threads, waits.c_str());
}

// Runs one block of the current launch to the end (or to a deadlock or a trap).
void runBlock(Launch& l, uint3 b) {
  l.block = b;
  l.runnable.clear();
  l.barrierArrived = 0;
  l.barrierSiteReported = false;
  for (WarpState& w : l.warps) w = WarpState{0, 0, nullptr, nullptr, 0, nullptr, {}, ++g_stampCounter};
  g_blockStart = ++g_epoch;
  const dim3 bd = l.cfg.block;
  for (int t = 0; t < l.threads; ++t) {
    Fiber& f = l.fibers[size_t(t)];
    initFiber(f, t);
    f.thread.thread = uint3{unsigned(t) % bd.x, (unsigned(t) / bd.x) % bd.y, unsigned(t) / (bd.x * bd.y)};
    f.thread.block = b;
    f.thread.blockDims = bd;
    f.thread.gridDims = l.cfg.grid;
    l.runnable.push_back(t);
  }
  Rng& r = rng();
  for (;;) {
    if (l.runnable.empty()) {
      bool done = true;
      for (const Fiber& f : l.fibers)
        if (f.state != FiberState::Finished) done = false;
      if (!done) {
        reportDeadlock(l);
        l.failed = true;
      }
      break;
    }
    const size_t pick = r.below(l.runnable.size());
    const int tid = l.runnable[pick];
    l.runnable[pick] = l.runnable.back();
    l.runnable.pop_back();
    Fiber& f = l.fibers[size_t(tid)];
    g_current = &f;
    g_thread = &f.thread;
    siglip_emu_switch(&g_schedulerSp, f.sp);
    g_current = nullptr;
    g_thread = nullptr;
    if (f.state == FiberState::Trapped) {
      l.failed = true;
      break;
    }
  }
}

// ---- shared memory and its shadow ------------------------------------------------------------
struct ShadowByte {
  uint32_t wEpoch = 0, wStamp = 0;  // block epoch and warp stamp of the last write
  uint32_t rEpoch = 0, rStamp = 0;  // block epoch of the reads recorded, latest warp stamp among them
  uint16_t writer = 0, reader = 0;
  uint8_t readers = 0;  // bit 0: several lanes of the reader's warp; bit 1: several warps
};

alignas(4096) unsigned char g_dynamicSmem[kOptinSmemLimit + 4096];
size_t g_dynamicBytes = 0;
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

// ---- device memory ---------------------------------------------------------------------------------
constexpr size_t kPage = 4096;
constexpr size_t kArenaBytes = size_t(1) << 40;  // reserved address space; pages mapped per allocation
unsigned char* g_arena = nullptr;
size_t g_arenaUsed = 0;
struct Allocation {
  uintptr_t begin;
  size_t bytes;
  int device;
  bool live;
};
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

// ---- streams and events -------------------------------------------------------------------------------
struct Stream;
struct Op {
  uint64_t seq = 0;
  Stream* stream = nullptr;
  std::vector<std::shared_ptr<Op>> deps;
  std::function<void()> run;
  std::function<bool()> gate;  // null, or: may it run yet (work another host thread must do first)
  bool done = false;
  const char* what = "";
};
struct Stream {
  int device = 0;
  bool blocking = true;
  bool legacy = false;
  bool destroyed = false;
  std::deque<std::shared_ptr<Op>> queue;  // not yet run, in order
  std::shared_ptr<Op> last;                // the newest op (run or not)
};
struct Event {
  std::shared_ptr<Op> op;  // the marker op of the last record, or null
};

std::vector<Stream*> g_streams;   // every stream, the legacy ones included, and destroyed ones with work left
std::vector<Stream*> g_legacy;    // the legacy default stream of each device
thread_local std::map<int, Stream*> t_perThread;  // this host thread's per-thread default stream, per device
uint64_t g_opSeq = 0;
thread_local cudaError_t g_lastError = cudaSuccess;
cudaError_t g_sticky = cudaSuccess;
thread_local int g_device = 0;  // the calling host thread's current device
std::map<const void*, int> g_maxDynamic;  // cudaFuncAttributeMaxDynamicSharedMemorySize per kernel

Stream* newStream(int device, bool blocking, bool legacy) {
  auto* stream = new Stream();
  stream->device = device, stream->blocking = blocking, stream->legacy = legacy;
  g_streams.push_back(stream);
  return stream;
}

Stream* legacyStream(int device) {
  while (int(g_legacy.size()) <= device) g_legacy.push_back(newStream(int(g_legacy.size()), true, true));
  return g_legacy[size_t(device)];
}

Stream* streamOf(cudaStream_t s) {
  if (s == nullptr || s == cudaStreamLegacy) return legacyStream(g_device);
  if (s == cudaStreamPerThread) {
    Stream*& mine = t_perThread[g_device];
    if (!mine) mine = newStream(g_device, true, false);  // blocking: it syncs with the legacy stream
    return mine;
  }
  return reinterpret_cast<Stream*>(s);
}

std::shared_ptr<Op> enqueue(Stream* s, const char* what, std::function<void()> run, std::shared_ptr<Op> extraDep = nullptr,
                            std::function<bool()> gate = nullptr) {
  auto op = std::make_shared<Op>();
  op->seq = ++g_opSeq;
  op->stream = s;
  op->run = std::move(run);
  op->gate = std::move(gate);
  op->what = what;
  if (s->last && !s->last->done) op->deps.push_back(s->last);
  // The legacy stream of a device waits for every blocking stream of that device, and they for it.
  if (s->legacy) {
    for (Stream* o : g_streams)
      if (o != s && o->device == s->device && o->blocking && o->last && !o->last->done) op->deps.push_back(o->last);
  } else if (s->blocking) {
    Stream* legacy = legacyStream(s->device);
    if (legacy->last && !legacy->last->done) op->deps.push_back(legacy->last);
  }
  if (extraDep && !extraDep->done) op->deps.push_back(extraDep);
  s->queue.push_back(op);
  s->last = op;
  return op;
}

bool ready(const Op& op) {
  for (const auto& d : op.deps)
    if (!d->done) return false;
  return !op.gate || op.gate();
}

bool deviceIdle(int device) {
  for (const Stream* s : g_streams)
    if (s->device == device && !s->queue.empty()) return false;
  return true;
}

// Runs queued work until done() (by default the newest ready work first, so that work a
// stream should have waited for, and did not, by an event, tends to run after its consumer).
// When nothing can run, the rest waits for another host thread (a gated op): with mayWait,
// this thread waits for a change (the lock given up) and reports a hang after
// SIGLIP_EMU_HANG_S; without, it returns. Returns done().
bool runUntil(const std::function<bool()>& done, bool mayWait = true) {
  auto waitingSince = std::chrono::steady_clock::now();
  for (;;) {
    if (done()) return true;
    std::vector<Stream*> candidates;
    bool any = false;
    for (Stream* s : g_streams) {
      if (s->queue.empty()) continue;
      any = true;
      if (ready(*s->queue.front())) candidates.push_back(s);
    }
    if (candidates.empty()) {
      bool gated = false;
      for (Stream* s : g_streams)
        for (const auto& op : s->queue) gated |= bool(op->gate);
      if (!any || !gated) {
        if (any) report("stream deadlock", "queued work waits for work that can never run");
        return done();
      }
      if (!mayWait) return done();
      const double waited = std::chrono::duration<double>(std::chrono::steady_clock::now() - waitingSince).count();
      if (waited > config().hangSeconds) {
        std::string what;
        for (Stream* s : g_streams)
          if (!s->queue.empty()) what += std::string(what.empty() ? "" : ", ") + s->queue.front()->what;
        report("stream hang", "no queued work could run for %.0f s (SIGLIP_EMU_HANG_S): the streams wait in: %s", waited,
               what.c_str());
        return done();
      }
      waitForChange(0.2);
      continue;
    }
    waitingSince = std::chrono::steady_clock::now();
    Stream* pick = candidates[0];
    const std::string& order = config().streamOrder;
    if (order == "random") {
      pick = candidates[rng().below(candidates.size())];
    } else {
      for (Stream* s : candidates) {
        const bool better = order == "fifo" ? s->queue.front()->seq < pick->queue.front()->seq
                                            : s->queue.front()->seq > pick->queue.front()->seq;
        if (better) pick = s;
      }
    }
    std::shared_ptr<Op> op = pick->queue.front();
    pick->queue.pop_front();
    if (g_sticky == cudaSuccess) op->run();
    op->done = true;
    op->run = nullptr;
    op->gate = nullptr;
    op->deps.clear();
  }
}
bool runUntil(const std::shared_ptr<Op>& target, bool mayWait = true) {
  return runUntil([&] { return !target || target->done; }, mayWait);
}

void collectStreams() {
  for (auto it = g_streams.begin(); it != g_streams.end();) {
    if ((*it)->destroyed && (*it)->queue.empty()) {
      delete *it;
      it = g_streams.erase(it);
    } else {
      ++it;
    }
  }
}

cudaError_t status(cudaError_t e) {
  if (e != cudaSuccess && g_lastError == cudaSuccess) g_lastError = e;
  return e;
}
cudaError_t live() { return g_sticky; }

// ---- running a kernel --------------------------------------------------------------------------------
void runKernel(const LaunchConfig& cfg, const std::function<void()>& body) {
  Launch l;
  l.cfg = cfg;
  l.body = body;
  l.name = kernelName(cfg.kernel);
  l.threads = int(cfg.block.x * cfg.block.y * cfg.block.z);
  l.fibers.resize(size_t(l.threads));
  l.warps.resize(size_t((l.threads + 31) / 32));
  g_dynamicBytes = cfg.dynamicSmem;
  g_launch = &l;
  // The blocks in a random order: nothing may depend on which block runs first.
  std::vector<uint3> blocks;
  for (unsigned z = 0; z < cfg.grid.z; ++z)
    for (unsigned y = 0; y < cfg.grid.y; ++y)
      for (unsigned x = 0; x < cfg.grid.x; ++x) blocks.push_back(uint3{x, y, z});
  for (size_t i = blocks.size(); i > 1; --i) std::swap(blocks[i - 1], blocks[rng().below(i)]);
  for (const uint3& b : blocks) {
    l.blockReports = 0;
    runBlock(l, b);
    if (l.failed) break;
  }
  for (Fiber& f : l.fibers) g_stackPool.push_back(f.stack);
  g_launch = nullptr;
  if (l.failed) g_sticky = cudaErrorLaunchFailure;
}

// ---- kernel names (for reports: nm on the executable, looked up when first needed) -------------
std::string kernelName(const void* kernel) {
  static std::map<uintptr_t, std::string>* symbols = nullptr;
  static uintptr_t loadBase = 0;
  if (!symbols) {
    symbols = new std::map<uintptr_t, std::string>();
    dl_iterate_phdr(
        [](dl_phdr_info* info, size_t, void* base) {
          *static_cast<uintptr_t*>(base) = info->dlpi_addr;
          return 1;  // the executable comes first
        },
        &loadBase);
    char exe[4096];
    const ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (n > 0) {
      exe[n] = 0;
      const std::string cmd = std::string("nm -C --defined-only '") + exe + "' 2>/dev/null";
      if (FILE* p = popen(cmd.c_str(), "r")) {
        char line[8192];
        while (std::fgets(line, sizeof line, p)) {
          char* end = nullptr;
          const uintptr_t a = std::strtoull(line, &end, 16);
          if (!end || end[0] != ' ' || !(end[1] == 'T' || end[1] == 't' || end[1] == 'W' || end[1] == 'w')) continue;
          std::string name(end + 3);
          while (!name.empty() && (name.back() == '\n' || name.back() == '\r')) name.pop_back();
          (*symbols)[a] = name;
        }
        pclose(p);
      }
    }
  }
  const auto it = symbols->find(reinterpret_cast<uintptr_t>(kernel) - loadBase);
  if (it != symbols->end()) {
    std::string name = it->second;
    if (name.size() > 160) name = name.substr(0, 157) + "...";
    return name;
  }
  char text[32];
  std::snprintf(text, sizeof text, "kernel@%p", kernel);
  return text;
}

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

// ---- the device side ------------------------------------------------------------------------------
void deviceTrap(const char* what) {
  report("trap", "%s", what);
  if (!g_current) std::abort();
  g_current->state = FiberState::Trapped;
  toScheduler();
  std::abort();
}

int laneId() { return g_current ? g_current->tid % 32 : 0; }

void syncthreads(const char* file, int line) {
  Launch& l = *g_launch;
  if (l.barrierArrived == 0) {
    l.barrierFile = file, l.barrierLine = line;
  } else if ((l.barrierLine != line || (l.barrierFile != file && std::strcmp(l.barrierFile, file) != 0)) &&
             !l.barrierSiteReported) {
    l.barrierSiteReported = true;
    report("divergent barrier", "thread %d reaches __syncthreads at %s:%d while others wait at %s:%d", g_current->tid, file,
           line, l.barrierFile, l.barrierLine);
  }
  if (++l.barrierArrived == l.threads) {
    l.barrierArrived = 0;
    ++g_epoch;
    for (Fiber& f : l.fibers)
      if (f.state == FiberState::Waiting && f.waitKind && std::strcmp(f.waitKind, "__syncthreads") == 0) wake(f.tid);
    // The last thread to arrive yields too, so that any thread may be the first past the barrier.
    g_current->state = FiberState::Runnable;
    l.runnable.push_back(g_current->tid);
    g_current->waitKind = nullptr;
    toScheduler();
    return;
  }
  block("__syncthreads", file, line);
}

void warpCollective(const char* kind, unsigned mask, void* payload, CollectiveFn complete, const char* file, int line) {
  Launch& l = *g_launch;
  const int t = g_current->tid, lane = t % 32, w = t / 32;
  WarpState& ws = l.warps[size_t(w)];
  const int warpThreads = std::min(32, l.threads - w * 32);
  const unsigned existing = warpThreads == 32 ? 0xffffffffu : ((1u << warpThreads) - 1);
  if (!((mask >> lane) & 1u)) {
    report("warp mask", "lane %d calls %s at %s:%d with mask 0x%08x that does not include it", lane, kind, file, line, mask);
    deviceTrap("warp collective by a lane outside its mask");
  }
  if (mask & ~existing) {
    report("warp mask", "%s at %s:%d names lanes that do not exist (mask 0x%08x, warp of %d threads)", kind, file, line, mask,
           warpThreads);
    deviceTrap("warp collective over missing lanes");
  }
  if (ws.arrived == 0) {
    ws.kind = kind, ws.mask = mask, ws.file = file, ws.line = line, ws.fn = complete;
  } else if ((ws.kind != kind && std::strcmp(ws.kind, kind) != 0) || ws.mask != mask) {
    report("divergent warp", "lane %d reaches %s at %s:%d (mask 0x%08x) while lanes 0x%08x wait in %s at %s:%d (mask 0x%08x)",
           lane, kind, file, line, mask, ws.arrived, ws.kind, ws.file, ws.line, ws.mask);
    deviceTrap("divergent warp collective");
  }
  ws.payloads[lane] = payload;
  ws.arrived |= 1u << lane;
  if (ws.arrived != ws.mask) {
    block(kind, file, line);
    return;
  }
  if (ws.fn) ws.fn(ws.payloads, ws.mask);
  if (std::strcmp(kind, "__syncwarp") == 0) ws.stamp = ++g_stampCounter;
  ws.arrived = 0;
  for (int i = 0; i < 32; ++i)
    if (((mask >> i) & 1u) && i != lane) wake(w * 32 + i);
  // The completing lane yields as well: the lanes leave the collective in a random order.
  g_current->state = FiberState::Runnable;
  l.runnable.push_back(t);
  toScheduler();
}

void syncwarp(unsigned mask, const char* file, int line) { warpCollective("__syncwarp", mask, nullptr, nullptr, file, line); }

void shuffleComplete(void* const* payloads, unsigned mask) {
  for (int lane = 0; lane < 32; ++lane) {
    if (!((mask >> lane) & 1u)) continue;
    auto* s = static_cast<ShuffleSlot*>(payloads[lane]);
    if (s->srcLane < 0 || s->srcLane > 31 || !((mask >> s->srcLane) & 1u)) {
      report("warp mask", "lane %d shuffles from lane %d, which is not in the mask 0x%08x (undefined result)", lane, s->srcLane,
             mask);
      std::memset(s->result, 0xff, sizeof s->result);
      continue;
    }
    std::memcpy(s->result, static_cast<ShuffleSlot*>(payloads[s->srcLane])->value, size_t(s->size));
  }
}

void ballotComplete(void* const* payloads, unsigned mask) {
  unsigned bits = 0;
  for (int lane = 0; lane < 32; ++lane)
    if (((mask >> lane) & 1u) && static_cast<unsigned*>(payloads[lane])[0]) bits |= 1u << lane;
  for (int lane = 0; lane < 32; ++lane)
    if ((mask >> lane) & 1u) static_cast<unsigned*>(payloads[lane])[1] = bits;
}

unsigned char* dynamicShared() { return g_dynamicSmem; }

const uint16_t* fragmentLayout(int use, int rows, int cols) {
  static std::map<int, std::vector<uint16_t>> layouts;
  const int key = use * 100000 + rows * 100 + cols;
  auto it = layouts.find(key);
  if (it == layouts.end()) {
    std::vector<uint16_t> map(size_t(rows * cols));
    for (size_t i = 0; i < map.size(); ++i) map[i] = uint16_t(i);
    Rng r(config().seed * 31 + uint64_t(key));  // per run and fragment kind, not the schedule's stream
    for (size_t i = map.size(); i > 1; --i) std::swap(map[i - 1], map[r.below(i)]);
    it = layouts.emplace(key, std::move(map)).first;
  }
  return it->second.data();
}

void reportWmmaMisuse(const char* what, const void* ptr, unsigned ldm) {
  report("wmma misuse", "%s with pointer %p (needs 32-byte alignment) and ldm %u (needs a multiple of 16 bytes)", what, ptr, ldm);
}

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

void enqueueKernel(const LaunchConfig& cfg, cudaStream_t stream, std::function<void()> body) {
  ApiLock lock;
  if (g_sticky != cudaSuccess) return void(status(g_sticky));
  const unsigned threads = cfg.block.x * cfg.block.y * cfg.block.z;
  if (threads == 0 || threads > 1024 || cfg.block.z > 64 || cfg.grid.x == 0 || cfg.grid.y == 0 || cfg.grid.z == 0 ||
      cfg.grid.x > 0x7fffffffu || cfg.grid.y > 65535 || cfg.grid.z > 65535) {
    report("launch", "invalid configuration: grid (%u,%u,%u), block (%u,%u,%u) for %s", cfg.grid.x, cfg.grid.y, cfg.grid.z,
           cfg.block.x, cfg.block.y, cfg.block.z, kernelName(cfg.kernel).c_str());
    return void(status(cudaErrorInvalidConfiguration));
  }
  const auto it = g_maxDynamic.find(cfg.kernel);
  const size_t allowed = it == g_maxDynamic.end() ? kDefaultDynamicLimit : size_t(it->second);
  if (cfg.dynamicSmem > allowed) {
    // As on the device: a launch error, which the package's launch check turns into an exception.
    return void(status(cudaErrorInvalidValue));
  }
  enqueue(streamOf(stream), "kernel", [cfg, body] { runKernel(cfg, body); });
}

cudaError_t funcSetAttribute(const void* kernel, cudaFuncAttribute attr, int value) {
  ApiLock lock;
  if (attr == cudaFuncAttributeMaxDynamicSharedMemorySize) {
    if (value < 0 || size_t(value) > kOptinSmemLimit) return status(cudaErrorInvalidValue);
    g_maxDynamic[kernel] = value;
  }
  return cudaSuccess;
}
cudaError_t funcGetAttributes(cudaFuncAttributes* a, const void* kernel) {
  ApiLock lock;
  std::memset(a, 0, sizeof *a);
  const auto it = g_maxDynamic.find(kernel);
  a->maxDynamicSharedSizeBytes = it == g_maxDynamic.end() ? int(kDefaultDynamicLimit) : it->second;
  a->maxThreadsPerBlock = 1024;
  a->numRegs = 64;
  a->ptxVersion = a->binaryVersion = 90;
  return cudaSuccess;
}

}  // namespace siglip_emu

extern "C" long siglip_emu_report_count() { return siglip_emu::g_reports.load(); }
extern "C" void siglip_emu_reset_reports() { siglip_emu::g_reports.store(0); }

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
