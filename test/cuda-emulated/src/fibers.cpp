// The emulation's fibers (one per CUDA thread, an x86-64 context switch) and their scheduler:
// a block's threads in a seeded random order, a grid's blocks one at a time; running a kernel.
#include <sys/mman.h>

#include <cstdio>
#include <cstdlib>
#include <map>
#include <string>
#include <vector>

#include "runtime_internal.h"

namespace siglip_emu {
namespace internal {

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

thread_local void* g_schedulerSp = nullptr;
thread_local Fiber* g_current = nullptr;

thread_local Launch* g_launch = nullptr;

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

}  // namespace internal

// ---- the device side ------------------------------------------------------------------------------
void deviceTrap(const char* what) {
  report("trap", "%s", what);
  if (!g_current) std::abort();
  g_current->state = FiberState::Trapped;
  toScheduler();
  std::abort();
}

int laneId() { return g_current ? g_current->tid % 32 : 0; }

}  // namespace siglip_emu
