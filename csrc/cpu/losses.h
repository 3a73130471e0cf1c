// The CPU loss drivers behind cpu_backend.cpp (which validates and picks one).
#pragma once
#include "../core/loss_request.h"
#include "../core/pair_block.h"
#include "cpu_backend.h"
#include "cpu_kernels.h"

namespace siglip::cpu {

// Fused tile shape. Fixed (never derived from the thread count) so results are the same
// bits for any number of threads; a multiple of every kernel set's MR and NR.
constexpr int64_t kTileRows = 192;
constexpr int64_t kTileCols = 192;

// fused_sigmoid.cpp: tiled, the sigmoid-BCE forward and backward fused into the tile pass.
// Precision::BF16: the three GEMMs on the bf16 kernel (gemm_bf16.h), inputs from `bits`
// where given (else the request's float32 data, rounded when packed).
LossResult fusedSigmoidLoss(const KernelSet& kernels, const EpilogueSet& epilogues, const LossRequest& request,
                            GradientOutputs grads, Precision precision = Precision::FP32, Bf16Inputs bits = {});

// One block of pairs of a larger batch (core/pair_block.h; the ring's unit of work), host
// float32 data: returns the block's PairSums and, when block.dImage is given, *adds* the
// block's gradients. Precision::BF16: the GEMMs in bfloat16 (gemm_bf16.h), from
// block.imageBf16 / textBf16 where given. Throws siglip::Error (Internal) for device or
// 16-bit data, or a precision the CPU lacks.
PairSums fusedSigmoidBlock(const KernelSet& kernels, const EpilogueSet& epilogues, const PairBlock& block);

// chunked_softmax.cpp: the CLIP softmax loss in two tiled passes (log-sum-exps, then
// gradients), O(N + M) statistics and never an N×M buffer. Method::Chunked.
LossResult chunkedSoftmaxLoss(const KernelSet& kernels, const EpilogueSet& epilogues, const LossRequest& request,
                              GradientOutputs grads);

// naive_losses.cpp: the materialising baselines (what the Python peers do).
LossResult naiveSigmoidLoss(const KernelSet& kernels, const EpilogueSet& epilogues, const LossRequest& request,
                            GradientOutputs grads);
LossResult naiveSoftmaxLoss(const KernelSet& kernels, const EpilogueSet& epilogues, const LossRequest& request,
                            GradientOutputs grads);

}  // namespace siglip::cpu
