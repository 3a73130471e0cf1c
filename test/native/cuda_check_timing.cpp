// siglip_cuda_check --timing: the cuBLAS floor and every path timed; a table, and JSON.
#include "cuda_check.h"

namespace siglip::cuda_check {

// ---- timing -------------------------------------------------------------------------------

std::string jsonEscape(const std::string& s) {
  std::string out;
  for (char ch : s) {
    if (ch == '"' || ch == '\\') out += '\\', out += ch;
    else if (ch == '\n') out += "\\n";
    else if (static_cast<unsigned char>(ch) < 0x20) out += ' ';
    else out += ch;
  }
  return out;
}

std::string jsonNumber(double v) {
  if (!std::isfinite(v)) return "null";
  char buffer[64];
  std::snprintf(buffer, sizeof buffer, "%.6g", v);
  return buffer;
}

double floorFor(const TimingContext& tc, const TimingRow& row) {
  for (const auto& r : tc.rows)
    if (r.name.rfind("cublas floor", 0) == 0 && r.pass == row.pass && r.n == row.n && r.d == row.d &&
        r.dtype == row.dtype && r.status == "ok")
      return r.ms;
  return NAN;
}

void writeJson(const TimingContext& tc) {
  if (tc.jsonPath.empty()) return;
  std::string out = "{\n" + tc.header + "  \"elapsed_s\": " + jsonNumber(secondsSince(tc.start)) + ",\n  \"cases\": [\n";
  for (size_t k = 0; k < tc.rows.size(); ++k) {
    const TimingRow& r = tc.rows[k];
    const double tflops = r.flops / (r.ms * 1e-3) * 1e-12;
    out += "    {\"case\": \"" + jsonEscape(r.name) + "\", \"pass\": \"" + r.pass + "\", \"n\": " + std::to_string(r.n) +
           ", \"d\": " + std::to_string(r.d) + ", \"dtype\": \"" + r.dtype + "\", \"status\": \"" + r.status +
           "\", \"ms\": " + jsonNumber(r.ms) + ", \"ms_min\": " + jsonNumber(r.msMin) +
           ", \"host_ms\": " + jsonNumber(r.hostMs) + ", \"runs\": " + std::to_string(r.runs) +
           ", \"flops\": " + jsonNumber(r.flops) + ", \"tflops\": " + jsonNumber(tflops) +
           ", \"peak_extra_mb\": " + jsonNumber(r.extraBytes / (1 << 20)) + ", \"floor_ms\": " + jsonNumber(r.floorMs) +
           ", \"ratio_floor\": " + jsonNumber(r.ms / r.floorMs) + ", \"loss\": " + jsonNumber(r.loss) +
           ", \"note\": \"" + jsonEscape(r.note) + "\"}" + (k + 1 < tc.rows.size() ? ",\n" : "\n");
  }
  out += "  ]\n}\n";
  const std::string tmp = tc.jsonPath + ".tmp";
  if (FILE* f = std::fopen(tmp.c_str(), "w")) {
    std::fputs(out.c_str(), f);
    std::fclose(f);
    std::rename(tmp.c_str(), tc.jsonPath.c_str());
  } else {
    std::fprintf(stderr, "siglip_cuda_check: cannot write %s\n", tc.jsonPath.c_str());
  }
}

void printRow(const TimingRow& r) {
  const double tflops = r.flops / (r.ms * 1e-3) * 1e-12;
  if (r.status != "ok") {
    std::printf("%-40s %6lld %-5s %10s %8s %10s %8s   %s: %s\n", r.name.c_str(), (long long)r.n, r.dtype.c_str(), "-", "-",
                "-", "-", r.status.c_str(), r.note.c_str());
  } else {
    char ratio[32] = "-";
    if (std::isfinite(r.floorMs)) std::snprintf(ratio, sizeof ratio, "%.2f", r.ms / r.floorMs);
    std::printf("%-40s %6lld %-5s %10.3f %8.1f %10.1f %8s   runs=%d min=%.3f host=%.3f%s%s\n", r.name.c_str(),
                (long long)r.n, r.dtype.c_str(), r.ms, tflops, r.extraBytes / (1 << 20), ratio, r.runs, r.msMin,
                r.hostMs, r.note.empty() ? "" : "  ", r.note.c_str());
  }
  std::fflush(stdout);
}

void printHeader() {
  std::printf("%-40s %6s %-5s %10s %8s %10s %8s\n", "case", "N", "dtype", "time ms", "TFLOP/s", "extra MB", "x floor");
}

// Records a row that was not run, and why.
void skipRow(TimingContext& tc, TimingRow row, const std::string& why) {
  row.status = "skipped";
  row.note = why;
  row.floorMs = floorFor(tc, row);
  tc.rows.push_back(row);
  printRow(row);
  writeJson(tc);
}

// Times `body` (which must leave the GPU idle or enqueue on the legacy stream): warm-up
// calls, then up to tc.runs timed calls within the case budget, CUDA events on the legacy
// stream around each call (for the library's synchronous calls this is the call's whole
// duration, validation and allocation included); median and min. Peak device memory the
// library allocated beyond what existed before (inputs and gradients) is recorded too.
void timeCase(TimingContext& tc, TimingRow row, const std::function<double()>& body, double extraBytesOverride = NAN) {
  if (tc.deadlineSeconds > 0 && secondsSince(tc.start) > tc.deadlineSeconds) {
    row.status = "skipped";
    row.note = "deadline (--deadline-s) reached before this case";
  } else {
    try {
      sc::resetPeakAllocatedBytes();
      const size_t base = sc::allocatedBytes();
      auto timedCall = [&](double* hostMs) {
        cudaCheck(cudaEventRecord(tc.begin, 0), "cudaEventRecord");
        const auto t0 = Clock::now();
        row.loss = body();
        cudaCheck(cudaEventRecord(tc.end, 0), "cudaEventRecord");
        cudaCheck(cudaEventSynchronize(tc.end), "cudaEventSynchronize");
        if (hostMs) *hostMs = secondsSince(t0) * 1e3;
        float ms = 0;
        cudaCheck(cudaEventElapsedTime(&ms, tc.begin, tc.end), "cudaEventElapsedTime");
        return double(ms);
      };
      double warmMs = 0;
      for (int w = 0; w < tc.warmup; ++w) warmMs = timedCall(nullptr);
      int runs = tc.runs;
      if (warmMs > 0) runs = int(std::max(1.0, std::min(double(tc.runs), tc.caseBudgetSeconds * 1e3 / warmMs)));
      std::vector<double> ms, host;
      for (int k = 0; k < runs; ++k) {
        double h = 0;
        ms.push_back(timedCall(&h));
        host.push_back(h);
      }
      std::sort(ms.begin(), ms.end());
      std::sort(host.begin(), host.end());
      auto median = [](const std::vector<double>& v) {
        return v.size() % 2 ? v[v.size() / 2] : 0.5 * (v[v.size() / 2 - 1] + v[v.size() / 2]);
      };
      row.ms = median(ms);
      row.msMin = ms.front();
      row.hostMs = median(host);
      row.runs = runs;
      row.extraBytes = std::isfinite(extraBytesOverride) ? extraBytesOverride : double(sc::peakAllocatedBytes() - base);
      if (runs < tc.runs) row.note += (row.note.empty() ? "" : "; ") + std::string("runs cut to fit --case-budget-s");
    } catch (const Error& e) {
      row.status = "error";
      row.note = std::string(kindName(e.kind())) + ": " + e.what();
    } catch (const std::exception& e) {
      row.status = "error";
      row.note = e.what();
    }
    std::string why;
    if (!contextHealthy(&why)) {
      row.status = "error";
      row.note += " [CUDA context lost: " + why + "]";
      contextLost = true;
    }
  }
  row.floorMs = floorFor(tc, row);
  if (row.status == "error") ++failures;
  tc.rows.push_back(row);
  printRow(row);
  writeJson(tc);
}

// Seeded unit rows, quickly (splitmix64 uniforms; the timing does not depend on the values).
std::vector<float> fastUnitRows(int64_t rows, int64_t cols, uint64_t seed) {
  std::vector<float> v(size_t(rows * cols));
  uint64_t state = seed * 0x9E3779B97F4A7C15ull + 1;
  for (int64_t i = 0; i < rows; ++i) {
    float* row = &v[size_t(i * cols)];
    double sq = 0;
    for (int64_t k = 0; k < cols; ++k) {
      uint64_t z = (state += 0x9E3779B97F4A7C15ull);
      z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
      z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
      z ^= z >> 31;
      row[k] = float(double(z >> 11) * (2.0 / 9007199254740992.0) - 1.0);
      sq += double(row[k]) * row[k];
    }
    const float f = float(1 / std::sqrt(sq));
    for (int64_t k = 0; k < cols; ++k) row[k] *= f;
  }
  return v;
}

sc::CublasDataType cublasType(sc::DType dtype) {
  return dtype == sc::DType::Float32    ? sc::CublasDataType::R32F
         : dtype == sc::DType::BFloat16 ? sc::CublasDataType::R16BF
                                        : sc::CublasDataType::R16F;
}

// One small fused fwd+bwd before any timing on the default path and, when cuBLAS loads, on
// the overlapped cublas-gemm1 path (which holds two handles at once: GEMM1's and the second
// stream's), so that the cuBLAS handles and their workspaces (kept for the process) exist in
// every row's "before": no single row's extra memory includes them.
void warmUpCublasHandles() {
  constexpr int64_t kRows = 256, kCols = 64;
  const auto host = fastUnitRows(kRows, kCols, 3);
  const sc::DeviceBuffer x = uploadBytes(host.data(), host.size() * sizeof(float));
  sc::DeviceBuffer gx(0, host.size() * sizeof(float)), gy(0, host.size() * sizeof(float));
  sc::CudaLossRequest req;
  req.image = {x.data(), kRows, kCols, sc::DType::Float32, 0};
  req.text = req.image;
  const siglip::GradientOutputs grads{static_cast<float*>(gx.data()), static_cast<float*>(gy.data())};
  if (cublasLoads()) {
    sc::setGemmSelection(kCublasGemm1Overlap.selection);
    sc::sigmoidLoss(req, grads);
  }
  sc::setGemmSelection(kDefaultGemm.selection);
  sc::sigmoidLoss(req, grads);
}

int timing(TimingContext& tc, const std::vector<int64_t>& ns, int64_t d, const std::vector<std::string>& dtypes,
           const FloorCublas& cublas, int64_t simpleMaxN) {
  cudaCheck(cudaEventCreate(&tc.begin), "cudaEventCreate");
  cudaCheck(cudaEventCreate(&tc.end), "cudaEventCreate");
  warmUpCublasHandles();
  printHeader();
  constexpr int64_t kFloorChunk = 8192;  // rows of X·Yᵀ per cuBLAS call: memory stays bounded
  for (const std::string& label : dtypes) {
    const Config* cfg = configByLabel(label);
    if (!cfg) {
      std::printf("unknown dtype '%s' (expected fp32, tf32, bf16 or fp16): skipped\n", label.c_str());
      ++failures;
      continue;
    }
    for (int64_t n : ns) {
      if (contextLost) break;
      const double gemm = 2.0 * double(n) * double(n) * double(d);
      auto row = [&](const std::string& name, const std::string& pass) {
        TimingRow r;
        r.name = name;
        r.pass = pass;
        r.n = n;
        r.d = d;
        r.dtype = label;
        r.flops = pass == "fwd" ? gemm : 3 * gemm;
        return r;
      };
      sc::DeviceBuffer x, y, gx, gy;
      try {
        const auto hx = fastUnitRows(n, d, 1), hy = fastUnitRows(n, d, 2);
        const auto bx = encode(hx, cfg->dtype), by = encode(hy, cfg->dtype);
        x = uploadBytes(bx.data(), bx.size());
        y = uploadBytes(by.data(), by.size());
        gx = sc::DeviceBuffer(0, size_t(n) * size_t(d) * sizeof(float));
        gy = sc::DeviceBuffer(0, size_t(n) * size_t(d) * sizeof(float));
      } catch (const std::exception& e) {
        TimingRow r = row("inputs", "fwd+bwd");
        r.status = "error";
        r.note = std::string("could not create the inputs and gradients: ") + e.what();
        tc.rows.push_back(r);
        printRow(r);
        writeJson(tc);
        ++failures;
        continue;
      }
      const size_t elem = sc::dtypeSize(cfg->dtype);

      // cuBLAS floor: S = X·Yᵀ in chunks of kFloorChunk rows (one reused chunk buffer, G's
      // dtype), then ∂X_chunk = G_chunk·Y and ∂Y += G_chunkᵀ·X_chunk: the three GEMMs of the
      // loss at its precision, with nothing else.
      for (const std::string pass : {"fwd+bwd", "fwd"}) {
        TimingRow r = row("cublas floor " + pass, pass);
        const int64_t chunk = std::min(n, kFloorChunk);
        if (!cublas.ok()) {
          skipRow(tc, r, "no cuBLAS (see above)");
          continue;
        }
        if (n > kFloorChunk) r.note = "chunked: " + std::to_string(kFloorChunk) + "-row blocks of X·Yᵀ reuse one buffer";
        const size_t chunkBytes = size_t(chunk) * size_t(n) * elem;
        std::unique_ptr<sc::DeviceBuffer> buffer;
        try {
          buffer = std::make_unique<sc::DeviceBuffer>(0, chunkBytes);
        } catch (const std::exception& e) {
          r.status = "error";
          r.note = std::string("chunk buffer: ") + e.what();
          tc.rows.push_back(r);
          printRow(r);
          writeJson(tc);
          ++failures;
          continue;
        }
        const sc::CublasDataType type = cublasType(cfg->dtype);
        const sc::CublasCompute compute = cfg->dtype != sc::DType::Float32       ? sc::CublasCompute::F32
                                          : cfg->precision == sc::Precision::TF32 ? sc::CublasCompute::F32FastTf32
                                                                                  : sc::CublasCompute::F32Pedantic;
        const bool backward = pass == "fwd+bwd";
        const float alpha = float(1.0 / double(n));
        timeCase(
            tc, r,
            [&] {
              for (int64_t r0 = 0; r0 < n; r0 += chunk) {
                const int rows = int(std::min(chunk, n - r0));
                const char* xr = static_cast<const char*>(x.data()) + size_t(r0) * size_t(d) * elem;
                void* g = buffer->data();
                const sc::CublasLibrary& lib = *cublas.lib;
                int status = lib.gemmABt(cublas.handle, rows, int(n), int(d), xr, int(d), y.data(), int(d), g, int(n),
                                         type, type, compute, 1.0f, 0.0f);
                if (status == 0 && backward)
                  status = lib.gemmAB(cublas.handle, rows, int(d), int(n), g, int(n), y.data(), int(d),
                                      static_cast<float*>(gx.data()) + size_t(r0) * size_t(d), int(d), type,
                                      sc::CublasDataType::R32F, compute, alpha, 0.0f);
                if (status == 0 && backward)
                  status = lib.gemmAtB(cublas.handle, int(n), int(d), rows, g, int(n), xr, int(d), gy.data(), int(d),
                                       type, sc::CublasDataType::R32F, compute, alpha, r0 == 0 ? 0.0f : 1.0f);
                if (status != 0) throw std::runtime_error("cublasGemmEx returned " + lib.statusText(status));
              }
              return NAN;
            },
            double(chunkBytes));
      }

      sc::CudaLossRequest req;
      req.image = {x.data(), n, d, cfg->dtype, 0};
      req.text = {y.data(), n, d, cfg->dtype, 0};
      req.logitScale = std::log(10.0);
      req.logitBias = -10;
      req.precision = cfg->precision;
      const siglip::GradientOutputs grads{static_cast<float*>(gx.data()), static_cast<float*>(gy.data())};

      // The fused loss on each GEMM path: the default (backward GEMMs on cuBLAS when it loads),
      // GEMM1 on cuBLAS too (then the epilogue pass; in the default pieces and in 4096² ones),
      // each of those three also overlapped (the backward GEMMs on a second stream: right after
      // its one-stream twin, so that the pair is timed together even where the deadline cuts
      // the rest), then every GEMM on the tile GEMM, pipelined and simple; the simple main
      // loop, the slow one, only up to --simple-max-n. fwd runs X·Yᵀ (and the pass) alone.
      req.method = Method::Fused;
      const bool simpleHere = simpleMaxN <= 0 || n <= simpleMaxN;
      const std::string tooBig = "N > --simple-max-n " + std::to_string(simpleMaxN);
      auto fused = [&](const std::string& name, const std::string& pass, const GemmVariant& gemm, const std::string& note) {
        TimingRow r = row(name, pass);
        r.note = note;
        sc::setGemmSelection(gemm.selection);
        const siglip::GradientOutputs out = pass == "fwd" ? siglip::GradientOutputs{} : grads;
        timeCase(tc, r, [&] { return sc::sigmoidLoss(req, out).loss; });
        sc::setGemmSelection(kDefaultGemm.selection);
      };
      sc::setGemmSelection(kDefaultGemm.selection);
      const sc::GemmPathInfo paths = sc::gemmPathInfo();
      const bool onCublas = paths.backward == "cublas";
      const std::string backwardNote = onCublas ? "backward GEMMs: cuBLAS" : "backward GEMMs: tile (GEMM paths, above, says why)";
      fused("fused fwd+bwd", "fwd+bwd", kDefaultGemm, backwardNote);
      fused("fused fwd+bwd overlap", "fwd+bwd", kDefaultOverlap, backwardNote + ", on a second stream");
      const std::string noCublas = "no cuBLAS (GEMM paths, above, says why)";
      const bool gemm1Piecewise = n > kCublasGemm1.selection.cublasGemm1Piece;
      if (cublasLoads()) {
        const std::string pieces = std::to_string(kCublasGemm1.selection.cublasGemm1Piece) + "² pieces";
        fused("fused fwd+bwd cublas-gemm1", "fwd+bwd", kCublasGemm1, "GEMM1 and backward on cuBLAS, " + pieces);
        fused("fused fwd+bwd cublas-gemm1 overlap", "fwd+bwd", kCublasGemm1Overlap, pieces + ", backward on a second stream");
        if (gemm1Piecewise) {
          fused("fused fwd+bwd cublas-gemm1 p4096", "fwd+bwd", kCublasGemm1Wide, "4096² pieces");
          fused("fused fwd+bwd cublas-gemm1 p4096 overlap", "fwd+bwd", kCublasGemm1WideOverlap,
                "4096² pieces, backward on a second stream");
        }
      } else {
        skipRow(tc, row("fused fwd+bwd cublas-gemm1", "fwd+bwd"), noCublas);
        skipRow(tc, row("fused fwd+bwd cublas-gemm1 overlap", "fwd+bwd"), noCublas);
        if (gemm1Piecewise) {
          skipRow(tc, row("fused fwd+bwd cublas-gemm1 p4096", "fwd+bwd"), noCublas);
          skipRow(tc, row("fused fwd+bwd cublas-gemm1 p4096 overlap", "fwd+bwd"), noCublas);
        }
      }
      if (onCublas && sc::gemmPathInfo().backward == "cublas")
        fused("fused fwd+bwd pipelined", "fwd+bwd", kPipelinedGemm, "");
      else
        skipRow(tc, row("fused fwd+bwd pipelined", "fwd+bwd"), "the same path as fused fwd+bwd here (no cuBLAS)");
      if (simpleHere)
        fused("fused fwd+bwd simple", "fwd+bwd", kSimpleGemm, "");
      else
        skipRow(tc, row("fused fwd+bwd simple", "fwd+bwd"), tooBig);
      fused("fused fwd", "fwd", kDefaultGemm, "");
      if (cublasLoads())
        fused("fused fwd cublas-gemm1", "fwd", kCublasGemm1, "");
      else
        skipRow(tc, row("fused fwd cublas-gemm1", "fwd"), noCublas);
      if (simpleHere)
        fused("fused fwd simple", "fwd", kSimpleGemm, "");
      else
        skipRow(tc, row("fused fwd simple", "fwd"), tooBig);
      {
        // The chunked softmax: O(N) statistics, never N×N. Four GEMMs of work (S is formed in
        // both passes); TFLOP/s and x floor count the same three as every fwd+bwd row.
        TimingRow r = row("chunked softmax fwd+bwd", "fwd+bwd");
        r.note = "4 GEMMs of work (S twice); TFLOP/s counts 3";
        sc::CudaLossRequest q = req;
        q.method = Method::Chunked;
        q.logitScale = std::log(1 / 0.07);
        q.logitBias = 0;
        timeCase(tc, r, [&] { return sc::softmaxLoss(q, grads).loss; });
      }

      // The naive paths hold S (N×N float32) and G (N×N, input dtype) at once.
      size_t freeBytes = 0, totalBytes = 0;
      cudaMemGetInfo(&freeBytes, &totalBytes);
      const double need = double(n) * double(n) * double(4 + elem) + double(n) * 64;
      const double room = double(freeBytes) - double(size_t(2) << 30);
      char fitNote[160];
      std::snprintf(fitNote, sizeof fitNote, "N×N buffers need %.1f GiB, %.1f GiB free (2 GiB kept back)", need / (1 << 30),
                    double(freeBytes) / (1 << 30));
      for (const bool softmax : {false, true}) {
        TimingRow r = row(softmax ? "naive softmax fwd+bwd" : "naive sigmoid fwd+bwd", "fwd+bwd");
        if (need > room) {
          skipRow(tc, r, fitNote);
          continue;
        }
        sc::CudaLossRequest q = req;
        q.method = Method::Naive;
        if (softmax) {
          q.logitScale = std::log(1 / 0.07);
          q.logitBias = 0;
          timeCase(tc, r, [&] { return sc::softmaxLoss(q, grads).loss; });
        } else {
          timeCase(tc, r, [&] { return sc::sigmoidLoss(q, grads).loss; });
        }
      }
    }
  }
  cudaEventDestroy(tc.begin);
  cudaEventDestroy(tc.end);
  std::printf("\nsiglip_cuda_check --timing: %zu cases, %d not ok, %.1f s\n", tc.rows.size(), failures,
              secondsSince(tc.start));
  if (!tc.jsonPath.empty()) std::printf("JSON: %s\n", tc.jsonPath.c_str());
  return failures ? 1 : 0;
}

}  // namespace siglip::cuda_check
