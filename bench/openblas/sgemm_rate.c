// sgemm_rate.c — the OpenBLAS reference rate for the GEMM the fused loss is built on.
//
// Measures cblas_sgemm for C (m×n) = A (m×k) · Bᵀ, where A is m×k and B is n×k, both
// row-major: exactly the product gemmABt and the fused tile loop compute (S = X · Yᵀ).
// For each shape it runs one untimed warm-up call and then `repeats` timed calls, and
// prints the median time and its GFLOP/s (2·m·n·k flops per call), plus the core type
// OpenBLAS picked at run time (that choice, not the build, decides AVX2 vs AVX-512).
//
// Build and run through run.sh (which also compares the OPENBLAS_* environment variants):
//     cc -O2 -o sgemm_rate sgemm_rate.c -lopenblas
//     ./sgemm_rate [--threads T] [--repeats R] MxNxK [MxNxK ...]
// The output is one line per shape, easy to paste into bench/NOTES.md.
//
// --bf16 adds, per shape, the same product through cblas_sbgemm (bfloat16 A and B, float32
// sums and C; OpenBLAS 0.3.10+): the floor for the package's bf16 path. The inputs are the
// float32 ones rounded to bfloat16 (nearest, ties to even) once, outside the timing.
// cblas_sbgemm is looked up at run time: OpenBLAS builds without BUILD_BFLOAT16 (Debian 12's
// 0.3.21 among them) lack it, and then the line says so instead of the build failing.
#define _GNU_SOURCE  // RTLD_DEFAULT
#include <cblas.h>
#include <dlfcn.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

// Declared in OpenBLAS's cblas.h on Debian, repeated here so that a cblas.h from
// elsewhere (the reference CBLAS) gives a link error naming them, not a silent mismatch.
extern void openblas_set_num_threads(int num_threads);
extern char* openblas_get_corename(void);
extern char* openblas_get_config(void);

static double nowSeconds(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

// xorshift64*: a fixed seed makes every run multiply the same numbers.
static uint64_t rngState = 0x9E3779B97F4A7C15ull;
static float uniformMinus1To1(void) {
  rngState ^= rngState >> 12;
  rngState ^= rngState << 25;
  rngState ^= rngState >> 27;
  uint64_t r = rngState * 0x2545F4914F6CDD1Dull;
  return (float)((double)(r >> 40) / (double)(1ull << 24) * 2.0 - 1.0);
}

static int compareDoubles(const void* a, const void* b) {
  double x = *(const double*)a, y = *(const double*)b;
  return (x > y) - (x < y);
}

static void* allocateOrDie(size_t bytes, const char* what) {
  void* p = NULL;
  // 64-byte alignment: what the package's own buffers use, so neither side gets an edge.
  if (posix_memalign(&p, 64, bytes) != 0) {
    fprintf(stderr, "sgemm_rate: cannot allocate %zu bytes for %s\n", bytes, what);
    exit(2);
  }
  return p;
}

static int withBf16 = 0;

static uint16_t bf16Of(float f) {
  uint32_t x;
  memcpy(&x, &f, sizeof x);
  return (uint16_t)((x + 0x7fffu + ((x >> 16) & 1u)) >> 16);  // finite inputs
}

// Process CPU time (all threads): on a machine shared with other work it moves less than
// wall time (siglip_core_bench prints the same "cpu" figure).
static double cpuSeconds(void) { return (double)clock() / CLOCKS_PER_SEC; }
static double cpuTimes[1024];

static void printRate(const char* what, long long m, long long n, long long k, double* seconds, int repeats) {
  qsort(seconds, (size_t)repeats, sizeof(double), compareDoubles);
  qsort(cpuTimes, (size_t)repeats, sizeof(double), compareDoubles);
  double cpuMedian = repeats % 2 ? cpuTimes[repeats / 2] : 0.5 * (cpuTimes[repeats / 2 - 1] + cpuTimes[repeats / 2]);
  double median = repeats % 2 ? seconds[repeats / 2] : 0.5 * (seconds[repeats / 2 - 1] + seconds[repeats / 2]);
  double flops = 2.0 * (double)m * (double)n * (double)k;
  printf("  %-6s %6lld x %6lld x %5lld   median %9.2f ms   %7.1f GFLOP/s   (min %.2f ms, max %.2f ms, %d runs)  cpu %.1f ms\n",
         what, m, n, k, 1e3 * median, flops / median * 1e-9, 1e3 * seconds[0], 1e3 * seconds[repeats - 1], repeats,
         1e3 * cpuMedian);
  fflush(stdout);
}

static int measureShape(const char* shape, int repeats) {
  long long m = 0, n = 0, k = 0;
  if (sscanf(shape, "%lldx%lldx%lld", &m, &n, &k) != 3 || m <= 0 || n <= 0 || k <= 0) {
    fprintf(stderr, "sgemm_rate: expected a shape MxNxK (e.g. 8192x8192x768) but received \"%s\"\n", shape);
    return 1;
  }
  float* a = allocateOrDie((size_t)(m * k) * sizeof(float), "A");
  float* b = allocateOrDie((size_t)(n * k) * sizeof(float), "B");
  float* c = allocateOrDie((size_t)(m * n) * sizeof(float), "C");
  for (long long i = 0; i < m * k; ++i) a[i] = uniformMinus1To1();
  for (long long i = 0; i < n * k; ++i) b[i] = uniformMinus1To1();
  memset(c, 0, (size_t)(m * n) * sizeof(float));  // touch C so page faults stay out of the timing

  double* seconds = malloc((size_t)repeats * sizeof(double));
  for (int r = -1; r < repeats; ++r) {  // r = -1: warm-up (thread start-up, first-touch)
    double t0 = nowSeconds(), c0 = cpuSeconds();
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)m, (int)n, (int)k, 1.0f, a, (int)k, b,
                (int)k, 0.0f, c, (int)n);
    double t1 = nowSeconds();
    if (r >= 0) seconds[r] = t1 - t0, cpuTimes[r] = cpuSeconds() - c0;
  }
  printRate("sgemm", m, n, k, seconds, repeats);
  typedef void (*Sbgemm)(enum CBLAS_ORDER, enum CBLAS_TRANSPOSE, enum CBLAS_TRANSPOSE, blasint, blasint, blasint,
                         float, const bfloat16*, blasint, const bfloat16*, blasint, float, float*, blasint);
  Sbgemm sbgemm = withBf16 ? (Sbgemm)dlsym(RTLD_DEFAULT, "cblas_sbgemm") : NULL;
  if (withBf16 && !sbgemm) printf("  sbgemm not in this OpenBLAS (built without BUILD_BFLOAT16): no bf16 floor\n");
  if (sbgemm) {
    bfloat16* ab = allocateOrDie((size_t)(m * k) * sizeof(bfloat16), "A (bf16)");
    bfloat16* bb = allocateOrDie((size_t)(n * k) * sizeof(bfloat16), "B (bf16)");
    for (long long i = 0; i < m * k; ++i) ab[i] = bf16Of(a[i]);
    for (long long i = 0; i < n * k; ++i) bb[i] = bf16Of(b[i]);
    for (int r = -1; r < repeats; ++r) {
      double t0 = nowSeconds(), c0 = cpuSeconds();
      sbgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)m, (int)n, (int)k, 1.0f, ab, (int)k, bb, (int)k,
                   0.0f, c, (int)n);
      double t1 = nowSeconds();
      if (r >= 0) seconds[r] = t1 - t0, cpuTimes[r] = cpuSeconds() - c0;
    }
    printRate("sbgemm", m, n, k, seconds, repeats);
    free(ab);
    free(bb);
  }
  free(seconds);
  free(a);
  free(b);
  free(c);
  return 0;
}

int main(int argc, char** argv) {
  int threads = 2, repeats = 5, shapes = 0, failures = 0;
  for (int i = 1; i < argc; ++i) {
    if (!strcmp(argv[i], "--threads") && i + 1 < argc) {
      threads = atoi(argv[++i]);
    } else if (!strcmp(argv[i], "--repeats") && i + 1 < argc) {
      repeats = atoi(argv[++i]);
    } else if (!strcmp(argv[i], "--bf16")) {
      withBf16 = 1;
    } else if (argv[i][0] == '-') {
      fprintf(stderr, "usage: sgemm_rate [--threads T] [--repeats R] [--bf16] MxNxK [MxNxK ...]\n");
      return 2;
    }
  }
  if (threads < 1 || repeats < 1 || repeats > 1024) {
    fprintf(stderr, "sgemm_rate: --threads must be at least 1 and --repeats in [1, 1024]\n");
    return 2;
  }
  openblas_set_num_threads(threads);
  printf("%s; core type %s; %d threads\n", openblas_get_config(), openblas_get_corename(), threads);
  for (int i = 1; i < argc; ++i) {
    if (!strcmp(argv[i], "--threads") || !strcmp(argv[i], "--repeats")) { ++i; continue; }
    if (!strcmp(argv[i], "--bf16")) continue;
    ++shapes;
    failures += measureShape(argv[i], repeats);
  }
  if (shapes == 0) failures += measureShape("8192x8192x768", repeats);
  return failures ? 1 : 0;
}
