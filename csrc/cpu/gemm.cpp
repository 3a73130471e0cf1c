#include "gemm.h"

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <vector>

#include "thread_pool.h"

namespace siglip::cpu {
namespace {

// Packs rows [0, m) × columns [0, kc) of A into panels of MR rows, k-major inside a panel
// (panel p holds A[p·MR + r][k] at p·MR·kc + k·MR + r), zero-padding the last panel.
void packA(const KernelSet& ks, StridedView a, int64_t m, int64_t kc, float* out) {
  const int mr = ks.mr;
  for (int64_t p = 0; p < m; p += mr) {
    const int64_t rows = std::min<int64_t>(mr, m - p);
    float* panel = out + p * kc;
    if (a.rowStride == 1) {  // Aᵀ is row-major: each k gives MR contiguous values
      for (int64_t k = 0; k < kc; ++k) {
        const float* src = a.at(p, k);
        float* dst = panel + k * mr;
        std::memcpy(dst, src, rows * sizeof(float));
        for (int64_t r = rows; r < mr; ++r) dst[r] = 0;
      }
    } else {
      for (int64_t r = 0; r < rows; ++r) {
        const float* src = a.at(p + r, 0);
        for (int64_t k = 0; k < kc; ++k) panel[k * mr + r] = src[k * a.colStride];
      }
      for (int64_t r = rows; r < mr; ++r)
        for (int64_t k = 0; k < kc; ++k) panel[k * mr + r] = 0;
    }
  }
}

// Packs rows [0, kc) × columns [0, n) of B into panels of NR columns, k-major inside a
// panel (panel p holds B[k][p·NR + c] at p·kc + k·NR + c), zero-padding the last panel.
void packB(const KernelSet& ks, StridedView b, int64_t kc, int64_t n, float* out) {
  const int nr = ks.nr;
  for (int64_t p = 0; p < n; p += nr) {
    const int64_t cols = std::min<int64_t>(nr, n - p);
    float* panel = out + p * kc;
    if (b.colStride == 1) {  // B row-major: each k gives NR contiguous values
      for (int64_t k = 0; k < kc; ++k) {
        float* dst = panel + k * nr;
        std::memcpy(dst, b.at(k, p), cols * sizeof(float));
        for (int64_t c = cols; c < nr; ++c) dst[c] = 0;
      }
    } else {  // Bᵀ row-major (B = Yᵀ): a transpose. Eight columns of B (rows of Y) are
      // read as eight sequential streams and written as eight contiguous floats per k.
      int64_t c = 0;
      for (; c + 8 <= cols; c += 8) {
        const float* src[8];
        for (int q = 0; q < 8; ++q) src[q] = b.at(0, p + c + q);
        for (int64_t k = 0; k < kc; ++k) {
          float* dst = panel + k * nr + c;
          for (int q = 0; q < 8; ++q) dst[q] = src[q][k * b.rowStride];
        }
      }
      for (; c < cols; ++c) {
        const float* src = b.at(0, p + c);
        for (int64_t k = 0; k < kc; ++k) panel[k * nr + c] = src[k * b.rowStride];
      }
      for (; c < nr; ++c)
        for (int64_t k = 0; k < kc; ++k) panel[k * nr + c] = 0;
    }
  }
}

// C block (mc×nc) [+]= packed A (mc×kc) · packed B (kc×nc), one micro-kernel per MR×NR.
void macroKernel(const KernelSet& ks, int64_t mc, int64_t nc, int64_t kc, const float* pa, const float* pb, float* c,
                 int64_t ldc, bool accumulate) {
  const int mr = ks.mr, nr = ks.nr;
  alignas(64) float edge[16 * 64];  // an MR×NR scratch tile for the ragged edges
  for (int64_t j = 0; j < nc; j += nr) {
    const int64_t cols = std::min<int64_t>(nr, nc - j);
    const float* bPanel = pb + j * kc;
    for (int64_t i = 0; i < mc; i += mr) {
      const int64_t rows = std::min<int64_t>(mr, mc - i);
      const float* aPanel = pa + i * kc;
      float* cTile = c + i * ldc + j;
      if (rows == mr && cols == nr) {
        ks.microKernel(kc, aPanel, bPanel, cTile, ldc, accumulate);
      } else {
        ks.microKernel(kc, aPanel, bPanel, edge, nr, false);
        for (int64_t r = 0; r < rows; ++r)
          for (int64_t q = 0; q < cols; ++q)
            cTile[r * ldc + q] = accumulate ? cTile[r * ldc + q] + edge[r * nr + q] : edge[r * nr + q];
      }
    }
  }
}

}  // namespace

GemmWorkspace::GemmWorkspace(const KernelSet& ks)
    : packedA(size_t(ks.mc) * ks.kc), packedB(size_t(ks.kc) * ((ks.nc + ks.nr - 1) / ks.nr) * ks.nr) {}

// Whole-operand packing: the blocks packA / packB would produce, laid out one k block
// after another. The block at k offset pc holds every panel of that block, so it starts
// at pc × (m rounded up to MR) and its row block ic inside at + ic × (that block's kc).
int64_t packedSizeA(const KernelSet& ks, int64_t m, int64_t k) { return (m + ks.mr - 1) / ks.mr * ks.mr * k; }
int64_t packedSizeB(const KernelSet& ks, int64_t k, int64_t n) { return (n + ks.nr - 1) / ks.nr * ks.nr * k; }

void packWholeA(const KernelSet& ks, StridedView a, int64_t m, int64_t k, float* out) {
  const int64_t padded = (m + ks.mr - 1) / ks.mr * ks.mr;
  for (int64_t pc = 0; pc < k; pc += ks.kc)
    packA(ks, StridedView{a.at(0, pc), a.rowStride, a.colStride}, m, std::min<int64_t>(ks.kc, k - pc),
          out + pc * padded);
}

void packWholeB(const KernelSet& ks, StridedView b, int64_t k, int64_t n, float* out) {
  const int64_t padded = (n + ks.nr - 1) / ks.nr * ks.nr;
  for (int64_t pc = 0; pc < k; pc += ks.kc)
    packB(ks, StridedView{b.at(pc, 0), b.rowStride, b.colStride}, std::min<int64_t>(ks.kc, k - pc), n,
          out + pc * padded);
}

void gemm(const KernelSet& ks, int64_t m, int64_t n, int64_t k, GemmOperand a, GemmOperand b, float* c, int64_t ldc,
          bool accumulate, GemmWorkspace& ws) {
  const int64_t mPadded = (m + ks.mr - 1) / ks.mr * ks.mr;
  const int64_t nPadded = (n + ks.nr - 1) / ks.nr * ks.nr;
  for (int64_t jc = 0; jc < n; jc += ks.nc) {
    const int64_t nc = std::min<int64_t>(ks.nc, n - jc);
    for (int64_t pc = 0; pc < k; pc += ks.kc) {
      const int64_t kc = std::min<int64_t>(ks.kc, k - pc);
      const float* pb = b.packed ? b.packed + pc * nPadded + jc * kc : ws.packedB.data();
      if (!b.packed) packB(ks, StridedView{b.view.at(pc, jc), b.view.rowStride, b.view.colStride}, kc, nc, ws.packedB.data());
      // The first k block overwrites C unless the caller accumulates; later ones add.
      const bool add = accumulate || pc > 0;
      for (int64_t ic = 0; ic < m; ic += ks.mc) {
        const int64_t mc = std::min<int64_t>(ks.mc, m - ic);
        const float* pa = a.packed ? a.packed + pc * mPadded + ic * kc : ws.packedA.data();
        if (!a.packed) packA(ks, StridedView{a.view.at(ic, pc), a.view.rowStride, a.view.colStride}, mc, kc, ws.packedA.data());
        macroKernel(ks, mc, nc, kc, pa, pb, c + ic * ldc + jc, ldc, add);
      }
    }
  }
}

bool prepackTextAllowed(int64_t bytes) {
  static const bool off = [] {
    const char* env = std::getenv("SIGLIP_PREPACK");
    return env != nullptr && std::strcmp(env, "off") == 0;
  }();
  return !off && bytes <= kPrepackTextLimit;
}

PackedText::PackedText(const KernelSet& ks, const float* y, int64_t m, int64_t d, int64_t blockRows, bool rowsToo)
    : ks_(ks), y_(y), m_(m), d_(d), blockRows_(blockRows), rowsToo_(rowsToo),
      sizeT_(packedSizeB(ks, d, blockRows)), sizeR_(packedSizeB(ks, blockRows, d)) {
  const int64_t blocks = (m + blockRows - 1) / blockRows;
  const int64_t floats = blocks * (sizeT_ + (rowsToo ? sizeR_ : 0));
  enabled_ = prepackTextAllowed(floats * int64_t(sizeof(float)));
  if (enabled_) {
    transposed_.resize(size_t(blocks * sizeT_));
    if (rowsToo) rows_.resize(size_t(blocks * sizeR_));
  }
}

void PackedText::packAll(int threads) {
  if (!enabled_) return;
  const int64_t blocks = (m_ + blockRows_ - 1) / blockRows_;
  const int workers = int(std::max<int64_t>(1, std::min<int64_t>(threads, blocks)));
  ThreadPool::shared().run(workers, [&](int w) {
    for (int64_t jb = w; jb < blocks; jb += workers) {
      const float* yj = y_ + jb * blockRows_ * d_;
      const int64_t cols = std::min(blockRows_, m_ - jb * blockRows_);
      packWholeB(ks_, StridedView{yj, 1, d_}, d_, cols, transposed_.data() + jb * sizeT_);
      if (rowsToo_) packWholeB(ks_, StridedView{yj, d_, 1}, cols, d_, rows_.data() + jb * sizeR_);
    }
  });
}

GemmOperand PackedText::transposed(int64_t j0) {
  return {StridedView{y_ + j0 * d_, 1, d_}, enabled_ ? transposed_.data() + (j0 / blockRows_) * sizeT_ : nullptr};
}

GemmOperand PackedText::rows(int64_t j0) {
  return {StridedView{y_ + j0 * d_, d_, 1},
          enabled_ && rowsToo_ ? rows_.data() + (j0 / blockRows_) * sizeR_ : nullptr};
}

namespace {

// The most rows any worker gets when blocks of `mc` rows are dealt round-robin to `workers`.
int64_t busiestWorkerRows(int64_t m, int64_t mc, int workers) {
  const int64_t blocks = (m + mc - 1) / mc;
  int64_t busiest = 0;
  for (int w = 0; w < workers; ++w) {
    int64_t rows = 0;
    for (int64_t block = w; block < blocks; block += workers) rows += std::min(mc, m - block * mc);
    busiest = std::max(busiest, rows);
  }
  return busiest;
}

// A's row-block height: ks.mc, or a shorter multiple of MR where that deals the rows out more
// evenly. With few blocks the remainder decides the time: m = 1024 in blocks of 288 gives one of
// two workers 576 rows and the other 448 (89 % of the machine); blocks of 264 give 528 and 496.
// The row blocking changes no sum (each C entry's k order is fixed by kc), so the bits are the
// same for any choice, and so for any thread count.
int64_t balancedRowBlock(const KernelSet& ks, int64_t m, int workers) {
  const int64_t blocks = (m + ks.mc - 1) / ks.mc;
  const int64_t dealt = (blocks + workers - 1) / workers * workers;
  const int64_t even = std::min<int64_t>(ks.mc, ((m + dealt - 1) / dealt + ks.mr - 1) / ks.mr * ks.mr);
  return busiestWorkerRows(m, even, workers) < busiestWorkerRows(m, ks.mc, workers) ? even : ks.mc;
}

}  // namespace

void parallelGemm(const KernelSet& ks, int64_t m, int64_t n, int64_t k, StridedView a, StridedView b, float* c,
                  int64_t ldc, bool accumulate, int threads) {
  // BLIS-style: all workers share one packed block of B (each packs a share of its
  // panels), then split the blocks of A's rows. Sharing B matters: packing it per worker
  // and row block would move the whole of B through memory m/mc times.
  const int workers = int(std::max<int64_t>(1, std::min<int64_t>(threads, (m + ks.mc - 1) / ks.mc)));
  const int64_t rowBlock = balancedRowBlock(ks, m, workers);
  const int64_t rowBlocks = (m + rowBlock - 1) / rowBlock;
  AlignedBuffer packedB(size_t(ks.kc) * ((std::min<int64_t>(ks.nc, n) + ks.nr - 1) / ks.nr) * ks.nr);
  std::vector<std::unique_ptr<AlignedBuffer>> packedA;
  for (int w = 0; w < workers; ++w) packedA.push_back(std::make_unique<AlignedBuffer>(size_t(ks.mc) * ks.kc));
  SpinBarrier barrier(workers);
  ThreadPool::shared().run(workers, [&](int w) {
    for (int64_t jc = 0; jc < n; jc += ks.nc) {
      const int64_t nc = std::min<int64_t>(ks.nc, n - jc);
      const int64_t panels = (nc + ks.nr - 1) / ks.nr;
      for (int64_t pc = 0; pc < k; pc += ks.kc) {
        const int64_t kc = std::min<int64_t>(ks.kc, k - pc);
        const int64_t first = panels * w / workers, last = panels * (w + 1) / workers;
        if (last > first) {
          packB(ks, StridedView{b.at(pc, jc + first * ks.nr), b.rowStride, b.colStride}, kc,
                std::min<int64_t>(nc, last * ks.nr) - first * ks.nr, packedB.data() + first * ks.nr * kc);
        }
        barrier.wait();
        const bool add = accumulate || pc > 0;
        for (int64_t block = w; block < rowBlocks; block += workers) {
          const int64_t ic = block * rowBlock;
          const int64_t mc = std::min<int64_t>(rowBlock, m - ic);
          packA(ks, StridedView{a.at(ic, pc), a.rowStride, a.colStride}, mc, kc, packedA[w]->data());
          macroKernel(ks, mc, nc, kc, packedA[w]->data(), packedB.data(), c + ic * ldc + jc, ldc, add);
        }
        barrier.wait();  // packedB is rewritten by the next (jc, pc) step
      }
    }
  });
}

}  // namespace siglip::cpu
