// The NCCL transport (see nccl_transport.h for the API).
//
// How sends and receives become NCCL operations
// ---------------------------------------------
// NCCL has no tags: between two ranks, the k-th ncclSend is matched with the peer's k-th
// ncclRecv. And a send (or receive) outside a group blocks its stream until the peer's
// matching receive (send) runs, so on a ring where every rank sends to its next one first,
// ungrouped operations deadlock. The one-way ring posts, at step s (all ranks in the same
// order): receive texts, send texts, receive accumulator, … compute …, send accumulator,
// where the accumulator's tag is that of the previous step's; so its sends and its
// receives go out in different tag orders, and issuing in posting order would match a text
// block with an accumulator. The two-way ring interleaves two such flows.
//
// The rule here: a posted operation is queued until the operation of the *other* kind with
// the *same tag* is posted on this rank; then the two are issued together as one group
// (ncclGroupStart; ncclSend; ncclRecv; ncclGroupEnd) on the transport's communication
// stream. A tag names one flow (transport.h): a send to Next with tag t pairs with the
// receive from Previous with tag t, or a send to Previous with the receive from Next. Every
// group is thus one ring shift of one tag. Because every rank posts the same sequence of
// tags, every rank issues the same sequence of groups, and group k of rank r sends exactly
// what group k of its receiving neighbour receives: the k-th send from r to a neighbour and
// that neighbour's k-th receive from r carry the same tag, so they match (with P = 2 both
// flows share the one pair of ranks, and still come in the same order on both), and as each
// group both sends and receives, the ring of groups k progresses together (NCCL runs the
// send and the receive of one group concurrently). Deadlock-free by induction over k: a
// rank only ever waits for groups it has already issued, and issues group k before waiting
// for it. For the one-way ring this gives the groups T2, T4, A3, T6, A5, … with the texts of
// the next step and the previous step's accumulator both moving while the current block
// computes (the overlap the schedule wants).
//
// Empty messages take part in the pairing but are not given to NCCL. A wait() on an
// operation whose partner was never posted (not something the ring does) issues everything
// queued as one group (sends then receives, each in tag order) and waits; if the other
// ranks do not do the same, that wait ends in the timeout error, not a hang.
//
// wait() polls the group's CUDA event (cudaEventQuery) and ncclCommGetAsyncError until the
// deadline; on timeout, an NCCL error or an abort raised by another in-process endpoint it
// calls ncclCommAbort (which stops kernels stuck waiting for a peer) and throws
// siglip::Error naming the rank and what it waited for. The transport is unusable after.
// A dead process in a multi-process group is noticed by the others' timeouts.
//
// The library is opened with dlopen (nccl_library.h: our declarations of its API, no nccl.h).
#include "nccl_transport.h"

#include <cuda_runtime.h>

#include <algorithm>
#include <atomic>
#include <cstring>
#include <deque>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "../../core/errors.h"
#include "nccl_library.h"

namespace siglip::ring {
namespace {

void checkCuda(cudaError_t status, const char* what) {
  if (status == cudaSuccess) return;
  cudaGetLastError();
  const std::string text = std::string(what) + ": " + cudaGetErrorName(status) + " (" + cudaGetErrorString(status) + ")";
  if (status == cudaErrorMemoryAllocation) throw Error(ErrorKind::OutOfMemory, "device", "CUDA out of memory in " + text);
  throw Error(ErrorKind::Internal, "device", "CUDA error in " + text);
}

// Makes `device` current for a scope and restores the previous one.
class CurrentDevice {
 public:
  explicit CurrentDevice(int device) {
    checkCuda(cudaGetDevice(&previous_), "cudaGetDevice");
    if (device != previous_) checkCuda(cudaSetDevice(device), "cudaSetDevice");
  }
  ~CurrentDevice() { cudaSetDevice(previous_); }
  CurrentDevice(const CurrentDevice&) = delete;
  CurrentDevice& operator=(const CurrentDevice&) = delete;

 private:
  int previous_ = 0;
};

void checkDevice(int device) {
  int count = 0;
  const cudaError_t status = cudaGetDeviceCount(&count);
  if (status != cudaSuccess) cudaGetLastError();
  if (device < 0 || device >= count)
    throw Error(ErrorKind::Range, "device",
                "Expected a CUDA device ordinal below " + std::to_string(count) + " for device but received " +
                    std::to_string(device) +
                    (status != cudaSuccess ? std::string(" (") + cudaGetErrorString(status) + ")" : std::string()));
}

// Shared by the endpoints of one process: the first failure, so the others stop at once.
struct AbortFlag {
  std::atomic<bool> raised{false};
  std::mutex mutex;
  std::string reason;
  void raise(const std::string& why) {
    std::lock_guard<std::mutex> lock(mutex);
    if (!raised.load()) {
      reason = why;
      raised.store(true);
    }
  }
  std::string get() {
    std::lock_guard<std::mutex> lock(mutex);
    return reason;
  }
};

// One ncclGroupStart/End (or one all-gather) on the communication stream, and the event
// recorded after it. No event: nothing was given to NCCL (empty messages only).
struct IssuedGroup {
  cudaEvent_t event = nullptr;
  bool done = false;
  ~IssuedGroup() {
    if (event) cudaEventDestroy(event);
  }
};

struct Operation {
  bool send = false;
  Neighbour peer = Neighbour::Next;  // where it goes to or comes from
  void* data = nullptr;
  size_t bytes = 0;
  int tag = 0;
  std::string what;                    // for error messages
  std::shared_ptr<IssuedGroup> group;  // null while queued
};

class NcclTransfer : public PendingTransfer {
 public:
  std::shared_ptr<Operation> operation;
};

using Clock = std::chrono::steady_clock;

class NcclTransport : public Transport {
 public:
  NcclTransport(ncclComm_t comm, int rank, int size, int device, std::chrono::milliseconds timeout,
                std::shared_ptr<AbortFlag> flag)
      : comm_(comm), rank_(rank), size_(size), device_(device), timeout_(timeout), flag_(std::move(flag)) {
    // If this throws, the communicator stays the caller's to abort.
    CurrentDevice current(device_);
    checkCuda(cudaStreamCreateWithFlags(&stream_, cudaStreamNonBlocking), "cudaStreamCreateWithFlags");
  }

  ~NcclTransport() override {
    const Nccl& lib = nccl();
    int previous = 0;
    cudaGetDevice(&previous);
    cudaSetDevice(device_);
    if (comm_) {
      bool idle = true;
      for (const auto& g : inFlight_)
        if (g->event && !g->done && cudaEventQuery(g->event) != cudaSuccess) idle = false;
      cudaGetLastError();
      if (!idle || flag_->raised.load()) {
        lib.commAbort(comm_);  // something is stuck or a peer failed: do not wait for it
      } else {
        if (lib.commFinalize) lib.commFinalize(comm_);
        lib.commDestroy(comm_);
      }
      comm_ = nullptr;
    }
    inFlight_.clear();
    queued_.clear();
    if (gatherDevice_) cudaFree(gatherDevice_);
    if (gatherHost_) cudaFreeHost(gatherHost_);
    if (stream_) cudaStreamDestroy(stream_);
    cudaSetDevice(previous);
  }

  int rank() const override { return rank_; }
  int size() const override { return size_; }
  uint64_t bytesSent() const override { return bytesSent_; }

  Transfer send(Neighbour to, const void* data, size_t bytes, int tag) override {
    return post(true, to, const_cast<void*>(data), bytes, tag);
  }
  Transfer receive(Neighbour from, void* data, size_t bytes, int tag) override {
    return post(false, from, data, bytes, tag);
  }

  void wait(Transfer& transfer) override {
    if (!transfer) return;
    auto* t = dynamic_cast<NcclTransfer*>(transfer.get());
    if (!t) {
      transfer.reset();
      return;
    }
    const std::shared_ptr<Operation> operation = t->operation;
    if (!operation->group) {
      usable();
      issueAllQueued();  // its partner was never posted on this rank (see the top of the file)
    }
    complete(operation->group, operation->what);
    transfer.reset();
  }

  void allGather(const void* mine, size_t bytes, void* all) override {
    usable();
    if (bytes == 0) return;
    const size_t total = bytes * size_t(size_);
    CurrentDevice current(device_);
    if (gatherBytes_ < total) {
      if (gatherDevice_) cudaFree(gatherDevice_), gatherDevice_ = nullptr;
      if (gatherHost_) cudaFreeHost(gatherHost_), gatherHost_ = nullptr;
      gatherBytes_ = 0;
      checkCuda(cudaMalloc(&gatherDevice_, total), "cudaMalloc");
      checkCuda(cudaMallocHost(&gatherHost_, total), "cudaMallocHost");
      gatherBytes_ = total;
    }
    char* device = static_cast<char*>(gatherDevice_);
    char* host = static_cast<char*>(gatherHost_);
    std::memcpy(host + size_t(rank_) * bytes, mine, bytes);
    auto group = std::make_shared<IssuedGroup>();
    checkCuda(cudaEventCreateWithFlags(&group->event, cudaEventDisableTiming), "cudaEventCreateWithFlags");
    checkCuda(cudaMemcpyAsync(device + size_t(rank_) * bytes, host + size_t(rank_) * bytes, bytes,
                              cudaMemcpyHostToDevice, stream_),
              "cudaMemcpyAsync");
    const ncclResult_t status =
        nccl().allGather(device + size_t(rank_) * bytes, device, bytes, ncclInt8, comm_, stream_);  // in place
    if (status != ncclSuccess) fail("NCCL error in ncclAllGather: " + resultText(status, comm_));
    checkCuda(cudaMemcpyAsync(host, device, total, cudaMemcpyDeviceToHost, stream_), "cudaMemcpyAsync");
    checkCuda(cudaEventRecord(group->event, stream_), "cudaEventRecord");
    track(group);
    complete(group, "all ranks to reach the same all-gather");
    std::memcpy(all, host, total);
  }

  void abort(const std::string& reason) override {
    flag_->raise("rank " + std::to_string(rank_) + " failed: " + reason);
    abortCommunicator();
  }

  // Connections are made on first use inside ncclGroupEnd / the first collective, which
  // has no deadline; doing it once here, while creating the group, keeps every later
  // blocking call bounded by the timeout. One outer group over all given endpoints, so that
  // a single thread can warm up all the endpoints of one process.
  static void warmUp(const std::vector<NcclTransport*>& endpoints) {
    const Nccl& lib = requireNccl();
    const int size = endpoints.front()->size_;
    std::vector<void*> scratch(endpoints.size(), nullptr);
    struct Free {
      std::vector<void*>& s;
      const std::vector<NcclTransport*>& e;
      ~Free() {
        int previous = 0;
        cudaGetDevice(&previous);
        for (size_t i = 0; i < s.size(); ++i)
          if (s[i]) {
            cudaSetDevice(e[i]->device_);
            cudaFree(s[i]);
          }
        cudaSetDevice(previous);
      }
    } freeScratch{scratch, endpoints};
    for (size_t i = 0; i < endpoints.size(); ++i) {
      CurrentDevice current(endpoints[i]->device_);
      checkCuda(cudaMalloc(&scratch[i], size_t(size) + 2), "cudaMalloc");
      checkCuda(cudaMemsetAsync(scratch[i], 0, size_t(size) + 2, endpoints[i]->stream_), "cudaMemsetAsync");
    }
    const auto grouped = [&](const char* what, auto&& issueOne) {
      checkNccl(lib.groupStart(), "ncclGroupStart");
      ncclResult_t status = ncclSuccess;
      for (size_t i = 0; i < endpoints.size(); ++i) {
        const ncclResult_t r = issueOne(*endpoints[i], static_cast<char*>(scratch[i]));
        if (status == ncclSuccess) status = r;
      }
      const ncclResult_t end = lib.groupEnd();
      if (status == ncclSuccess) status = end;
      if (status != ncclSuccess) {
        for (NcclTransport* e : endpoints) e->abortCommunicator();
        throw Error(ErrorKind::Internal, "nccl",
                    std::string("NCCL error in the connection warm-up (") + what + "): " + resultText(status, nullptr));
      }
    };
    grouped("ncclAllGather", [&](NcclTransport& e, char* s) {
      return lib.allGather(s + e.rank_, s, 1, ncclInt8, e.comm_, e.stream_);
    });
    // Both directions: the two-way ring also sends to the previous rank.
    for (const Neighbour to : {Neighbour::Next, Neighbour::Previous}) {
      if (size == 1 || (size == 2 && to == Neighbour::Previous)) continue;  // P = 2: one pair of ranks
      grouped("ncclSend/ncclRecv", [&](NcclTransport& e, char* s) {
        ncclResult_t r = lib.send(s + size, 1, ncclInt8, e.neighbour(to), e.comm_, e.stream_);
        const ncclResult_t r2 = lib.recv(s + size + 1, 1, ncclInt8, e.neighbour(opposite(to)), e.comm_, e.stream_);
        return r != ncclSuccess ? r : r2;
      });
    }
    for (NcclTransport* e : endpoints) {
      CurrentDevice current(e->device_);
      auto group = std::make_shared<IssuedGroup>();
      checkCuda(cudaEventCreateWithFlags(&group->event, cudaEventDisableTiming), "cudaEventCreateWithFlags");
      checkCuda(cudaEventRecord(group->event, e->stream_), "cudaEventRecord");
      e->track(group);
      e->complete(group, "the other ranks to connect (warm-up)");
    }
  }

 private:
  void usable() const {
    if (aborted_ || !comm_)
      throw Error(ErrorKind::Internal, "ring",
                  "ring rank " + std::to_string(rank_) + ": the NCCL transport was aborted" +
                      (flag_->raised.load() ? " (" + flag_->get() + ")" : std::string()));
  }

  Transfer post(bool send, Neighbour peer, void* data, size_t bytes, int tag) {
    usable();
    if (bytes > 0 && !data) throw Error(ErrorKind::Internal, "ring", "NCCL transport: null buffer");
    auto operation = std::make_shared<Operation>();
    operation->send = send;
    operation->peer = peer;
    operation->data = data;
    operation->bytes = bytes;
    operation->tag = tag;
    operation->what = send ? "sending " + std::to_string(bytes) + " bytes (tag " + std::to_string(tag) + ") to rank " +
                                 std::to_string(neighbour(peer))
                           : "a message of " + std::to_string(bytes) + " bytes (tag " + std::to_string(tag) +
                                 ") from rank " + std::to_string(neighbour(peer));
    const auto partner = std::find_if(queued_.begin(), queued_.end(), [&](const std::shared_ptr<Operation>& q) {
      return q->send != send && q->tag == tag;
    });
    if (partner != queued_.end()) {
      if ((*partner)->peer != opposite(peer))
        throw Error(ErrorKind::Internal, "ring",
                    "NCCL transport: tag " + std::to_string(tag) + " used for both directions of the ring");
      std::vector<std::shared_ptr<Operation>> pair{*partner, operation};
      queued_.erase(partner);
      issue(std::move(pair));
    } else {
      queued_.push_back(operation);
    }
    if (send) bytesSent_ += bytes;
    auto transfer = std::make_unique<NcclTransfer>();
    transfer->operation = std::move(operation);
    return transfer;
  }

  void issueAllQueued() {
    std::vector<std::shared_ptr<Operation>> all(queued_.begin(), queued_.end());
    queued_.clear();
    if (!all.empty()) issue(std::move(all));
  }

  // One group: the sends then the receives, each in tag order.
  // A send and a receive to oneself (P = 1) are thus adjacent in the group, as NCCL wants.
  void issue(std::vector<std::shared_ptr<Operation>> operations) {
    std::stable_sort(operations.begin(), operations.end(),
                     [](const std::shared_ptr<Operation>& a, const std::shared_ptr<Operation>& b) {
                       return a->send != b->send ? a->send : a->tag < b->tag;
                     });
    auto group = std::make_shared<IssuedGroup>();
    const bool any = std::any_of(operations.begin(), operations.end(),
                                 [](const std::shared_ptr<Operation>& o) { return o->bytes > 0; });
    if (any) {
      const Nccl& lib = nccl();
      CurrentDevice current(device_);
      checkCuda(cudaEventCreateWithFlags(&group->event, cudaEventDisableTiming), "cudaEventCreateWithFlags");
      const ncclResult_t start = lib.groupStart();
      if (start != ncclSuccess) fail("NCCL error in ncclGroupStart: " + resultText(start, comm_));
      ncclResult_t status = ncclSuccess;
      const char* failed = "";
      for (const auto& o : operations) {
        if (o->bytes == 0) continue;
        const int peerRank = neighbour(o->peer);
        const ncclResult_t r = o->send ? lib.send(o->data, o->bytes, ncclInt8, peerRank, comm_, stream_)
                                       : lib.recv(o->data, o->bytes, ncclInt8, peerRank, comm_, stream_);
        if (r != ncclSuccess && status == ncclSuccess) status = r, failed = o->send ? "ncclSend" : "ncclRecv";
      }
      const ncclResult_t end = lib.groupEnd();  // always closes the group, even after an error
      if (status == ncclSuccess && end != ncclSuccess) status = end, failed = "ncclGroupEnd";
      if (status != ncclSuccess) fail(std::string("NCCL error in ") + failed + ": " + resultText(status, comm_));
      checkCuda(cudaEventRecord(group->event, stream_), "cudaEventRecord");
    } else {
      group->done = true;
    }
    for (const auto& o : operations) o->group = group;
    track(group);
  }

  void track(const std::shared_ptr<IssuedGroup>& group) {
    inFlight_.erase(std::remove_if(inFlight_.begin(), inFlight_.end(),
                                   [](const std::shared_ptr<IssuedGroup>& g) { return g->done; }),
                    inFlight_.end());
    if (!group->done) inFlight_.push_back(group);
  }

  // Polls until the group has finished on the GPU, NCCL reports an error, another endpoint
  // of this process aborted, or the deadline passes.
  void complete(const std::shared_ptr<IssuedGroup>& group, const std::string& what) {
    usable();
    if (!group || group->done || !group->event) return;
    const Nccl& lib = nccl();
    const auto deadline = Clock::now() + timeout_;
    for (int spin = 0;; ++spin) {
      const cudaError_t query = cudaEventQuery(group->event);
      if (query == cudaSuccess) {
        group->done = true;
        return;
      }
      if (query != cudaErrorNotReady) {
        cudaGetLastError();
        fail("CUDA error " + std::string(cudaGetErrorName(query)) + " (" + cudaGetErrorString(query) +
             ") while waiting for " + what);
      }
      ncclResult_t async = ncclSuccess;
      if (lib.commGetAsyncError(comm_, &async) == ncclSuccess && async != ncclSuccess && async != ncclInProgress)
        fail("NCCL reported " + resultText(async, comm_) + " while waiting for " + what);
      if (flag_->raised.load()) {
        abortCommunicator();
        throw Error(ErrorKind::Internal, "ring", "ring rank " + std::to_string(rank_) + " stopped: " + flag_->get());
      }
      if (Clock::now() > deadline)
        fail("timed out after " + std::to_string(timeout_.count()) + " ms waiting for " + what);
      if (spin < 2000) {
        std::this_thread::yield();
      } else {
        std::this_thread::sleep_for(std::chrono::microseconds(50));
      }
    }
  }

  // Aborts the communicator, tells this process's other endpoints, and throws.
  [[noreturn]] void fail(const std::string& problem) {
    const std::string message = "ring rank " + std::to_string(rank_) + " " + problem;
    flag_->raise("rank " + std::to_string(rank_) + " failed: " + problem);
    abortCommunicator();
    throw Error(ErrorKind::Internal, "ring", message);
  }

  void abortCommunicator() {
    aborted_ = true;
    if (!comm_) return;
    int previous = 0;
    cudaGetDevice(&previous);
    cudaSetDevice(device_);
    nccl().commAbort(comm_);  // stops kernels waiting for a peer; the handle is gone after
    comm_ = nullptr;
    cudaSetDevice(previous);
  }

  ncclComm_t comm_ = nullptr;
  const int rank_, size_, device_;
  const std::chrono::milliseconds timeout_;
  std::shared_ptr<AbortFlag> flag_;
  cudaStream_t stream_ = nullptr;
  bool aborted_ = false;
  std::deque<std::shared_ptr<Operation>> queued_;
  std::vector<std::shared_ptr<IssuedGroup>> inFlight_;
  void* gatherDevice_ = nullptr;
  void* gatherHost_ = nullptr;
  size_t gatherBytes_ = 0;
  uint64_t bytesSent_ = 0;
};

}  // namespace

bool ncclAvailable(std::string* reason) {
  const Nccl& lib = nccl();
  if (reason) *reason = lib.error;
  return lib.error.empty();
}

std::string ncclLibraryPath() { return requireNccl().path; }

std::string ncclVersionString() {
  const Nccl& lib = requireNccl();
  return std::to_string(lib.major) + "." + std::to_string(lib.minor) + "." + std::to_string(lib.patch);
}

std::vector<uint8_t> ncclUniqueIdBytes() {
  const Nccl& lib = requireNccl();
  ncclUniqueId id{};
  checkNccl(lib.getUniqueId(&id), "ncclGetUniqueId");
  return std::vector<uint8_t>(reinterpret_cast<const uint8_t*>(id.internal),
                              reinterpret_cast<const uint8_t*>(id.internal) + kNcclUniqueIdBytes);
}

std::unique_ptr<Transport> createNcclTransport(int rank, int size, const std::vector<uint8_t>& uniqueId, int device,
                                               std::chrono::milliseconds timeout) {
  const Nccl& lib = requireNccl();
  if (size < 1 || size > 65536)
    throw Error(ErrorKind::Range, "ranks", "Expected from 1 to 65536 ranks for ranks but received " + std::to_string(size));
  if (rank < 0 || rank >= size)
    throw Error(ErrorKind::Range, "rank",
                "Expected a rank below " + std::to_string(size) + " for rank but received " + std::to_string(rank));
  if (uniqueId.size() != kNcclUniqueIdBytes)
    throw Error(ErrorKind::Range, "uniqueId",
                "Expected " + std::to_string(kNcclUniqueIdBytes) + " bytes (ncclUniqueIdBytes()) for uniqueId but received " +
                    std::to_string(uniqueId.size()));
  checkDevice(device);
  ncclUniqueId id{};
  std::memcpy(id.internal, uniqueId.data(), kNcclUniqueIdBytes);
  ncclComm_t comm = nullptr;
  {
    CurrentDevice current(device);  // ncclCommInitRank binds the communicator to the current device
    checkNccl(lib.commInitRank(&comm, size, id, rank), "ncclCommInitRank");
  }
  std::unique_ptr<NcclTransport> transport;
  try {
    transport = std::make_unique<NcclTransport>(comm, rank, size, device, timeout, std::make_shared<AbortFlag>());
  } catch (...) {
    lib.commAbort(comm);
    throw;
  }
  NcclTransport::warmUp({transport.get()});
  return transport;
}

std::vector<std::unique_ptr<Transport>> createNcclGroupAllDevices(const std::vector<int>& devices,
                                                                  std::chrono::milliseconds timeout) {
  const Nccl& lib = requireNccl();
  const int n = int(devices.size());
  if (n < 1) throw Error(ErrorKind::Range, "devices", "Expected at least one device for devices but received none");
  for (int i = 0; i < n; ++i) {
    checkDevice(devices[size_t(i)]);
    for (int j = 0; j < i; ++j)
      if (devices[size_t(j)] == devices[size_t(i)])
        throw Error(ErrorKind::Range, "devices",
                    "Expected a different GPU for every rank for devices but received device " +
                        std::to_string(devices[size_t(i)]) + " twice (NCCL does not support two ranks on one GPU)");
  }
  std::vector<ncclComm_t> comms(size_t(n), nullptr);
  checkNccl(lib.commInitAll(comms.data(), n, devices.data()), "ncclCommInitAll");
  auto flag = std::make_shared<AbortFlag>();
  std::vector<std::unique_ptr<NcclTransport>> endpoints;
  endpoints.reserve(size_t(n));  // push_back cannot throw below
  try {
    for (int r = 0; r < n; ++r) {
      endpoints.push_back(std::make_unique<NcclTransport>(comms[size_t(r)], r, n, devices[size_t(r)], timeout, flag));
      comms[size_t(r)] = nullptr;  // owned by its endpoint now
    }
  } catch (...) {
    for (ncclComm_t c : comms)
      if (c) lib.commAbort(c);
    flag->raise("creating the NCCL endpoints failed");
    throw;
  }
  std::vector<NcclTransport*> raw;
  for (auto& e : endpoints) raw.push_back(e.get());
  NcclTransport::warmUp(raw);
  std::vector<std::unique_ptr<Transport>> result;
  for (auto& e : endpoints) result.push_back(std::move(e));
  return result;
}

}  // namespace siglip::ring
