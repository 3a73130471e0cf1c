// A test double of libnccl for the CUDA emulation (docs/CUDA_EMULATION.md): built as
// build-emu/doubles/libnccl.so.2 and loaded by the package's own loader
// (csrc/ring/nccl/nccl_transport.cpp, SIGLIP_NCCL_LIBRARY=build-emu/doubles), so that the NCCL
// transport and the GPU ring run on the emulation. The ranks of a communicator are the host
// threads of this one process (as with ncclCommInitAll, or ncclCommInitRank called by several
// threads with one unique id). It implements the documented semantics of the functions the
// package resolves (NCCL's user guide and API reference):
//
// * set-up: ncclGetVersion (2.21.5), ncclGetUniqueId (128 bytes), ncclCommInitRank (blocks
//   until all nranks ranks have joined with the id; one rank per device), ncclCommInitAll
//   (distinct devices), ncclCommDestroy, ncclCommFinalize, ncclCommAbort, ncclGetErrorString,
//   ncclGetLastError, ncclCommGetAsyncError;
// * point to point: the k-th ncclSend from rank a to rank b matches the k-th ncclRecv on b from
//   a, with the same count and type (a mismatch is reported and is the receiver's async error,
//   ncclInvalidUsage). Operations between ncclGroupStart and ncclGroupEnd (nestable; one host
//   thread may group operations of several communicators, as the transport's warm-up does)
//   are issued together at the outermost ncclGroupEnd; one outside a group is a group of its
//   own. A group runs on its stream after the stream's earlier work and completes only when
//   each of its receives got its message AND each of its sends was matched by a posted
//   receive: as on the device, a send nobody receives blocks its stream (so the ungrouped
//   send-before-receive ring deadlocks here too, until an abort);
// * ncclAllGather (in place or not): every rank's count elements, in rank order, once all ranks
//   of the communicator reached their k-th collective;
// * ncclCommAbort: the communicator's pending operations complete without moving data (its
//   streams drain) and its peers get ncclRemoteError as their async error while they wait for it.
//
// Every device buffer is checked to lie in a live device allocation when the operation runs.
// The double's state is guarded by the emulated runtime's lock (siglip_emu_lock): its queued
// operations run with it held. test/cuda-emulated/doubles/nccl_double_check.cpp checks it.
// Not a part of the package.
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "siglip_emu/runtime_api.h"

namespace {

enum Result : int {
  kSuccess = 0,
  kUnhandledCudaError = 1,
  kSystemError = 2,
  kInternalError = 3,
  kInvalidArgument = 4,
  kInvalidUsage = 5,
  kRemoteError = 6,
  kInProgress = 7,
};
constexpr int kIdBytes = 128;
struct UniqueId {
  char internal[kIdBytes];
};

int typeBytes(int type) {
  switch (type) {
    case 0: case 1: return 1;            // ncclInt8, ncclUint8
    case 2: case 3: return 4;            // ncclInt32, ncclUint32
    case 4: case 5: return 8;            // ncclInt64, ncclUint64
    case 6: return 2;                    // ncclFloat16
    case 7: return 4;                    // ncclFloat32
    case 8: return 8;                    // ncclFloat64
    case 9: return 2;                    // ncclBfloat16
    default: return 0;
  }
}

struct Locked {  // the runtime's lock for a scope
  Locked() { siglip_emu_lock(); }
  ~Locked() { siglip_emu_unlock(); }
};

thread_local std::string t_lastError;
Result fail(Result r, const std::string& why) {
  t_lastError = why;
  return r;
}

struct Clique;
struct Comm {
  std::shared_ptr<Clique> clique;
  int rank = 0, device = 0;
  bool aborted = false, destroyed = false;
  int asyncError = kSuccess;
  std::vector<uint64_t> sent, received;  // per peer: operations issued so far
  uint64_t collectives = 0;
  int pending = 0;  // issued groups not yet complete
};

struct Message {
  std::vector<unsigned char> bytes;
  int type = 0;
  size_t count = 0;
};

struct Clique {
  int size = 0;
  std::vector<Comm*> comms;  // by rank (null until joined)
  int joined = 0;
  // Point to point, per (from, to): the messages deposited by sequence number, and how many
  // receives the receiver has posted (its groups reached on its stream).
  std::map<std::pair<int, int>, std::map<uint64_t, Message>> mail;
  std::map<std::pair<int, int>, uint64_t> posted;
  // Collectives by sequence: the chunks deposited per rank, and how many ranks took the result.
  struct Gather {
    std::vector<std::vector<unsigned char>> chunks;
    int deposited = 0, taken = 0;
  };
  std::map<uint64_t, Gather> gathers;
  bool anyAborted = false;
};

std::map<std::string, std::shared_ptr<Clique>>& pendingCliques() {  // ncclCommInitRank's rendezvous, by id
  static auto* m = new std::map<std::string, std::shared_ptr<Clique>>();
  return *m;
}

// One operation of a group.
struct Item {
  enum Kind { Send, Recv, AllGather } kind;
  Comm* comm;
  int peer;
  const void* src;
  void* dst;
  size_t count;
  int type;
  uint64_t seq = 0;
};

// The operations of one communicator on one stream, issued together.
struct Issued {
  Comm* comm;
  cudaStream_t stream;
  std::vector<Item> items;
};

thread_local int t_groupDepth = 0;
thread_local std::vector<Item> t_grouped;
thread_local std::vector<cudaStream_t> t_groupedStreams;

bool checked(const void* p, size_t bytes, const char* what) {
  return siglip_emu_check_device_range(p, bytes, what) != 0;
}

// Op 1, when the stream reaches the group: deposit the sends' data, post the receives.
void startGroup(void* arg) {
  Issued& g = *static_cast<Issued*>(arg);
  Comm& c = *g.comm;
  if (c.aborted) return;
  Clique& q = *c.clique;
  for (const Item& it : g.items) {
    const size_t bytes = it.count * size_t(typeBytes(it.type));
    if (it.kind == Item::Send) {
      Message m;
      m.type = it.type, m.count = it.count;
      if (checked(it.src, bytes, "ncclSend: send buffer"))
        m.bytes.assign(static_cast<const unsigned char*>(it.src), static_cast<const unsigned char*>(it.src) + bytes);
      q.mail[{c.rank, it.peer}][it.seq] = std::move(m);
    } else if (it.kind == Item::Recv) {
      uint64_t& posted = q.posted[{it.peer, c.rank}];
      posted = std::max(posted, it.seq + 1);
    } else {
      Clique::Gather& gather = q.gathers[it.seq];
      gather.chunks.resize(size_t(q.size));
      if (checked(it.src, bytes, "ncclAllGather: send buffer"))
        gather.chunks[size_t(c.rank)].assign(static_cast<const unsigned char*>(it.src),
                                             static_cast<const unsigned char*>(it.src) + bytes);
      ++gather.deposited;
    }
  }
}

// Op 2 may run when every receive has its message and every send was received (posted).
int groupReady(void* arg) {
  Issued& g = *static_cast<Issued*>(arg);
  Comm& c = *g.comm;
  if (c.aborted) return 1;  // aborted: completes without moving data
  Clique& q = *c.clique;
  for (const Item& it : g.items) {
    if (it.kind == Item::Send) {
      const auto p = q.posted.find({c.rank, it.peer});
      if (p == q.posted.end() || p->second <= it.seq) return 0;
    } else if (it.kind == Item::Recv) {
      const auto box = q.mail.find({it.peer, c.rank});
      if (box == q.mail.end() || !box->second.count(it.seq)) return 0;
    } else {
      const auto gather = q.gathers.find(it.seq);
      if (gather == q.gathers.end() || gather->second.deposited < q.size) return 0;
    }
  }
  return 1;
}

void finishGroup(void* arg) {
  std::unique_ptr<Issued> owned(static_cast<Issued*>(arg));
  Issued& g = *owned;
  Comm& c = *g.comm;
  --c.pending;
  if (c.aborted) return;
  Clique& q = *c.clique;
  for (const Item& it : g.items) {
    const size_t bytes = it.count * size_t(typeBytes(it.type));
    if (it.kind == Item::Recv) {
      auto& box = q.mail[{it.peer, c.rank}];
      Message m = std::move(box[it.seq]);
      box.erase(it.seq);
      if (m.count != it.count || m.type != it.type) {
        char text[256];
        std::snprintf(text, sizeof text,
                      "rank %d's receive #%llu from rank %d expects %zu elements of type %d, the matching send has %zu of type %d",
                      c.rank, (unsigned long long)it.seq, it.peer, it.count, it.type, m.count, m.type);
        siglip_emu_report("nccl: mismatched send and receive", text);
        c.asyncError = kInvalidUsage;
        continue;
      }
      if (checked(it.dst, bytes, "ncclRecv: receive buffer") && m.bytes.size() == bytes) std::memcpy(it.dst, m.bytes.data(), bytes);
    } else if (it.kind == Item::AllGather) {
      auto found = q.gathers.find(it.seq);
      Clique::Gather& gather = found->second;
      if (checked(it.dst, bytes * size_t(q.size), "ncclAllGather: receive buffer"))
        for (int r = 0; r < q.size; ++r)
          if (gather.chunks[size_t(r)].size() == bytes)
            std::memmove(static_cast<unsigned char*>(it.dst) + size_t(r) * bytes, gather.chunks[size_t(r)].data(), bytes);
      if (++gather.taken == q.size) q.gathers.erase(found);
    }
  }
}

Result issue(std::vector<Item> items, const std::vector<cudaStream_t>& streams) {
  // One Issued per (communicator, stream), in the order of first appearance.
  std::vector<std::unique_ptr<Issued>> groups;
  for (size_t i = 0; i < items.size(); ++i) {
    Issued* g = nullptr;
    for (auto& existing : groups)
      if (existing->comm == items[i].comm && existing->stream == streams[i]) g = existing.get();
    if (!g) {
      groups.push_back(std::make_unique<Issued>(Issued{items[i].comm, streams[i], {}}));
      g = groups.back().get();
    }
    Item it = items[i];
    Comm& c = *it.comm;
    if (it.kind == Item::Send) it.seq = c.sent[size_t(it.peer)]++;
    else if (it.kind == Item::Recv) it.seq = c.received[size_t(it.peer)]++;
    else it.seq = c.collectives++;
    g->items.push_back(it);
  }
  for (auto& g : groups) {
    Issued* raw = g.release();
    ++raw->comm->pending;
    if (siglip_emu_enqueue(raw->stream, "nccl group (start)", startGroup, nullptr, raw) != cudaSuccess ||
        siglip_emu_enqueue(raw->stream, "nccl group (waits for its peers)", finishGroup, groupReady, raw) != cudaSuccess) {
      cudaGetLastError();
      return fail(kUnhandledCudaError, "queuing an NCCL group on its stream failed");
    }
  }
  return kSuccess;
}

Result post(Item item, cudaStream_t stream) {
  if (t_groupDepth > 0) {
    t_grouped.push_back(item);
    t_groupedStreams.push_back(stream);
    return kSuccess;
  }
  return issue({item}, {stream});
}

Result validComm(const Comm* c) {
  if (!c || c->destroyed) return fail(kInvalidArgument, "invalid communicator");
  if (c->aborted) return fail(kInvalidUsage, "the communicator was aborted");
  return kSuccess;
}

std::shared_ptr<Clique> newClique(int size) {
  auto q = std::make_shared<Clique>();
  q->size = size;
  q->comms.assign(size_t(size), nullptr);
  return q;
}

Comm* newComm(const std::shared_ptr<Clique>& q, int rank, int device) {
  auto* c = new Comm();
  c->clique = q, c->rank = rank, c->device = device;
  c->sent.assign(size_t(q->size), 0);
  c->received.assign(size_t(q->size), 0);
  q->comms[size_t(rank)] = c;
  ++q->joined;
  return c;
}

}  // namespace

#define NCCL_DOUBLE extern "C" __attribute__((visibility("default")))
using Comm_t = Comm*;

NCCL_DOUBLE int ncclGetVersion(int* version) {
  if (!version) return kInvalidArgument;
  *version = 22105;  // 2.21.5 (NCCL_VERSION_CODE: X·10000 + Y·100 + Z)
  return kSuccess;
}

NCCL_DOUBLE int ncclGetUniqueId(UniqueId* id) {
  if (!id) return kInvalidArgument;
  static uint64_t counter = 0;
  Locked lock;
  std::memset(id->internal, 0, kIdBytes);
  const uint64_t mine = ++counter, stamp = uint64_t(std::chrono::steady_clock::now().time_since_epoch().count());
  std::memcpy(id->internal, "siglip-nccl-double", 18);
  std::memcpy(id->internal + 24, &mine, 8);
  std::memcpy(id->internal + 32, &stamp, 8);
  return kSuccess;
}

NCCL_DOUBLE int ncclCommInitRank(Comm_t* comm, int nranks, UniqueId id, int rank) {
  if (!comm || nranks < 1 || rank < 0 || rank >= nranks) return fail(kInvalidArgument, "ncclCommInitRank: bad nranks or rank");
  *comm = nullptr;
  int device = 0;
  cudaGetDevice(&device);
  Locked lock;
  const std::string key(id.internal, kIdBytes);
  auto& pending = pendingCliques();
  std::shared_ptr<Clique>& q = pending[key];
  if (!q) q = newClique(nranks);
  if (q->size != nranks) return fail(kInvalidUsage, "ncclCommInitRank: ranks disagree on nranks");
  if (q->comms[size_t(rank)]) return fail(kInvalidUsage, "ncclCommInitRank: rank " + std::to_string(rank) + " joined twice");
  for (const Comm* other : q->comms)
    if (other && other->device == device) return fail(kInvalidUsage, "Duplicate GPU detected: two ranks on one device");
  std::shared_ptr<Clique> mine = q;
  Comm* c = newComm(mine, rank, device);
  // Blocks until every rank has joined (NCCL has no timeout here; the emulation reports a hang).
  const auto start = std::chrono::steady_clock::now();
  while (mine->joined < mine->size) {
    if (std::chrono::steady_clock::now() - start > std::chrono::seconds(120)) {
      siglip_emu_report("nccl hang", "ncclCommInitRank: not every rank joined within 120 s");
      return fail(kSystemError, "ncclCommInitRank: the other ranks never joined");
    }
    siglip_emu_wait(0.2);
  }
  if (pending.count(key) && pending[key] == mine) pending.erase(key);
  *comm = c;
  return kSuccess;
}

NCCL_DOUBLE int ncclCommInitAll(Comm_t* comms, int ndev, const int* devices) {
  if (!comms || ndev < 1) return fail(kInvalidArgument, "ncclCommInitAll: bad arguments");
  int count = 0;
  cudaGetDeviceCount(&count);
  for (int i = 0; i < ndev; ++i) {
    const int d = devices ? devices[i] : i;
    if (d < 0 || d >= count) return fail(kInvalidArgument, "ncclCommInitAll: invalid device " + std::to_string(d));
    for (int j = 0; j < i; ++j)
      if ((devices ? devices[j] : j) == d) return fail(kInvalidUsage, "Duplicate GPU detected: two ranks on one device");
  }
  Locked lock;
  auto q = newClique(ndev);
  for (int i = 0; i < ndev; ++i) comms[i] = newComm(q, i, devices ? devices[i] : i);
  return kSuccess;
}

NCCL_DOUBLE int ncclCommFinalize(Comm_t comm) {
  Locked lock;
  return validComm(comm);
}

NCCL_DOUBLE int ncclCommDestroy(Comm_t comm) {
  Locked lock;
  if (!comm || comm->destroyed) return fail(kInvalidArgument, "ncclCommDestroy: invalid communicator");
  if (comm->pending > 0 && !comm->aborted) {
    // "ncclCommDestroy … waits for the completion of operations": the caller must have waited.
    siglip_emu_report("nccl", "ncclCommDestroy with operations still in flight (use ncclCommAbort)");
    comm->aborted = true;
  }
  comm->destroyed = true;  // kept allocated: queued operations may still name it
  return kSuccess;
}

NCCL_DOUBLE int ncclCommAbort(Comm_t comm) {
  Locked lock;
  if (!comm || comm->destroyed) return fail(kInvalidArgument, "ncclCommAbort: invalid communicator");
  comm->aborted = true;
  comm->destroyed = true;
  comm->clique->anyAborted = true;
  return kSuccess;
}

NCCL_DOUBLE int ncclCommGetAsyncError(Comm_t comm, int* asyncError) {
  Locked lock;
  if (!comm || comm->destroyed || !asyncError) return fail(kInvalidArgument, "ncclCommGetAsyncError: bad arguments");
  *asyncError = comm->asyncError;
  // A peer aborted while this rank still waits for operations: as a remote error.
  if (*asyncError == kSuccess && comm->clique->anyAborted && comm->pending > 0) *asyncError = kRemoteError;
  return kSuccess;
}

NCCL_DOUBLE const char* ncclGetErrorString(int result) {
  switch (result) {
    case kSuccess: return "no error";
    case kUnhandledCudaError: return "unhandled cuda error";
    case kSystemError: return "unhandled system error";
    case kInternalError: return "internal error";
    case kInvalidArgument: return "invalid argument";
    case kInvalidUsage: return "invalid usage";
    case kRemoteError: return "remote process exited or there was a network error";
    case kInProgress: return "NCCL operation in progress";
    default: return "unknown result code";
  }
}

NCCL_DOUBLE const char* ncclGetLastError(Comm_t) { return t_lastError.c_str(); }

NCCL_DOUBLE int ncclGroupStart() {
  ++t_groupDepth;
  return kSuccess;
}

NCCL_DOUBLE int ncclGroupEnd() {
  if (t_groupDepth == 0) return fail(kInvalidUsage, "ncclGroupEnd without ncclGroupStart");
  if (--t_groupDepth > 0) return kSuccess;
  Locked lock;
  std::vector<Item> items;
  std::vector<cudaStream_t> streams;
  items.swap(t_grouped);
  streams.swap(t_groupedStreams);
  for (const Item& it : items)
    if (it.comm->aborted || it.comm->destroyed) return fail(kInvalidUsage, "ncclGroupEnd: an operation's communicator was aborted");
  return issue(std::move(items), streams);
}

namespace {
Result p2p(Item::Kind kind, const void* src, void* dst, size_t count, int type, int peer, Comm_t comm, cudaStream_t stream) {
  Locked lock;
  if (const Result r = validComm(comm)) return r;
  if (typeBytes(type) == 0) return fail(kInvalidArgument, "invalid datatype " + std::to_string(type));
  if (peer < 0 || peer >= comm->clique->size) return fail(kInvalidArgument, "invalid peer " + std::to_string(peer));
  if (count > 0 && !(kind == Item::Send ? src : dst)) return fail(kInvalidArgument, "null buffer");
  return post(Item{kind, comm, peer, src, dst, count, type}, stream);
}
}  // namespace

NCCL_DOUBLE int ncclSend(const void* buff, size_t count, int type, int peer, Comm_t comm, cudaStream_t stream) {
  return p2p(Item::Send, buff, nullptr, count, type, peer, comm, stream);
}

NCCL_DOUBLE int ncclRecv(void* buff, size_t count, int type, int peer, Comm_t comm, cudaStream_t stream) {
  return p2p(Item::Recv, nullptr, buff, count, type, peer, comm, stream);
}

NCCL_DOUBLE int ncclAllGather(const void* send, void* recv, size_t count, int type, Comm_t comm, cudaStream_t stream) {
  Locked lock;
  if (const Result r = validComm(comm)) return r;
  if (typeBytes(type) == 0) return fail(kInvalidArgument, "invalid datatype " + std::to_string(type));
  if (count > 0 && (!send || !recv)) return fail(kInvalidArgument, "null buffer");
  return post(Item{Item::AllGather, comm, 0, send, recv, count, type}, stream);
}
