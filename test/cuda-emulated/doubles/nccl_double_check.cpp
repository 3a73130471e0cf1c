// Checks the NCCL test double (nccl_double.cpp) against plain host-side message passing: the
// double is opened with dlopen as the package opens it, and every byte a rank receives is
// compared with what its peer sent. P ranks = P host threads on P emulated devices
// (SIGLIP_EMU_DEVICES must be at least 3). Exits 1 on any mismatch.
//
//   SIGLIP_EMU_DEVICES=3 build-emu/nccl_double_check build-emu/doubles/libnccl.so.2
#include <cuda_runtime.h>
#include <dlfcn.h>

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <functional>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

extern "C" long siglip_emu_report_count();
extern "C" void siglip_emu_reset_reports();

namespace {

struct Id {
  char internal[128];
};
using Comm = void*;
struct Nccl {
  int (*getVersion)(int*);
  int (*getUniqueId)(Id*);
  int (*initRank)(Comm*, int, Id, int);
  int (*initAll)(Comm*, int, const int*);
  int (*destroy)(Comm);
  int (*abort)(Comm);
  int (*asyncError)(Comm, int*);
  int (*send)(const void*, size_t, int, int, Comm, cudaStream_t);
  int (*recv)(void*, size_t, int, int, Comm, cudaStream_t);
  int (*allGather)(const void*, void*, size_t, int, Comm, cudaStream_t);
  int (*groupStart)();
  int (*groupEnd)();
};

std::mutex g_printMutex;
int failures = 0, checks = 0;
void expect(bool ok, const std::string& what) {
  std::lock_guard<std::mutex> lock(g_printMutex);
  ++checks;
  if (!ok) {
    ++failures;
    std::printf("FAIL %s\n", what.c_str());
  }
}

// A byte pattern per (sender, receiver, message).
unsigned char pattern(int from, int to, int message, size_t i) { return (unsigned char)(from * 67 + to * 13 + message * 7 + i * 31); }

void* deviceBytes(size_t bytes) {
  void* p = nullptr;
  cudaMalloc(&p, bytes ? bytes : 1);
  return p;
}

// Runs body(rank) on P threads, rank r on device r.
void onRanks(int p, const std::function<void(int)>& body) {
  std::vector<std::thread> threads;
  for (int r = 0; r < p; ++r)
    threads.emplace_back([&, r] {
      cudaSetDevice(r);
      body(r);
    });
  for (auto& t : threads) t.join();
}

// Every rank sends `bytes` to the next and receives from the previous, `rounds` times, grouped.
void ringExchange(const Nccl& n, const std::vector<Comm>& comms, size_t bytes, int rounds, const char* label) {
  const int p = int(comms.size());
  onRanks(p, [&](int r) {
    cudaStream_t stream;
    cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking);
    const int next = (r + 1) % p, prev = (r + p - 1) % p;
    std::vector<unsigned char> out(bytes), in(bytes);
    void* dout = deviceBytes(bytes);
    void* din = deviceBytes(bytes);
    bool ok = true;
    for (int k = 0; k < rounds; ++k) {
      for (size_t i = 0; i < bytes; ++i) out[i] = pattern(r, next, k, i);
      cudaMemcpyAsync(dout, out.data(), bytes, cudaMemcpyHostToDevice, stream);
      int s = n.groupStart();
      s |= n.send(dout, bytes, 0, next, comms[size_t(r)], stream);
      s |= n.recv(din, bytes, 0, prev, comms[size_t(r)], stream);
      s |= n.groupEnd();
      cudaMemcpyAsync(in.data(), din, bytes, cudaMemcpyDeviceToHost, stream);
      cudaStreamSynchronize(stream);
      for (size_t i = 0; i < bytes && ok; ++i) ok = in[i] == pattern(prev, r, k, i);
      ok = ok && s == 0;
    }
    expect(ok, std::string(label) + ": rank " + std::to_string(r) + " received its predecessor's bytes");
    cudaFree(dout), cudaFree(din);
    cudaStreamDestroy(stream);
  });
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: %s libnccl.so.2 (the NCCL double)\n", argv[0]);
    return 3;
  }
  void* h = dlopen(argv[1], RTLD_NOW | RTLD_LOCAL);
  if (!h) {
    std::printf("FAIL dlopen: %s\n", dlerror());
    return 1;
  }
  Nccl n{};
  auto sym = [&](auto& fn, const char* name) { fn = reinterpret_cast<std::remove_reference_t<decltype(fn)>>(dlsym(h, name)); };
  sym(n.getVersion, "ncclGetVersion"), sym(n.getUniqueId, "ncclGetUniqueId"), sym(n.initRank, "ncclCommInitRank");
  sym(n.initAll, "ncclCommInitAll"), sym(n.destroy, "ncclCommDestroy"), sym(n.abort, "ncclCommAbort");
  sym(n.asyncError, "ncclCommGetAsyncError"), sym(n.send, "ncclSend"), sym(n.recv, "ncclRecv");
  sym(n.allGather, "ncclAllGather"), sym(n.groupStart, "ncclGroupStart"), sym(n.groupEnd, "ncclGroupEnd");
  int devices = 0;
  cudaGetDeviceCount(&devices);
  if (devices < 3) {
    std::printf("FAIL needs SIGLIP_EMU_DEVICES >= 3 (has %d)\n", devices);
    return 1;
  }
  int version = 0;
  expect(n.getVersion(&version) == 0 && version >= 20700, "ncclGetVersion: 2.7 or newer");

  // ncclCommInitRank from three threads with one id; a ring exchange; all-gather in place.
  {
    Id id{};
    expect(n.getUniqueId(&id) == 0, "ncclGetUniqueId");
    std::vector<Comm> comms(3, nullptr);
    onRanks(3, [&](int r) { expect(n.initRank(&comms[size_t(r)], 3, id, r) == 0, "ncclCommInitRank rank " + std::to_string(r)); });
    ringExchange(n, comms, 1000, 3, "InitRank P=3 ring");
    onRanks(3, [&](int r) {
      cudaStream_t stream;
      cudaStreamCreate(&stream);
      const size_t chunk = 5;
      std::vector<unsigned char> all(3 * chunk, 0);
      for (size_t i = 0; i < chunk; ++i) all[size_t(r) * chunk + i] = pattern(r, 9, 0, i);
      void* d = deviceBytes(all.size());
      cudaMemcpyAsync(d, all.data(), all.size(), cudaMemcpyHostToDevice, stream);
      const int s = n.allGather(static_cast<char*>(d) + size_t(r) * chunk, d, chunk, 0, comms[size_t(r)], stream);
      cudaMemcpyAsync(all.data(), d, all.size(), cudaMemcpyDeviceToHost, stream);
      cudaStreamSynchronize(stream);
      bool ok = s == 0;
      for (int q = 0; q < 3; ++q)
        for (size_t i = 0; i < chunk; ++i) ok = ok && all[size_t(q) * chunk + i] == pattern(q, 9, 0, i);
      expect(ok, "all-gather in place, rank " + std::to_string(r));
      cudaFree(d);
      cudaStreamDestroy(stream);
    });
    for (Comm c : comms) expect(n.destroy(c) == 0, "ncclCommDestroy");
  }

  // ncclCommInitAll; P = 1 (a send to oneself and its receive in one group); P = 2 both ways.
  {
    std::vector<Comm> comms(3, nullptr);
    const int devs[] = {0, 1, 2};
    expect(n.initAll(comms.data(), 3, devs) == 0, "ncclCommInitAll P=3");
    ringExchange(n, comms, 4097, 2, "InitAll P=3 ring");
    for (Comm c : comms) n.destroy(c);
    Comm one = nullptr;
    expect(n.initAll(&one, 1, devs) == 0, "ncclCommInitAll P=1");
    ringExchange(n, {one}, 33, 2, "P=1 to itself");
    n.destroy(one);
    const int dup[] = {1, 1};
    Comm two[2] = {};
    expect(n.initAll(two, 2, dup) == 5, "ncclCommInitAll with one device twice: ncclInvalidUsage");
  }

  // Errors: a bad peer; a receive whose size differs from the send (reported, the receiver's
  // async error); an ungrouped send-first exchange blocks until the communicators are aborted.
  {
    std::vector<Comm> comms(2, nullptr);
    const int devs[] = {0, 1};
    n.initAll(comms.data(), 2, devs);
    void* d = deviceBytes(64);
    expect(n.send(d, 4, 0, 5, comms[0], nullptr) == 4, "ncclSend to rank 5 of 2: ncclInvalidArgument");
    const long before = siglip_emu_report_count();
    onRanks(2, [&](int r) {
      void* buf = deviceBytes(64);
      n.groupStart();
      n.send(buf, r == 0 ? 8 : 4, 0, 1 - r, comms[size_t(r)], nullptr);
      n.recv(buf, 4, 0, 1 - r, comms[size_t(r)], nullptr);
      n.groupEnd();
      cudaDeviceSynchronize();
      cudaFree(buf);
    });
    int async1 = 0;
    n.asyncError(comms[1], &async1);
    expect(siglip_emu_report_count() > before && async1 == 5,
           "a receive of 4 bytes matched with a send of 8: reported, ncclInvalidUsage as the receiver's async error");
    siglip_emu_reset_reports();  // expected report: not a failure of this run

    for (Comm c : comms) n.destroy(c);
    expect(n.initAll(comms.data(), 2, devs) == 0, "ncclCommInitAll P=2 again");
    cudaEvent_t events[2];
    cudaStream_t streams[2];
    onRanks(2, [&](int r) {
      cudaStreamCreateWithFlags(&streams[r], cudaStreamNonBlocking);
      cudaEventCreate(&events[r]);
      n.send(d, 4, 0, 1 - r, comms[size_t(r)], streams[r]);  // ungrouped: waits for the peer's receive
      n.recv(static_cast<char*>(d) + 8, 4, 0, 1 - r, comms[size_t(r)], streams[r]);
      cudaEventRecord(events[r], streams[r]);
    });
    std::this_thread::sleep_for(std::chrono::milliseconds(300));
    const bool stuck = cudaEventQuery(events[0]) == cudaErrorNotReady && cudaEventQuery(events[1]) == cudaErrorNotReady;
    int async0 = 0;
    n.abort(comms[0]);
    n.asyncError(comms[1], &async0);
    n.abort(comms[1]);
    const bool drained = cudaEventSynchronize(events[0]) == cudaSuccess && cudaEventSynchronize(events[1]) == cudaSuccess;
    expect(stuck && drained && async0 == 6,
           "ungrouped sends first on both ranks block; after ncclCommAbort the streams drain and the peer sees ncclRemoteError");
    expect(n.send(d, 4, 0, 1, comms[0], nullptr) != 0, "an aborted communicator refuses new operations");
    cudaFree(d);
  }
  std::printf("%s NCCL double: %d checks, %d failed\n", failures ? "FAIL" : "PASS", checks, failures);
  return failures ? 1 : 0;
}
