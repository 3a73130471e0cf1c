#include "local_transport.h"

#include <condition_variable>
#include <cstring>
#include <map>
#include <mutex>
#include <utility>

#include "../core/errors.h"
#include "../core/limits.h"

namespace siglip::ring {

namespace {

class HostMessageMemory : public MessageMemory {
 public:
  std::shared_ptr<void> copyOut(const void* data, size_t bytes) override {
    std::shared_ptr<char> message(new char[bytes ? bytes : 1], std::default_delete<char[]>());
    if (bytes) std::memcpy(message.get(), data, bytes);
    return message;
  }
  void copyIn(void* data, const void* message, size_t bytes) override {
    if (bytes) std::memcpy(data, message, bytes);
  }
};

struct Message {
  std::shared_ptr<void> data;
  size_t bytes = 0;
};

}  // namespace

class LocalGroup {
 public:
  LocalGroup(int size, std::chrono::milliseconds timeout, std::shared_ptr<MessageMemory> memory)
      : size_(size), timeout_(timeout), memory_(std::move(memory)), mailboxes_(size), gathered_(size) {}

  // The copies run outside the lock, so ranks copying device memory do not serialise.
  void post(int to, int from, int tag, const void* data, size_t bytes) {
    Message message{memory_->copyOut(data, bytes), bytes};
    std::lock_guard<std::mutex> lock(mutex_);
    mailboxes_[to].emplace(std::make_pair(from, tag), std::move(message));
    changed_.notify_all();
  }

  void take(int rank, int from, int tag, void* data, size_t bytes) {
    Message message;
    {
      std::unique_lock<std::mutex> lock(mutex_);
      auto& box = mailboxes_[rank];
      const auto key = std::make_pair(from, tag);
      waitFor(lock, rank, "a message (tag " + std::to_string(tag) + ") from rank " + std::to_string(from),
              [&] { return box.find(key) != box.end(); });
      auto it = box.find(key);
      if (it->second.bytes != bytes)
        throw Error(ErrorKind::Internal, "ring",
                    "ring rank " + std::to_string(rank) + ": message from rank " + std::to_string(from) + " has " +
                        std::to_string(it->second.bytes) + " bytes, expected " + std::to_string(bytes));
      message = std::move(it->second);
      box.erase(it);
    }
    memory_->copyIn(data, message.data.get(), bytes);
  }

  void allGather(int rank, const void* mine, size_t bytes, void* all) {
    std::unique_lock<std::mutex> lock(mutex_);
    const uint64_t round = round_;
    gathered_[rank].assign(static_cast<const char*>(mine), static_cast<const char*>(mine) + bytes);
    if (++arrived_ == size_) {
      published_ = gathered_;
      arrived_ = 0;
      ++round_;
      changed_.notify_all();
    } else {
      waitFor(lock, rank, "all ranks to reach the same all-gather", [&] { return round_ != round; });
    }
    // Nobody can start the next round before every rank has left this one (it needs all
    // deposits), so `published_` still holds this round's data.
    char* out = static_cast<char*>(all);
    for (int r = 0; r < size_; ++r) {
      if (published_[r].size() != bytes)
        throw Error(ErrorKind::Internal, "ring", "ring all-gather: ranks disagree on the message size");
      if (bytes) std::memcpy(out + size_t(r) * bytes, published_[r].data(), bytes);
    }
  }

  void abort(int rank, const std::string& reason) {
    std::lock_guard<std::mutex> lock(mutex_);
    if (!aborted_) {
      aborted_ = true;
      abortReason_ = "rank " + std::to_string(rank) + " failed: " + reason;
    }
    changed_.notify_all();
  }

  int size() const { return size_; }

 private:
  template <class Ready>
  void waitFor(std::unique_lock<std::mutex>& lock, int rank, const std::string& what, Ready ready) {
    const auto deadline = std::chrono::steady_clock::now() + timeout_;
    for (;;) {
      if (ready()) return;
      if (aborted_)
        throw Error(ErrorKind::Internal, "ring", "ring rank " + std::to_string(rank) + " stopped: " + abortReason_);
      if (changed_.wait_until(lock, deadline) == std::cv_status::timeout && !ready() && !aborted_)
        throw Error(ErrorKind::Internal, "ring",
                    "ring rank " + std::to_string(rank) + " timed out after " + std::to_string(timeout_.count()) +
                        " ms waiting for " + what);
    }
  }

  const int size_;
  const std::chrono::milliseconds timeout_;
  const std::shared_ptr<MessageMemory> memory_;
  std::mutex mutex_;
  std::condition_variable changed_;
  std::vector<std::multimap<std::pair<int, int>, Message>> mailboxes_;
  std::vector<std::vector<char>> gathered_;
  std::vector<std::vector<char>> published_;
  int arrived_ = 0;
  uint64_t round_ = 0;
  bool aborted_ = false;
  std::string abortReason_;
};

namespace {

class LocalReceive : public PendingTransfer {
 public:
  LocalReceive(int from, void* data, size_t bytes, int tag) : from(from), data(data), bytes(bytes), tag(tag) {}
  int from;
  void* data;
  size_t bytes;
  int tag;
  bool done = false;
};

class LocalEndpoint : public Transport {
 public:
  LocalEndpoint(std::shared_ptr<LocalGroup> group, int rank) : group_(std::move(group)), rank_(rank) {}
  int rank() const override { return rank_; }
  int size() const override { return group_->size(); }

  Transfer send(Neighbour to, const void* data, size_t bytes, int tag) override {
    group_->post(neighbour(to), rank_, tag, data, bytes);
    bytesSent_ += bytes;
    return nullptr;  // copied already: nothing to wait for
  }
  Transfer receive(Neighbour from, void* data, size_t bytes, int tag) override {
    return std::make_unique<LocalReceive>(neighbour(from), data, bytes, tag);
  }
  void wait(Transfer& transfer) override {
    auto* receive = dynamic_cast<LocalReceive*>(transfer.get());
    if (receive && !receive->done) {
      group_->take(rank_, receive->from, receive->tag, receive->data, receive->bytes);
      receive->done = true;
    }
    transfer.reset();
  }
  void allGather(const void* mine, size_t bytes, void* all) override { group_->allGather(rank_, mine, bytes, all); }
  void abort(const std::string& reason) override { group_->abort(rank_, reason); }
  uint64_t bytesSent() const override { return bytesSent_; }

 private:
  std::shared_ptr<LocalGroup> group_;
  int rank_;
  uint64_t bytesSent_ = 0;
};

}  // namespace

std::vector<std::unique_ptr<Transport>> createLocalGroup(int size, std::chrono::milliseconds timeout,
                                                         std::shared_ptr<MessageMemory> memory) {
  if (size < 1 || size > limits::kMaxRingRanks)
    throw Error(ErrorKind::Range, "ranks",
                "Expected from 1 to " + std::to_string(limits::kMaxRingRanks) + " ranks for ranks but received " +
                    std::to_string(size));
  if (!memory) memory = std::make_shared<HostMessageMemory>();
  auto group = std::make_shared<LocalGroup>(size, timeout, std::move(memory));
  std::vector<std::unique_ptr<Transport>> endpoints;
  for (int r = 0; r < size; ++r) endpoints.push_back(std::make_unique<LocalEndpoint>(group, r));
  return endpoints;
}

}  // namespace siglip::ring
