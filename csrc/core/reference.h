// Float64 reference of SPEC.md, written for clarity, not speed (O(N·M·D), materialises
// nothing but a row at a time). The C++ check executable compares every backend with it;
// the TypeScript tests carry their own independent float64 reference.
#pragma once
#include "loss_request.h"

namespace siglip {

// Gradients (if `grads` non-null) are written as float64 arrays N×D and M×D.
struct ReferenceGradients {
  double* image = nullptr;
  double* text = nullptr;
};

LossResult referenceSigmoidLoss(const LossRequest& request, ReferenceGradients grads);
LossResult referenceSoftmaxLoss(const LossRequest& request, ReferenceGradients grads);

}  // namespace siglip
