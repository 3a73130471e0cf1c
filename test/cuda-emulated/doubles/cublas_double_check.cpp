// Checks the cuBLAS test double (cublas_double.cpp) against a plain float64 product, through
// the package's own loader (cublas_loader.h, from the folder given as argv[1]): every
// transpose pair, padded leading dimensions, each input type and compute type the package
// uses, alpha / beta (beta = 0 must not read C), k = 0 and empty shapes, the row-major
// wrappers gemmABt / gemmAB / gemmAtB that the package's GEMMs call, the stream order, the
// workspace, and the argument errors cuBLAS documents. Exits 1 on any mismatch.
//
//   build-emu/cublas_double_check build-emu/doubles
#include <cuda_runtime.h>

#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "cuda/cublas_loader.h"

using namespace siglip::cuda;

namespace {

int failures = 0, checks = 0;

void expect(bool ok, const std::string& what) {
  ++checks;
  if (!ok) {
    ++failures;
    std::printf("FAIL %s\n", what.c_str());
  }
}

float tf32(float v) {
  uint32_t bits;
  std::memcpy(&bits, &v, 4);
  if ((bits & 0x7f800000u) == 0x7f800000u) return v;
  bits = (bits + 0x1000u) & 0xffffe000u;
  std::memcpy(&v, &bits, 4);
  return v;
}
uint16_t toBf16(float v) {  // nearest even (finite inputs)
  uint32_t bits;
  std::memcpy(&bits, &v, 4);
  bits += 0x7fffu + ((bits >> 16) & 1u);
  return uint16_t(bits >> 16);
}
float fromBf16(uint16_t h) {
  const uint32_t bits = uint32_t(h) << 16;
  float v;
  std::memcpy(&v, &bits, 4);
  return v;
}
uint16_t toHalf(float v) { return siglip_emu::floatToHalfBits(v); }
float fromHalf(uint16_t h) { return siglip_emu::halfBitsToFloat(h); }

struct Matrix {  // host copy (the values as the device sees them) and its device bytes
  std::vector<float> values;
  std::vector<unsigned char> bytes;
};

Matrix makeMatrix(size_t count, CublasDataType type, std::mt19937& rng) {
  std::uniform_real_distribution<float> u(-1.f, 1.f);
  Matrix m;
  m.values.resize(count);
  m.bytes.resize(count * (type == CublasDataType::R32F ? 4 : 2));
  for (size_t i = 0; i < count; ++i) {
    float v = u(rng);
    if (type == CublasDataType::R32F) {
      std::memcpy(&m.bytes[4 * i], &v, 4);
    } else {
      const uint16_t h = type == CublasDataType::R16BF ? toBf16(v) : toHalf(v);
      v = type == CublasDataType::R16BF ? fromBf16(h) : fromHalf(h);
      std::memcpy(&m.bytes[2 * i], &h, 2);
    }
    m.values[i] = v;
  }
  return m;
}

void* upload(const void* data, size_t bytes) {
  void* p = nullptr;
  if (cudaMalloc(&p, bytes ? bytes : 1) != cudaSuccess) std::abort();
  if (bytes) cudaMemcpy(p, data, bytes, cudaMemcpyHostToDevice);
  cudaDeviceSynchronize();  // the handle's stream is non-blocking: it does not wait for the legacy stream
  return p;
}

const char* typeName(CublasDataType t) { return t == CublasDataType::R32F ? "32F" : t == CublasDataType::R16F ? "16F" : "16BF"; }
const char* computeName(CublasCompute c) {
  return c == CublasCompute::F32 ? "32F" : c == CublasCompute::F32Pedantic ? "32F_PEDANTIC" : "32F_FAST_TF32";
}

// One cublasGemmEx against the float64 product of the same (rounded) operands.
void gemmCase(const CublasLibrary& lib, CublasHandle h, int ta, int tb, int m, int n, int k, int pad, CublasDataType type,
              CublasCompute compute, float alpha, float beta, std::mt19937& rng) {
  const int aRows = ta ? k : m, aCols = ta ? m : k, bRows = tb ? n : k, bCols = tb ? k : n;
  const int lda = std::max(1, aRows + pad), ldb = std::max(1, bRows + pad), ldc = std::max(1, m + pad);
  const Matrix a = makeMatrix(size_t(lda) * aCols, type, rng), b = makeMatrix(size_t(ldb) * bCols, type, rng);
  Matrix c = makeMatrix(size_t(ldc) * n, CublasDataType::R32F, rng);
  if (beta == 0) {  // C must not be read: NaN there stays out of the result
    for (float& v : c.values) v = std::nanf("");
    for (size_t i = 0; i < c.values.size(); ++i) std::memcpy(&c.bytes[4 * i], &c.values[i], 4);
  }
  void* da = upload(a.bytes.data(), a.bytes.size());
  void* db = upload(b.bytes.data(), b.bytes.size());
  void* dc = upload(c.bytes.data(), c.bytes.size());
  const int status = lib.gemmEx(h, ta, tb, m, n, k, &alpha, da, int(type), lda, db, int(type), ldb, &beta, dc,
                                int(CublasDataType::R32F), ldc, int(compute), -1);
  std::vector<float> out(c.values.size());
  cudaDeviceSynchronize();
  cudaMemcpy(out.data(), dc, out.size() * 4, cudaMemcpyDeviceToHost);
  const bool rounds = compute == CublasCompute::F32FastTf32;
  double worst = 0;
  bool padKept = true;
  for (int j = 0; j < n; ++j) {
    for (int i = 0; i < ldc; ++i) {
      const float got = out[size_t(i + j * ldc)];
      if (i >= m) {  // rows past m: untouched
        padKept &= std::memcmp(&got, &c.values[size_t(i + j * ldc)], 4) == 0;
        continue;
      }
      double ref = 0, mag = 0;
      for (int l = 0; l < k; ++l) {
        float av = a.values[size_t(ta ? l + i * lda : i + l * lda)], bv = b.values[size_t(tb ? j + l * ldb : l + j * ldb)];
        if (rounds) av = tf32(av), bv = tf32(bv);
        ref += double(av) * bv;
        mag += std::fabs(double(av) * bv);
      }
      const double old = c.values[size_t(i + j * ldc)];
      ref = alpha * ref + (beta == 0 ? 0.0 : beta * old);
      const double bound = (k + 4) * 0x1p-24 * (std::fabs(alpha) * mag + std::fabs(beta * (beta == 0 ? 0 : old))) + 1e-30;
      worst = std::max(worst, std::isfinite(got) ? std::fabs(got - ref) / bound : 1e300);
    }
  }
  char what[256];
  std::snprintf(what, sizeof what, "gemmEx %c%c m=%d n=%d k=%d pad=%d %s/%s alpha=%g beta=%g: status %d, error %.2g of the bound%s",
                ta ? 'T' : 'N', tb ? 'T' : 'N', m, n, k, pad, typeName(type), computeName(compute), alpha, beta, status,
                worst, padKept ? "" : ", rows past m written");
  expect(status == 0 && worst <= 1 && padKept, what);
  cudaFree(da), cudaFree(db), cudaFree(dc);
}

// The package's row-major wrappers: C (rows×cols, ldc) = A·Bᵀ, A·B, Aᵀ·B, row-major operands.
void wrapperCase(const CublasLibrary& lib, CublasHandle h, int which, int rows, int cols, int k, std::mt19937& rng) {
  const CublasDataType type = CublasDataType::R32F;
  const int aRows = which == 2 ? k : rows, aCols = which == 2 ? rows : k;  // row-major shapes
  const int bRows = which == 0 ? cols : k, bCols = which == 0 ? k : cols;
  const int lda = aCols + 1, ldb = bCols + 2, ldc = cols + 3;
  const Matrix a = makeMatrix(size_t(aRows) * lda, type, rng), b = makeMatrix(size_t(bRows) * ldb, type, rng);
  std::vector<float> c(size_t(rows) * ldc, 0.5f);
  void* da = upload(a.bytes.data(), a.bytes.size());
  void* db = upload(b.bytes.data(), b.bytes.size());
  void* dc = upload(c.data(), c.size() * 4);
  const float alpha = 0.75f, beta = 1.0f;
  CublasStatus status;
  if (which == 0)
    status = lib.gemmABt(h, rows, cols, k, da, lda, db, ldb, dc, ldc, type, type, CublasCompute::F32Pedantic, alpha, beta);
  else if (which == 1)
    status = lib.gemmAB(h, rows, cols, k, da, lda, db, ldb, dc, ldc, type, type, CublasCompute::F32Pedantic, alpha, beta);
  else
    status = lib.gemmAtB(h, rows, cols, k, da, lda, db, ldb, dc, ldc, type, type, CublasCompute::F32Pedantic, alpha, beta);
  std::vector<float> out(c.size());
  cudaDeviceSynchronize();
  cudaMemcpy(out.data(), dc, out.size() * 4, cudaMemcpyDeviceToHost);
  double worst = 0;
  for (int i = 0; i < rows; ++i)
    for (int j = 0; j < cols; ++j) {
      double ref = 0, mag = 0;
      for (int l = 0; l < k; ++l) {
        const double av = which == 2 ? a.values[size_t(l * lda + i)] : a.values[size_t(i * lda + l)];
        const double bv = which == 0 ? b.values[size_t(j * ldb + l)] : b.values[size_t(l * ldb + j)];
        ref += av * bv, mag += std::fabs(av * bv);
      }
      ref = alpha * ref + beta * 0.5;
      worst = std::max(worst, std::fabs(out[size_t(i * ldc + j)] - ref) / ((k + 4) * 0x1p-24 * (mag + 1)));
    }
  const char* names[] = {"gemmABt (A·Bᵀ)", "gemmAB (A·B)", "gemmAtB (Aᵀ·B)"};
  char what[200];
  std::snprintf(what, sizeof what, "%s row-major %d×%d×%d: status %d, error %.2g of the bound", names[which], rows, cols, k,
                status, worst);
  expect(status == 0 && worst <= 1, what);
  cudaFree(da), cudaFree(db), cudaFree(dc);
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: %s FOLDER-OR-FILE (the cuBLAS double)\n", argv[0]);
    return 3;
  }
  std::string why;
  std::unique_ptr<CublasLibrary> lib = loadCublas(argv[1], &why);
  if (!lib) {
    std::printf("FAIL the package's loader did not load the double: %s\n", why.c_str());
    return 1;
  }
  std::printf("loaded %s (cuBLAS %s)%s%s\n", lib->path.c_str(), lib->version.c_str(), lib->ltPath.empty() ? "" : ", after ",
              lib->ltPath.c_str());
  CublasHandle h = nullptr;
  expect(lib->create(&h) == 0 && h, "cublasCreate_v2");
  cudaStream_t stream = nullptr;
  cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking);
  expect(lib->setStream(h, stream) == 0, "cublasSetStream_v2");
  void* workspace = nullptr;
  cudaMalloc(&workspace, 1 << 20);
  expect(lib->setWorkspace(h, workspace, 1 << 20) == 0, "cublasSetWorkspace_v2");
  expect(lib->setAtomicsMode(h, kCublasAtomicsNotAllowed) == 0, "cublasSetAtomicsMode");

  std::mt19937 rng(5);
  const int shapes[][3] = {{1, 1, 1}, {5, 7, 3}, {17, 9, 33}, {16, 16, 16}, {0, 3, 4}, {3, 4, 0}};
  for (int ta = 0; ta < 2; ++ta)
    for (int tb = 0; tb < 2; ++tb)
      for (const auto& s : shapes)
        for (int pad : {0, 3}) {
          gemmCase(*lib, h, ta, tb, s[0], s[1], s[2], pad, CublasDataType::R32F, CublasCompute::F32Pedantic, 1.0f, 0.0f, rng);
          gemmCase(*lib, h, ta, tb, s[0], s[1], s[2], pad, CublasDataType::R32F, CublasCompute::F32FastTf32, -0.5f, 1.0f, rng);
          gemmCase(*lib, h, ta, tb, s[0], s[1], s[2], pad, CublasDataType::R16BF, CublasCompute::F32, 2.0f, 0.25f, rng);
          gemmCase(*lib, h, ta, tb, s[0], s[1], s[2], pad, CublasDataType::R16F, CublasCompute::F32, 1.0f, 0.0f, rng);
        }
  for (int which = 0; which < 3; ++which) {
    wrapperCase(*lib, h, which, 7, 5, 9, rng);
    wrapperCase(*lib, h, which, 1, 33, 2, rng);
  }

  // TF32 really rounds: an operand with bits below TF32's mantissa gives the rounded product.
  {
    const float a = 1.0f + 0x1p-12f, b = 1.0f;  // tf32(a) = 1 (the low bits dropped... rounded to nearest)
    void* da = upload(&a, 4);
    void* db = upload(&b, 4);
    float zero = 0;
    void* dc = upload(&zero, 4);
    const float one = 1, nil = 0;
    float exact = 0, rounded = 0;
    lib->gemmEx(h, 0, 0, 1, 1, 1, &one, da, 0, 1, db, 0, 1, &nil, dc, 0, 1, int(CublasCompute::F32Pedantic), -1);
    cudaDeviceSynchronize();
    cudaMemcpy(&exact, dc, 4, cudaMemcpyDeviceToHost);
    lib->gemmEx(h, 0, 0, 1, 1, 1, &one, da, 0, 1, db, 0, 1, &nil, dc, 0, 1, int(CublasCompute::F32FastTf32), -1);
    cudaDeviceSynchronize();
    cudaMemcpy(&rounded, dc, 4, cudaMemcpyDeviceToHost);
    expect(exact == a && rounded == tf32(a) && rounded != a, "32F_PEDANTIC keeps float inputs, 32F_FAST_TF32 rounds them");
    cudaFree(da), cudaFree(db), cudaFree(dc);
  }

  // The workspace is the GEMM's: overwritten (NaN) by every GEMM.
  {
    std::vector<float> w(4);
    cudaDeviceSynchronize();
    cudaMemcpy(w.data(), workspace, 16, cudaMemcpyDeviceToHost);
    expect(std::isnan(w[0]) && std::isnan(w[3]), "the workspace is scribbled on by the GEMMs");
  }

  // Stream order: a GEMM queued on the handle's stream after an upload on that stream sees it.
  {
    float host[4] = {1, 2, 3, 4};
    float* pinned = nullptr;
    cudaMallocHost(reinterpret_cast<void**>(&pinned), 16);
    std::memcpy(pinned, host, 16);
    void* da = nullptr;
    cudaMalloc(&da, 16);
    float z[4] = {};
    void* dc = upload(z, 16);
    cudaMemcpyAsync(da, pinned, 16, cudaMemcpyHostToDevice, stream);
    const float one = 1, nil = 0;
    // C (2×2) = A (2×1) · B (1×2), A = [1 2], B = [3 4]
    lib->gemmEx(h, 0, 0, 2, 2, 1, &one, da, 0, 2, static_cast<float*>(da) + 2, 0, 1, &nil, dc, 0, 2,
                int(CublasCompute::F32Pedantic), -1);
    float out[4];
    cudaStreamSynchronize(stream);
    cudaMemcpy(out, dc, 16, cudaMemcpyDeviceToHost);
    expect(out[0] == 3 && out[1] == 6 && out[2] == 4 && out[3] == 8, "a GEMM runs after the stream's earlier copy");
    cudaFree(da), cudaFree(dc), cudaFreeHost(pinned);
  }

  // Argument errors, as documented.
  {
    const float one = 1;
    void* d = nullptr;
    cudaMalloc(&d, 256);
    auto gemm = [&](CublasHandle hh, int ta, int m, int n, int k, int lda, int ldb, int ldc, int at, int bt, int ct, int comp) {
      return lib->gemmEx(hh, ta, 0, m, n, k, &one, d, at, lda, d, bt, ldb, &one, d, ct, ldc, comp, -1);
    };
    const int p = int(CublasCompute::F32Pedantic), f = int(CublasCompute::F32FastTf32), c32 = int(CublasCompute::F32);
    expect(gemm(h, 0, 4, 4, 4, 3, 4, 4, 0, 0, 0, p) == 7, "lda < m (op N): CUBLAS_STATUS_INVALID_VALUE");
    expect(gemm(h, 1, 4, 4, 5, 4, 5, 4, 0, 0, 0, p) == 7, "lda < k (op T): CUBLAS_STATUS_INVALID_VALUE");
    expect(gemm(h, 0, 4, 4, 4, 4, 3, 4, 0, 0, 0, p) == 7, "ldb < k (op N): CUBLAS_STATUS_INVALID_VALUE");
    expect(gemm(h, 0, 4, 4, 4, 4, 4, 3, 0, 0, 0, p) == 7, "ldc < m: CUBLAS_STATUS_INVALID_VALUE");
    expect(gemm(h, 0, -1, 4, 4, 4, 4, 4, 0, 0, 0, p) == 7, "m < 0: CUBLAS_STATUS_INVALID_VALUE");
    expect(gemm(h, 5, 4, 4, 4, 4, 4, 4, 0, 0, 0, p) == 7, "transa not N/T/C: CUBLAS_STATUS_INVALID_VALUE");
    expect(gemm(h, 0, 4, 4, 4, 4, 4, 4, 14, 2, 0, c32) == 15, "Atype ≠ Btype: CUBLAS_STATUS_NOT_SUPPORTED");
    expect(gemm(h, 0, 4, 4, 4, 4, 4, 4, 14, 14, 0, f) == 15, "16BF with 32F_FAST_TF32: CUBLAS_STATUS_NOT_SUPPORTED");
    expect(gemm(nullptr, 0, 4, 4, 4, 4, 4, 4, 0, 0, 0, p) == 1, "no handle: CUBLAS_STATUS_NOT_INITIALIZED");
    expect(lib->setAtomicsMode(h, 2) == 7, "atomics mode 2: CUBLAS_STATUS_INVALID_VALUE");
    expect(lib->setWorkspace(h, static_cast<char*>(d) + 4, 16) == 7, "a workspace not 256-byte aligned: INVALID_VALUE");
    expect(std::string(lib->statusText(15)) == "CUBLAS_STATUS_NOT_SUPPORTED (15)", "cublasGetStatusName");
    cudaStreamSynchronize(stream);
    cudaFree(d);
  }
  expect(lib->destroy(h) == 0, "cublasDestroy_v2");
  cudaStreamDestroy(stream);
  cudaFree(workspace);

  // The loader's own failure path: a folder without libcublas.
  {
    std::string error;
    expect(!loadCublas("/nonexistent-folder", &error) && error.find("/nonexistent-folder") != std::string::npos,
           "the loader reports a missing library: " + error.substr(0, 80));
  }
  std::printf("%s cuBLAS double: %d checks, %d failed\n", failures ? "FAIL" : "PASS", checks, failures);
  return failures ? 1 : 0;
}
