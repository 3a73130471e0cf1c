// Streams and events: per-stream queues run when the host waits or polls, in an adversarial
// order; kernel launches queued on them and the kernels' attributes.
#include <chrono>
#include <cstring>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "runtime_internal.h"

namespace siglip_emu {
namespace internal {

// ---- streams and events -------------------------------------------------------------------------------
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


std::shared_ptr<Op> enqueue(Stream* s, const char* what, std::function<void()> run, std::shared_ptr<Op> extraDep,
                            std::function<bool()> gate) {
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
bool runUntil(const std::function<bool()>& done, bool mayWait) {
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
bool runUntil(const std::shared_ptr<Op>& target, bool mayWait) {
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

}  // namespace internal

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
