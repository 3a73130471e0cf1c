#include "mpi_transport.h"

#include <mpi.h>

#include <atomic>
#include <climits>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "../../core/errors.h"

namespace siglip::ring {
namespace {

std::mutex mpiMutex;       // MPI_THREAD_SERIALIZED: one MPI call at a time in this process
bool initialisedHere = false;
// Set once a wait timed out or MPI itself failed: a peer may be dead. MPI_Finalize is
// collective in practice (Open MPI ends with a fence over every rank) and would wait forever
// for it, so finalizeMpi() skips it then (see there). A failure that every rank learnt of
// through an abort message (bad data on one rank, ranks that disagree) leaves every peer
// alive, and MPI is finalised as usual.
std::atomic<bool> peerMayBeDead{false};
// The first byte of an abort message: whether its sender suspects a dead peer.
constexpr char kPeersAlive = 'a', kPeerMayBeDead = 'd';
constexpr int kAbortTag = 1 << 20;  // above every ring tag (at most 4·P + 4)

[[noreturn]] void throwMpi(int code, const std::string& what) {
  peerMayBeDead = true;
  char text[MPI_MAX_ERROR_STRING];
  int length = 0;
  MPI_Error_string(code, text, &length);
  throw Error(ErrorKind::Internal, "ring", what + ": " + std::string(text, size_t(length)));
}

void checkMpi(int code, const char* what) {
  if (code != MPI_SUCCESS) throwMpi(code, what);
}

int byteCount(size_t bytes) {
  if (bytes > size_t(INT_MAX))
    throw Error(ErrorKind::Range, "ring", "ring messages over MPI are limited to 2 GiB; a block has " + std::to_string(bytes) + " bytes");
  return int(bytes);
}

class MpiTransfer : public PendingTransfer {
 public:
  MPI_Request request = MPI_REQUEST_NULL;
  std::string what;
};

class MpiTransport : public Transport {
 public:
  explicit MpiTransport(std::chrono::milliseconds timeout) : timeout_(timeout) {
    std::lock_guard<std::mutex> lock(mpiMutex);
    checkMpi(MPI_Comm_dup(MPI_COMM_WORLD, &comm_), "MPI_Comm_dup");
    MPI_Comm_set_errhandler(comm_, MPI_ERRORS_RETURN);
    MPI_Comm_rank(comm_, &rank_);
    MPI_Comm_size(comm_, &size_);
  }
  ~MpiTransport() override {
    std::lock_guard<std::mutex> lock(mpiMutex);
    int finalized = 0;
    MPI_Finalized(&finalized);
    if (!finalized) MPI_Comm_free(&comm_);
    for (auto& buffers : abandoned_) buffers.release();  // a pending collective may still write them
  }

  int rank() const override { return rank_; }
  int size() const override { return size_; }

  Transfer send(Neighbour to, const void* data, size_t bytes, int tag) override {
    auto t = std::make_unique<MpiTransfer>();
    const int peer = neighbour(to);
    t->what = "sending " + std::to_string(bytes) + " bytes (tag " + std::to_string(tag) + ") to rank " + std::to_string(peer);
    std::lock_guard<std::mutex> lock(mpiMutex);
    checkMpi(MPI_Isend(data, byteCount(bytes), MPI_BYTE, peer, tag, comm_, &t->request), "MPI_Isend");
    bytesSent_ += bytes;
    return t;
  }

  Transfer receive(Neighbour from, void* data, size_t bytes, int tag) override {
    auto t = std::make_unique<MpiTransfer>();
    const int peer = neighbour(from);
    t->what = "a message (tag " + std::to_string(tag) + ") from rank " + std::to_string(peer);
    std::lock_guard<std::mutex> lock(mpiMutex);
    checkMpi(MPI_Irecv(data, byteCount(bytes), MPI_BYTE, peer, tag, comm_, &t->request), "MPI_Irecv");
    return t;
  }

  void wait(Transfer& transfer) override {
    auto* t = dynamic_cast<MpiTransfer*>(transfer.get());
    if (t) complete(t->request, t->what);
    transfer.reset();
  }

  // Through buffers the transport owns: a collective that failed (abort, timeout) cannot be
  // cancelled and may still complete later (a slow rank joining it), so its buffers must
  // outlive the caller's; they are kept (and, at destruction, leaked) instead of freed.
  void allGather(const void* mine, size_t bytes, void* all) override {
    auto buffers = std::make_unique<CollectiveBuffers>();
    buffers->send.assign(static_cast<const char*>(mine), static_cast<const char*>(mine) + bytes);
    buffers->receive.resize(bytes * size_t(size_));
    MPI_Request request;
    {
      std::lock_guard<std::mutex> lock(mpiMutex);
      checkMpi(MPI_Iallgather(buffers->send.data(), byteCount(bytes), MPI_BYTE, buffers->receive.data(),
                              byteCount(bytes), MPI_BYTE, comm_, &request),
               "MPI_Iallgather");
    }
    try {
      complete(request, "all ranks to reach the same all-gather", /*collective=*/true);
    } catch (...) {
      abandoned_.push_back(std::move(buffers));
      throw;
    }
    if (bytes) std::memcpy(all, buffers->receive.data(), buffers->receive.size());
  }

  // Tells every other rank, with a small message they look for while they wait. (A rank
  // that dies without a word is caught by the others' timeouts, or by mpirun ending the job.)
  // The message's first byte says whether this rank suspects a dead peer (it timed out), so
  // that a rank stopped by the message knows it too and skips MPI_Finalize (finalizeMpi).
  void abort(const std::string& reason) override {
    std::lock_guard<std::mutex> lock(mpiMutex);
    abortMessage_[0] = peerMayBeDead ? kPeerMayBeDead : kPeersAlive;
    std::strncpy(abortMessage_ + 1, reason.c_str(), sizeof abortMessage_ - 2);
    for (int r = 0; r < size_; ++r) {
      if (r == rank_) continue;
      MPI_Request request;
      if (MPI_Isend(abortMessage_, int(sizeof abortMessage_), MPI_CHAR, r, kAbortTag, comm_, &request) == MPI_SUCCESS)
        MPI_Request_free(&request);
    }
  }

  uint64_t bytesSent() const override { return bytesSent_; }

 private:
  // Polls the request (MPI_Test drives progress) until it completes, another rank reports
  // an abort, or the deadline passes. A point-to-point request is cancelled then; a
  // collective one cannot be (MPI_Cancel on it is erroneous, and fatal under Open MPI's
  // default error handler), so it is left pending: the transport is unusable after a failure.
  void complete(MPI_Request& request, const std::string& what, bool collective = false) {
    const auto deadline = std::chrono::steady_clock::now() + timeout_;
    for (;;) {
      {
        std::lock_guard<std::mutex> lock(mpiMutex);
        int done = 0;
        checkMpi(MPI_Test(&request, &done, MPI_STATUS_IGNORE), "MPI_Test");
        if (done) return;
        int pending = 0;
        MPI_Status status;
        MPI_Iprobe(MPI_ANY_SOURCE, kAbortTag, comm_, &pending, &status);
        if (pending) {
          char reason[sizeof abortMessage_] = {};
          MPI_Recv(reason, int(sizeof reason), MPI_CHAR, status.MPI_SOURCE, kAbortTag, comm_, MPI_STATUS_IGNORE);
          if (!collective) MPI_Cancel(&request);
          if (reason[0] != kPeersAlive) peerMayBeDead = true;
          throw Error(ErrorKind::Internal, "ring",
                      "ring rank " + std::to_string(rank_) + " stopped: rank " + std::to_string(status.MPI_SOURCE) +
                          " failed: " + std::string(reason + 1));
        }
      }
      if (std::chrono::steady_clock::now() > deadline) {
        std::lock_guard<std::mutex> lock(mpiMutex);
        if (!collective) MPI_Cancel(&request);
        peerMayBeDead = true;
        throw Error(ErrorKind::Internal, "ring",
                    "ring rank " + std::to_string(rank_) + " timed out after " + std::to_string(timeout_.count()) +
                        " ms waiting for " + what);
      }
      std::this_thread::yield();
    }
  }

  std::chrono::milliseconds timeout_;
  MPI_Comm comm_ = MPI_COMM_NULL;
  int rank_ = 0, size_ = 1;
  uint64_t bytesSent_ = 0;
  char abortMessage_[512] = {};
  struct CollectiveBuffers {
    std::vector<char> send, receive;
  };
  std::vector<std::unique_ptr<CollectiveBuffers>> abandoned_;
};

}  // namespace

bool launchedByMpi() {
  for (const char* name : {"OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "PMIX_RANK", "MPI_LOCALNRANKS"})
    if (std::getenv(name)) return true;
  return false;
}

std::unique_ptr<Transport> createMpiTransport(std::chrono::milliseconds timeout) {
  {
    std::lock_guard<std::mutex> lock(mpiMutex);
    int initialized = 0, finalized = 0;
    MPI_Initialized(&initialized);
    MPI_Finalized(&finalized);
    if (finalized) throw Error(ErrorKind::Internal, "ring", "MPI was already finalised in this process");
    if (!initialized) {
      int provided = 0;
      checkMpi(MPI_Init_thread(nullptr, nullptr, MPI_THREAD_SERIALIZED, &provided), "MPI_Init_thread");
      initialisedHere = true;
    }
  }
  return std::make_unique<MpiTransport>(timeout);
}

void finalizeMpi() {
  // After a failure the peers may be dead, and MPI_Finalize would wait for them forever (a
  // launcher that keeps the job alive, e.g. mpirun --mca orte_enable_recovery 1, never kills
  // the survivors). The process exits without it; the launcher reports the unfinalised exit.
  if (peerMayBeDead) return;
  std::lock_guard<std::mutex> lock(mpiMutex);
  int initialized = 0, finalized = 0;
  MPI_Initialized(&initialized);
  MPI_Finalized(&finalized);
  if (initialisedHere && initialized && !finalized) MPI_Finalize();
}

}  // namespace siglip::ring
