// The second stream of the fused sigmoid's overlapped schedule (SIGLIP_GEMM_OVERLAP=on), and
// the events that order it against the call's stream. Piece p's GEMM1 (and epilogue pass)
// runs on the call's stream A, writing gradient slot G[p % 2]; its backward GEMMs run here,
// on B, so that GEMM1 of piece p + 1, bound by the per-pair math, fills the SMs that the
// backward GEMMs of piece p (under one wave of tiles) leave idle. The protocol, per piece:
//   A: awaitSlot(p)  (B has finished reading G[p % 2] for piece p − 2), GEMM1(p) writes it,
//      handOff(p)    (B waits until G[p % 2] is complete);
//   B: the backward GEMMs of p, then releaseSlot(p);
// and at the end A waits for everything B was given (join), so the call's own synchronisation
// on A covers B. Each stream is in order, so the partial sums (A) and the gradient
// accumulations (B) happen in piece order, as on one stream: the same bits.
//
// Plain C++ (no CUDA headers), like cuda_block.h, whose workspace owns one: created on first
// use and kept with the workspace, so that the ring's steps reuse it.
#pragma once
#include <cstdint>

struct CUstream_st;
struct CUevent_st;

namespace siglip::cuda {

class OverlapStream {
 public:
  OverlapStream() = default;
  OverlapStream(OverlapStream&& other) noexcept;
  OverlapStream& operator=(OverlapStream&& other) noexcept;
  OverlapStream(const OverlapStream&) = delete;
  OverlapStream& operator=(const OverlapStream&) = delete;
  ~OverlapStream();  // waits for the stream, then destroys it and the events

  // Creates the stream and its events on `device` (the current device) on first use, or
  // anew when the device changed. The stream is non-blocking: only the events order it.
  void prepare(int device);
  CUstream_st* get() const { return stream_; }

  // On `call`, before GEMM1 of piece `piece` writes G[piece % 2]: waits until the backward
  // GEMMs of piece − 2 have read that slot (a no-op for the first two pieces of a call).
  void awaitSlot(CUstream_st* call, int64_t piece);
  // After `call` has enqueued the writes of G[piece % 2]: this stream waits for them.
  void handOff(CUstream_st* call, int64_t piece);
  // After the backward GEMMs of `piece` were enqueued here: G[piece % 2] is free once they end.
  void releaseSlot(int64_t piece);
  // `call` waits for everything enqueued here so far.
  void join(CUstream_st* call);
  // The host waits for everything enqueued here (after a failure, before the slots are reused
  // or freed). Never throws: a failed wait means a broken context, which every later call reports.
  void drain() noexcept;

 private:
  void destroy() noexcept;

  int device_ = -1;
  CUstream_st* stream_ = nullptr;
  CUevent_st* written_[2] = {nullptr, nullptr};  // G[slot] complete (recorded on the call's stream)
  CUevent_st* read_[2] = {nullptr, nullptr};     // G[slot]'s readers done (recorded here)
  CUevent_st* drained_ = nullptr;                // everything enqueued here done (join)
};

}  // namespace siglip::cuda
