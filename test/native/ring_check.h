// siglip_ring_check: the ring against the single-device loss on the concatenated batch.
//
//   siglip_ring_check            in-process ranks (threads): P = 1 … 8, uneven shards (one rank
//                                with a single row), label ids, and a rank that dies mid-ring
//   mpirun -np P siglip_ring_check --mpi     one rank per process over MPI (built with MPI)
//   siglip_ring_check --cuda-local P         P in-process ranks (threads) on GPU 0, each through
//                                ring::gpuRankSigmoidLoss as the addon's GPU ranks: float32 host
//                                shards at TF32 and FP32 (scanned, uploaded, gradients downloaded),
//                                bfloat16 device shards (gradients left on the device); the
//                                in-process transport copying device memory (built with CUDA)
//   siglip_ring_check --nccl [P]             the NCCL transport (ncclCommInitAll, one rank per GPU,
//                                P = the visible GPUs by default): an exchange check of the
//                                transport itself, then the ring as above (built with CUDA)
//   siglip_ring_check --nccl-timeout         a receive nobody answers must fail within its timeout
//                                (ncclCommAbort), not hang
// The GPU modes exit 2, saying why, when there is no GPU or no NCCL (SIGLIP_NCCL_LIBRARY).
//
// Every rank must end with the global loss, ∂L/∂s and ∂L/∂b (the same bits on every rank) and
// the gradients of its own rows, equal to the single-device result up to reassociation
// (relative 1e-5 for the loss, 1e-4 for gradients, as SPEC.md's float32 targets; on the GPU
// against the CPU result on the same values: 1e-4 at FP32, 5e-3 at TF32, 2e-2 for bfloat16,
// the inputs rounded to TF32 or bfloat16 for both sides). The bytes
//
// One file per job, this header what they share: ring_check_common.cpp (batches, the
// single-device reference, the comparison, a CPU rank), ring_check_main.cpp (the command line,
// the in-process and MPI cases), ring_check_gpu.cpp (the GPU cases: --cuda-local, --nccl).
#pragma once
#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <random>
#include <string>
#include <vector>

#include "core/loss_request.h"
#include "ring/ring_sigmoid.h"
#include "ring/transport.h"

namespace siglip::ring_check {

struct Batch {
  int64_t d = 0;
  std::vector<int64_t> imageRows, textRows;  // per rank
  std::vector<float> image, text;            // concatenated, row-major
  std::vector<int32_t> imageIds, textIds;    // empty without ids
  double logitScale = std::log(10.0), logitBias = -10.0;
};

Batch makeBatch(std::mt19937_64& rng, int ranks, int64_t d, bool ids);
// Unit rows of random data (and ids) for the shard sizes already in `b`.
void fillBatch(std::mt19937_64& rng, Batch& b, bool ids);

struct Outcome {
  LossResult result;
  std::vector<float> dImage, dText;
  ring::RingStats stats;
  std::string error;
};

ring::RingShard shardOf(const Batch& b, int r);

inline const ring::RingDirection kDirections[] = {ring::RingDirection::OneWay, ring::RingDirection::TwoWay};
inline const char* directionName(ring::RingDirection d) {
  return d == ring::RingDirection::TwoWay ? "two-way" : "one-way";
}

// Rank tp.rank()'s shard of `b` on the CPU (CpuBlockBackend).
Outcome runRank(ring::Transport& tp, const Batch& b, int threads, ring::RingDirection direction);

// The single-device loss on the concatenated batch (cpu::sigmoidLoss).
struct Reference {
  LossResult result;
  std::vector<float> dImage, dText;
};
Reference singleDevice(const Batch& b);

double relativeError(const float* out, const float* ref, size_t count);
inline double scalarError(double out, double ref) { return std::fabs(out - ref) / std::max(std::fabs(ref), 1e-12); }

// Relative errors allowed (SPEC.md's float32 targets by default).
struct Tolerance {
  double loss = 1e-5;
  double scalars = 1e-4;    // ∂L/∂s, ∂L/∂b
  double gradients = 1e-4;  // ∂L/∂X_r, ∂L/∂Y_r
};

// Checks rank r's outcome against the single-device reference; returns "" or what is wrong.
std::string compareRank(const Batch& b, const Reference& ref, int r, const Outcome& o, ring::RingDirection direction,
                        double* worst, const Tolerance& tol = Tolerance{});

// The jobs (each prints its PASS / FAIL lines and returns the number of failures).
int localCases();
int deadRankCases();
#if defined(SIGLIP_WITH_MPI)
int mpiCase();
#endif
#if defined(SIGLIP_WITH_CUDA)
bool haveGpu(const char* mode);
bool haveNccl(const char* mode);
int cudaLocalCases(int p);
int ncclCases(int requested);
int ncclTimeoutCase();
#endif

}  // namespace siglip::ring_check
