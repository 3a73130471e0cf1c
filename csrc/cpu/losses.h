// The CPU loss drivers behind cpu_backend.cpp (which validates and picks one).
#pragma once
#include "../core/loss_request.h"
#include "cpu_kernels.h"

namespace siglip::cpu {

// Fused tile shape. Fixed (never derived from the thread count) so results are the same
// bits for any number of threads; a multiple of every kernel set's MR and NR.
constexpr int64_t kTileRows = 192;
constexpr int64_t kTileCols = 192;

// fused_sigmoid.cpp: tiled, the sigmoid-BCE forward and backward fused into the tile pass.
LossResult fusedSigmoidLoss(const KernelSet& kernels, const LossRequest& request, GradientOutputs grads);

// naive_losses.cpp: the materialising baselines (what the Python peers do).
LossResult naiveSigmoidLoss(const KernelSet& kernels, const LossRequest& request, GradientOutputs grads);
LossResult naiveSoftmaxLoss(const KernelSet& kernels, const LossRequest& request, GradientOutputs grads);

}  // namespace siglip::cpu
