#include "thread_pool.h"

namespace siglip::cpu {

ThreadPool& ThreadPool::shared() {
  static ThreadPool* pool = new ThreadPool();  // intentionally leaked: see the header
  return *pool;
}

void ThreadPool::grow(int threads) {
  while (int(threads_.size()) < threads) {
    const int index = int(threads_.size());
    threads_.emplace_back([this, index] { workerLoop(index); });
    threads_.back().detach();
  }
}

void ThreadPool::workerLoop(int index) {
  uint64_t seen = 0;
  for (;;) {
    const std::function<void(int)>* body;
    {
      std::unique_lock<std::mutex> lock(mutex_);
      wake_.wait(lock, [&] { return generation_ != seen; });
      seen = generation_;
      if (index >= activeWorkers_) continue;
      body = body_;
    }
    std::exception_ptr error;
    try {
      (*body)(index + 1);
    } catch (...) {
      error = std::current_exception();
    }
    std::lock_guard<std::mutex> lock(mutex_);
    if (error && !error_) error_ = error;
    if (--pending_ == 0) done_.notify_one();
  }
}

void ThreadPool::run(int workers, const std::function<void(int)>& body) {
  if (workers <= 1) {
    body(0);
    return;
  }
  std::lock_guard<std::mutex> runLock(runMutex_);
  {
    std::lock_guard<std::mutex> lock(mutex_);
    grow(workers - 1);
    body_ = &body;
    activeWorkers_ = workers - 1;
    pending_ = workers - 1;
    error_ = nullptr;
    ++generation_;
  }
  wake_.notify_all();
  std::exception_ptr callerError;
  try {
    body(0);
  } catch (...) {
    callerError = std::current_exception();
  }
  std::unique_lock<std::mutex> lock(mutex_);
  done_.wait(lock, [&] { return pending_ == 0; });
  body_ = nullptr;
  std::exception_ptr error = callerError ? callerError : error_;
  error_ = nullptr;
  lock.unlock();
  if (error) std::rethrow_exception(error);
}

}  // namespace siglip::cpu
