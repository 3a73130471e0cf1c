// Block barriers (__syncthreads) and warp collectives (__syncwarp, shuffles, ballots) on the
// fibers, and the wmma fragments' per-run layouts.
#include <algorithm>
#include <cstring>
#include <map>
#include <vector>

#include "runtime_internal.h"

namespace siglip_emu {

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

}  // namespace siglip_emu
