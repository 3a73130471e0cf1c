// The CUDA emulation's runtime (docs/CUDA_EMULATION.md): fibers and their scheduler, block
// barriers and warp collectives, shared memory and its race shadow, cp.async, device memory,
// streams and events, and the reports. Compiled without instrumentation: only the kernels'
// translation units report their memory accesses (hooks.cpp).
//
// This file: the configuration, the device lock, the reports and kernel names. The rest:
// fibers.cpp (fibers, the block scheduler, running a kernel), collectives.cpp (__syncthreads,
// warp collectives, wmma layouts), memory.cpp (shared memory and its race shadow, device
// memory, cp.async, atomics, the instrumentation's entry point, start-up), streams.cpp (streams
// and events, kernel launches), cuda_api.cpp (the runtime API); runtime_internal.h is what
// they share.
#include <dlfcn.h>
#include <link.h>
#include <unistd.h>

#include <chrono>
#include <cstdarg>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <string>

#include "runtime_internal.h"

namespace siglip_emu {

thread_local ThreadState* g_thread = nullptr;
bool g_checking = false;

namespace internal {

// ---- configuration --------------------------------------------------------------------------
uint64_t envU64(const char* name, uint64_t fallback) {
  const char* v = std::getenv(name);
  return v && *v ? std::strtoull(v, nullptr, 0) : fallback;
}

Config& config() {
  static Config c;
  return c;
}

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

}  // namespace internal
}  // namespace siglip_emu

extern "C" long siglip_emu_report_count() { return siglip_emu::g_reports.load(); }
extern "C" void siglip_emu_reset_reports() { siglip_emu::g_reports.store(0); }
