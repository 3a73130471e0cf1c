// What the files of the emulation's runtime share: configuration, the device lock, reports,
// fibers and launches, device memory, streams. Internal to src/ (hooks.cpp uses runtime.h).
#pragma once
#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <cstdlib>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "runtime.h"
#include "siglip_emu/emu.h"

namespace siglip_emu {
// What runtime.cpp kept in one unnamed namespace, now named so that its files share it; the
// using-directive below makes it visible in siglip_emu as the unnamed namespace did.
namespace internal {

// ---- configuration (runtime.cpp) --------------------------------------------------------------
uint64_t envU64(const char* name, uint64_t fallback);

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
Config& config();

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
Rng& rng();

// ---- the device lock (runtime.cpp) ------------------------------------------------------------
extern std::recursive_mutex g_big;
extern thread_local int t_depth;
void notifyChange();

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
void waitForChange(double seconds);

// ---- reports (runtime.cpp) ------------------------------------------------------------------------
extern std::atomic<long> g_reports;
std::string kernelName(const void* kernel);
void report(const char* kind, const char* fmt, ...);
void atExit();

// ---- fibers, a launch, a block (fibers.cpp) ----------------------------------------------------
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

extern thread_local Fiber* g_current;

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

extern thread_local Launch* g_launch;
std::string launchContext();

extern uint32_t g_epoch;       // +1 at every block start and every completed __syncthreads
extern uint32_t g_blockStart;  // g_epoch when the running block started
extern uint32_t g_stampCounter;

void toScheduler();
void block(const char* kind, const char* file, int line);
void wake(int tid);
void runKernel(const LaunchConfig& cfg, const std::function<void()>& body);

// ---- shared memory (memory.cpp) -----------------------------------------------------------------
extern size_t g_dynamicBytes;

// ---- device memory (memory.cpp) -----------------------------------------------------------------
constexpr size_t kPage = 4096;
constexpr size_t kArenaBytes = size_t(1) << 40;  // reserved address space; pages mapped per allocation
extern unsigned char* g_arena;
extern size_t g_arenaUsed;
struct Allocation {
  uintptr_t begin;
  size_t bytes;
  int device;
  bool live;
};
extern std::map<uintptr_t, Allocation> g_allocations;  // by begin
extern std::vector<size_t> g_liveBytes;
extern std::mutex g_memoryMutex;
extern const Allocation* g_lastHit;

bool inArena(uintptr_t a);
const Allocation* findAllocation(uintptr_t a);

// ---- streams and events (streams.cpp) -----------------------------------------------------------
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

extern std::vector<Stream*> g_streams;  // every stream, the legacy ones included, and destroyed ones with work left
extern thread_local cudaError_t g_lastError;
extern cudaError_t g_sticky;
extern thread_local int g_device;  // the calling host thread's current device

Stream* newStream(int device, bool blocking, bool legacy);
Stream* streamOf(cudaStream_t s);
std::shared_ptr<Op> enqueue(Stream* s, const char* what, std::function<void()> run, std::shared_ptr<Op> extraDep = nullptr,
                            std::function<bool()> gate = nullptr);
bool deviceIdle(int device);
// Runs queued work until done() (streams.cpp says in which order); returns done().
bool runUntil(const std::function<bool()>& done, bool mayWait = true);
bool runUntil(const std::shared_ptr<Op>& target, bool mayWait = true);
void collectStreams();
cudaError_t status(cudaError_t e);
cudaError_t live();

}  // namespace internal
using namespace internal;
}  // namespace siglip_emu
