// A small persistent pool of worker threads shared by every CPU call. One job runs at a
// time (concurrent callers, e.g. several async loss calls, queue on a mutex): the machine's
// cores are the scarce resource, so running two jobs side by side would only thrash them.
#pragma once
#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <exception>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

namespace siglip::cpu {

class ThreadPool {
 public:
  // The process-wide pool (created on first use, grown on demand, never destroyed so that
  // process exit does not race with workers).
  static ThreadPool& shared();

  // Runs body(worker) for worker = 0 .. workers-1 concurrently (the calling thread is
  // worker 0) and returns when all are done. The first exception thrown by a body is
  // rethrown here after every worker has finished.
  void run(int workers, const std::function<void(int worker)>& body);

 private:
  ThreadPool() = default;
  void grow(int threads);
  void workerLoop(int index);

  std::mutex runMutex_;  // one job at a time
  std::mutex mutex_;
  std::condition_variable wake_;
  std::condition_variable done_;
  std::vector<std::thread> threads_;
  const std::function<void(int)>* body_ = nullptr;
  int activeWorkers_ = 0;   // helpers taking part in the current job
  int pending_ = 0;         // helpers still running it
  uint64_t generation_ = 0;
  std::exception_ptr error_;
};

}  // namespace siglip::cpu

namespace siglip::cpu {

// A reusable barrier for the workers of one ThreadPool::run (spins, then yields: the
// waits are short, between phases of a GEMM).
class SpinBarrier {
 public:
  explicit SpinBarrier(int parties) : parties_(parties) {}
  void wait() {
    const uint64_t phase = phase_.load(std::memory_order_acquire);
    if (arrived_.fetch_add(1, std::memory_order_acq_rel) + 1 == parties_) {
      arrived_.store(0, std::memory_order_relaxed);
      phase_.store(phase + 1, std::memory_order_release);
      return;
    }
    while (phase_.load(std::memory_order_acquire) == phase) std::this_thread::yield();
  }

 private:
  const int parties_;
  std::atomic<int> arrived_{0};
  std::atomic<uint64_t> phase_{0};
};

}  // namespace siglip::cpu
