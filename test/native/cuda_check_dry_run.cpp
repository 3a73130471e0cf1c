// siglip_cuda_check --reference-only: the CPU half of --correctness, no GPU needed.
#include "cuda_check.h"

namespace siglip::cuda_check {

int referenceOnly(uint64_t seed, const std::string& filter, int hardwareThreads) {
  checkCublasLoader();
  // Rounding self-checks first: the reduced-precision references rest on them.
  struct Probe {
    float in;
    Rounding r;
    float want;
  };
  const Probe probes[] = {
      {1.0f + 1.0f / 2048, Rounding::Tf32, 1.0f + 1.0f / 1024},       // tie → away from zero
      {-(1.0f + 1.0f / 2048), Rounding::Tf32, -(1.0f + 1.0f / 1024)}, // same, negative
      {1.0f + 1.0f / 4096, Rounding::Tf32, 1.0f},                     // below half → down
      {1.0f + 3.0f / 1024 + 1.0f / 8192, Rounding::Tf32, 1.0f + 3.0f / 1024},
      {1.0f + 1.0f / 256, Rounding::BFloat16, 1.0f},                  // bf16 tie → even
      {1.0f + 3.0f / 256, Rounding::BFloat16, 1.0f + 4.0f / 256},     // tie → even (up)
      {1.0f + 1.0f / 2048, Rounding::Float16, 1.0f},                  // fp16 tie → even
      {70000.0f, Rounding::Float16, std::numeric_limits<float>::infinity()},
  };
  for (const Probe& p : probes) {
    const float got = roundTo(p.in, p.r);
    char buffer[160];
    std::snprintf(buffer, sizeof buffer, "rounding %.10g (mode %d) -> %.10g, expected %.10g", p.in, int(p.r), got, p.want);
    report(got == p.want, buffer);
  }
  for (const Case& c : buildCases(seed)) {
    const std::string label = std::string(c.kind == LossKind::Sigmoid ? "sigmoid " : "softmax ") + c.name;
    if (!matchesFilter(label, filter)) continue;
    const auto start = Clock::now();
    const Data data = makeData(c);
    const double dataSeconds = secondsSince(start);
    bool ok = true;
    std::string losses;
    for (const Reference& ref : computeReferences(c, data, hardwareThreads)) {
      ok = ok && ref.error.empty() && std::isfinite(ref.result.loss);
      char buffer[96];
      std::snprintf(buffer, sizeof buffer, " %.6g", ref.result.loss);
      losses += ref.error.empty() ? buffer : " threw: " + ref.error;
    }
    char buffer[128];
    std::snprintf(buffer, sizeof buffer, "  data %.2f s, references %.2f s; loss by rounding none/tf32/bf16/fp16:",
                  dataSeconds, secondsSince(start) - dataSeconds);
    report(ok, caseLabel(c, "ref", "all") + buffer + losses);
  }
  std::printf("siglip_cuda_check --reference-only: %d checks, %d failed\n", checks, failures);
  return failures ? 1 : 0;
}

}  // namespace siglip::cuda_check
