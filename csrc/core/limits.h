// Every limit of the package's arguments, defined once. The core checks them (validate.cpp),
// the addon reads JavaScript values against them (csrc/addon) and hands them to TypeScript
// as the `limits` export, which lib/limits.ts reads at first use: no other layer defines them.
#pragma once
#include <cstddef>
#include <cstdint>

namespace siglip::limits {

// Largest |s| accepted for logitScale: t = exp(s) must stay a finite float32 (exp(88.7)
// overflows), and t·S must leave room for similarities above 1. e^80 ≈ 5.5e34.
constexpr double kMaxAbsLogitScale = 80.0;
// The most worker threads a call may ask for (a typo such as 1e6 threads fails fast).
constexpr int64_t kMaxThreads = 1024;
// The most ranks a ring may have (local rings start one thread per rank).
constexpr int64_t kMaxRingRanks = 4096;
// How long a rank waits for another before a ring call fails, by default and at most (ms;
// the most a JavaScript timer takes, 2^31 − 1).
constexpr int64_t kDefaultRingTimeoutMs = 60000;
constexpr int64_t kMaxRingTimeoutMs = 2147483647;
// The most bytes one rank passes to Ring.allGather: a few ids and flags, not data.
constexpr size_t kMaxAllGatherBytes = size_t(1) << 20;

}  // namespace siglip::limits
