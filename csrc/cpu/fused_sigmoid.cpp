// The fused, tiled sigmoid loss on the CPU.
//
// The N×M pair grid is cut into tiles of kTileRows × kTileCols. For tile (i, j):
//   1. S    = X_i · Y_jᵀ                       (GEMM, K = D)
//   2. epilogue on S in place: the loss terms and scalar sums, and S ← t·G
//   3. ∂X_i += (t·G) · Y_j                      (GEMM, K = tile columns)
//   4. ∂Y_j += (t·G)ᵀ · X_i                     (GEMM, K = tile rows)
// so no N×M buffer exists: each worker holds one tile and its GEMM packing buffers.
//
// Work is split by row blocks: a worker takes the next row block i and sweeps j = 0, 1, …
// It alone writes ∂X_i, in j order. ∂Y_j receives a contribution from every row block;
// to make the sum's order fixed (i = 0, 1, …, whatever the thread count) step 4 of tile
// (i, j) waits until row block i-1 has added its contribution to ∂Y_j. Row blocks are
// handed out in order, so workers run as a wavefront one tile apart and the waits are
// short; the waiting never deadlocks because the lowest row block in flight never waits.
// The scalar sums are kept per row block (added in j order) and summed in i order.
// Together: the same bits for any number of threads. (Step 4 of a tile is deferred past
// steps 1-3 of the next one, so a wait has a tile of slack: see the loop.)
// Small batches get shorter row blocks (fusedRowTile): a function of N, never of the thread
// count, so that few row blocks still split evenly over the workers.
#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "gemm.h"
#include "gemm_bf16.h"
#include "losses.h"
#include "thread_pool.h"

namespace siglip::cpu {

namespace {

// The GEMMs of the tile loop, in float32 (gemm.h) or bfloat16 (gemm_bf16.h). An engine
// packs the row block X_i (as the A of X_i·Y_jᵀ and the B of Gᵀ·X_i), names the operands
// Y_jᵀ, Y_j, G and Gᵀ, and multiplies.
//
// Y's column blocks are packed once per call (PackedText, gemm.h; the bf16 engine likewise),
// within kPrepackTextLimit bytes (64 MiB: float32 up to N = 10900 at D = 768, bf16 up to
// twice that); above it, per tile.

struct Fp32Engine {
  using Workspace = GemmWorkspace;
  using Operand = GemmOperand;
  const KernelSet& ks;
  const float* x;
  int64_t d;
  PackedText text_;

  Fp32Engine(const KernelSet& k, const float* xs, const float* ys, int64_t dd, int64_t m, bool wantGrad)
      : ks(k), x(xs), d(dd), text_(k, ys, m, dd, kTileCols, wantGrad) {}
  Workspace workspace() const { return GemmWorkspace(ks); }
  int64_t rowQuantum() const { return ks.mr; }
  int64_t imageSizeA() const { return packedSizeA(ks, kTileRows, d); }
  int64_t imageSizeB() const { return packedSizeB(ks, kTileRows, d); }
  void prepareText(int threads, bool) { text_.packAll(threads); }
  Operand packImageA(int64_t i0, int64_t rows, float* out) const {
    packWholeA(ks, StridedView{x + i0 * d, d, 1}, rows, d, out);
    return {StridedView{x + i0 * d, d, 1}, out};
  }
  Operand packImageB(int64_t i0, int64_t rows, float* out) const {
    packWholeB(ks, StridedView{x + i0 * d, d, 1}, rows, d, out);
    return {StridedView{x + i0 * d, d, 1}, out};
  }
  Operand textT(int64_t j0) { return text_.transposed(j0); }
  Operand text(int64_t j0) { return text_.rows(j0); }
  static Operand tile(const float* s) { return {StridedView{s, kTileCols, 1}}; }
  static Operand tileT(const float* s) { return {StridedView{s, 1, kTileCols}}; }
  void gemm(int64_t m, int64_t n, int64_t k, Operand a, Operand b, float* c, int64_t ldc, bool add,
            Workspace& ws) const {
    cpu::gemm(ks, m, n, k, a, b, c, ldc, add, ws);
  }
};

// bf16: X and Y (float32 or bf16 bits) and the tiles of t·G are rounded to bf16 when packed
// (Y's blocks packed ahead as for float32: half the bytes).
struct Bf16Engine {
  using Workspace = Bf16Workspace;
  using Operand = Bf16Operand;
  const Bf16Kernel& kn;
  SourceView x;  // N×D, row-major
  SourceView y;  // M×D, row-major
  int64_t d;
  int64_t m;
  int64_t sizeBT, sizeB;  // floats (buffer units) per column block of the two packed layouts
  bool prepacked = false;
  AlignedBuffer textAsBT;
  AlignedBuffer textAsB;

  Bf16Engine(const Bf16Kernel& k, SourceView xs, SourceView ys, int64_t dd, int64_t mm, bool wantGrad)
      : kn(k), x(xs), y(ys), d(dd), m(mm), sizeBT(bf16PackedSizeB(k, dd, kTileCols)), sizeB(bf16PackedSizeB(k, kTileCols, dd)) {
    const int64_t colBlocks = (mm + kTileCols - 1) / kTileCols;
    const int64_t floats = colBlocks * (sizeBT + (wantGrad ? sizeB : 0));
    prepacked = prepackTextAllowed(floats * int64_t(sizeof(float)));
    if (prepacked) {
      textAsBT.resize(size_t(colBlocks * sizeBT));
      if (wantGrad) textAsB.resize(size_t(colBlocks * sizeB));
    }
  }
  Workspace workspace() const { return Bf16Workspace(kn); }
  // Every column block's packed layouts, split over the pool's workers (exact copies: any split).
  void prepareText(int threads, bool wantGrad) {
    if (!prepacked) return;
    const int64_t colBlocks = (m + kTileCols - 1) / kTileCols;
    const int packers = int(std::max<int64_t>(1, std::min<int64_t>(threads, colBlocks)));
    ThreadPool::shared().run(packers, [&](int w) {
      for (int64_t jb = w; jb < colBlocks; jb += packers) packBlock(jb, std::min(kTileCols, m - jb * kTileCols), wantGrad);
    });
  }
  int64_t rowQuantum() const { return kn.mr; }
  int64_t imageSizeA() const { return bf16PackedSizeA(kn, kTileRows, d); }
  int64_t imageSizeB() const { return bf16PackedSizeB(kn, kTileRows, d); }
  void packBlock(int64_t jb, int64_t cols, bool wantGrad) {
    const SourceView yj = y.offset(jb * kTileCols, 0);
    bf16PackWholeB(kn, SourceView{yj.data, 1, d, yj.type}, d, cols, textAsBT.data() + jb * sizeBT);
    if (wantGrad) bf16PackWholeB(kn, SourceView{yj.data, d, 1, yj.type}, cols, d, textAsB.data() + jb * sizeB);
  }
  Operand packImageA(int64_t i0, int64_t rows, float* out) const {
    const SourceView xi = x.offset(i0, 0);
    bf16PackWholeA(kn, xi, rows, d, out);
    return {xi, out};
  }
  Operand packImageB(int64_t i0, int64_t rows, float* out) const {
    const SourceView xi = x.offset(i0, 0);
    bf16PackWholeB(kn, xi, rows, d, out);
    return {xi, out};
  }
  Operand textT(int64_t j0) {
    const SourceView yj = y.offset(j0, 0);
    return {SourceView{yj.data, 1, d, yj.type}, prepacked ? textAsBT.data() + (j0 / kTileCols) * sizeBT : nullptr};
  }
  Operand text(int64_t j0) {
    return {y.offset(j0, 0), prepacked ? textAsB.data() + (j0 / kTileCols) * sizeB : nullptr};
  }
  static Operand tile(const float* s) { return {SourceView{s, kTileCols, 1, Element::F32}}; }
  static Operand tileT(const float* s) { return {SourceView{s, 1, kTileCols, Element::F32}}; }
  void gemm(int64_t mm, int64_t n, int64_t k, Operand a, Operand b, float* c, int64_t ldc, bool add,
            Workspace& ws) const {
    bf16Gemm(kn, mm, n, k, a, b, c, ldc, add, ws);
  }
};

// The row-block height for N image rows. With fewer than 8 blocks of kTileRows, the last
// block's share decides the time: N = 512 is 192 + 192 + 128 rows, so on two workers one
// does 320 rows while the other idles after 192 (80 % of the machine). There the rows are cut
// into a multiple of 4 blocks instead (4 of 132 at N = 512), each a multiple of the
// micro-kernel's MR (`quantum`) and at least kMinBlockRows. Depends on N and the kernel only,
// so the bits stay the same for any thread count; larger batches keep kTileRows.
int64_t fusedRowTile(int64_t n, int64_t quantum) {
  constexpr int64_t kMinBlockRows = 48;
  const int64_t blocks = (n + kTileRows - 1) / kTileRows;
  if (blocks >= 8) return kTileRows;
  const int64_t evenBlocks = std::min<int64_t>((blocks + 3) / 4 * 4, std::max<int64_t>(1, n / kMinBlockRows));
  const int64_t rows = (n + evenBlocks - 1) / evenBlocks;
  return std::min<int64_t>(kTileRows, (rows + quantum - 1) / quantum * quantum);
}

template <class Engine>
PairSums fusedSigmoidLoop(const EpilogueSet& ep, Engine& engine, const PairBlock& req) {
  const int64_t n = req.image.rows, m = req.text.rows, d = req.image.cols;
  const double temperature = req.temperature;
  const bool wantGrad = req.wantsGradients();
  const GradientOutputs grads{req.dImage, req.dText};
  const int64_t rowTile = fusedRowTile(n, engine.rowQuantum());
  const int64_t rowBlocks = (n + rowTile - 1) / rowTile;
  const int64_t colBlocks = (m + kTileCols - 1) / kTileCols;
  const int workers = int(std::max<int64_t>(1, std::min<int64_t>(req.threads, rowBlocks)));

  // Everything is allocated before the parallel section, so nothing in it can throw
  // (a worker that threw while others wait on its progress would hang them).
  // Per worker: the tile, GEMM scratch, and its row block X_i packed whole in the two
  // layouts the tile GEMMs read it in (A of X_i·Y_jᵀ, B of Gᵀ·X_i), once per row block.
  struct Worker {
    AlignedBuffer tiles[2];  // tile j and tile j-1 (whose ∂Y step is deferred, see below)
    typename Engine::Workspace gemm;
    AlignedBuffer imageAsA;
    AlignedBuffer imageAsB;
    explicit Worker(const Engine& e)
        : tiles{AlignedBuffer(size_t(kTileRows) * kTileCols), AlignedBuffer(size_t(kTileRows) * kTileCols)},
          gemm(e.workspace()),
          imageAsA(size_t(e.imageSizeA())),
          imageAsB(size_t(e.imageSizeB())) {}
  };
  std::vector<std::unique_ptr<Worker>> state;
  for (int w = 0; w < workers; ++w) state.push_back(std::make_unique<Worker>(engine));
  std::vector<PairSums> rowBlockSums(static_cast<size_t>(rowBlocks));
  std::unique_ptr<std::atomic<int64_t>[]> colProgress(new std::atomic<int64_t>[size_t(colBlocks)]);
  for (int64_t j = 0; j < colBlocks; ++j) colProgress[j].store(0, std::memory_order_relaxed);

  SigmoidTileParams params;
  params.temperature = float(temperature);
  params.bias = float(req.bias);
  params.gradScale = float(temperature / req.normalizer);
  params.wantGradient = wantGrad;

  engine.prepareText(req.threads, wantGrad);  // Y packed ahead, where it is (see above)

  std::atomic<int64_t> nextRowBlock{0};
  ThreadPool::shared().run(workers, [&](int w) {
    Worker& me = *state[size_t(w)];
    for (int64_t ib; (ib = nextRowBlock.fetch_add(1)) < rowBlocks;) {
      const int64_t i0 = ib * rowTile;
      const int64_t rows = std::min(rowTile, n - i0);
      const typename Engine::Operand imageAsA = engine.packImageA(i0, rows, me.imageAsA.data());
      typename Engine::Operand imageAsB{};
      if (wantGrad) imageAsB = engine.packImageB(i0, rows, me.imageAsB.data());
      // Step 4 (∂Y_j += Gᵀ·X_i, the only ordered step) of tile j runs after steps 1-3 of
      // tile j+1: the wait for row block i-1 then has a whole tile of slack, which absorbs
      // the jitter of a shared machine instead of stalling on it.
      auto accumulateTextGrad = [&](int64_t jb) {
        const int64_t j0 = jb * kTileCols;
        const int64_t cols = std::min(kTileCols, m - j0);
        while (colProgress[jb].load(std::memory_order_acquire) != ib) std::this_thread::yield();
        engine.gemm(cols, d, rows, Engine::tileT(me.tiles[jb % 2].data()), imageAsB, grads.text + j0 * d, d, true,
                    me.gemm);
        colProgress[jb].store(ib + 1, std::memory_order_release);
      };
      for (int64_t jb = 0; jb < colBlocks; ++jb) {
        const int64_t j0 = jb * kTileCols;
        const int64_t cols = std::min(kTileCols, m - j0);
        float* s = me.tiles[jb % 2].data();
        engine.gemm(rows, cols, d, imageAsA, engine.textT(j0), s, kTileCols, false, me.gemm);

        SigmoidTileParams tileParams = params;
        tileParams.rowOffset = req.imageOffset + i0;
        tileParams.colOffset = req.textOffset + j0;
        if (req.imageIds) {
          tileParams.rowIds = req.imageIds + i0;
          tileParams.colIds = req.textIds + j0;
        }
        PairSums tileSums;
        ep.sigmoidEpilogue(s, kTileCols, rows, cols, tileParams, tileSums);
        rowBlockSums[size_t(ib)].add(tileSums);
        if (!wantGrad) continue;

        engine.gemm(rows, d, cols, Engine::tile(s), engine.text(j0), grads.image + i0 * d, d, true, me.gemm);
        if (jb > 0) accumulateTextGrad(jb - 1);
      }
      if (wantGrad) accumulateTextGrad(colBlocks - 1);
    }
  });

  PairSums total;
  for (const PairSums& rowSums : rowBlockSums) total.add(rowSums);
  return total;
}

}  // namespace

PairSums fusedSigmoidBlock(const KernelSet& ks, const EpilogueSet& ep, const PairBlock& req) {
  const auto fail = [](const std::string& what) { throw Error(ErrorKind::Internal, "block", "cpu::fusedSigmoidBlock: " + what); };
  for (const BlockMatrix* m : {&req.image, &req.text})
    if (m->dtype != DType::Float32 || m->device != kHostMemory) fail("the CPU takes host float32 data");
  if (req.precision != Precision::FP32 && req.precision != Precision::BF16) fail("the CPU's precisions are fp32 and bf16");
  const MatrixView image = req.image.hostView(), text = req.text.hostView();
  if (req.precision == Precision::BF16) {
    const Bf16Kernel& kn = activeBf16Kernel();
    const int64_t d = image.cols;
    auto source = [d](const float* f, const uint16_t* bits) {
      return bits ? SourceView{bits, d, 1, Element::BF16} : SourceView{f, d, 1, Element::F32};
    };
    Bf16Engine engine(kn, source(image.data, req.imageBf16), source(text.data, req.textBf16), d, text.rows,
                      req.wantsGradients());
    return fusedSigmoidLoop(ep, engine, req);
  }
  Fp32Engine engine(ks, image.data, text.data, image.cols, text.rows, req.wantsGradients());
  return fusedSigmoidLoop(ep, engine, req);
}

LossResult fusedSigmoidLoss(const KernelSet& ks, const EpilogueSet& ep, const LossRequest& req, GradientOutputs grads,
                            Precision precision, Bf16Inputs bits) {
  const int64_t n = req.image.rows, m = req.text.rows, d = req.image.cols;
  if (grads.wanted()) {
    std::memset(grads.image, 0, size_t(n) * size_t(d) * sizeof(float));
    std::memset(grads.text, 0, size_t(m) * size_t(d) * sizeof(float));
  }
  PairBlock block = wholeBatchBlock(BlockMatrix::host(req.image), BlockMatrix::host(req.text), req.imageIds,
                                    req.textIds, req.logitScale, req.logitBias);
  block.dImage = grads.image;
  block.dText = grads.text;
  block.threads = req.threads;
  block.precision = precision;
  block.imageBf16 = bits.image;
  block.textBf16 = bits.text;
  return sigmoidResultFromSums(fusedSigmoidBlock(ks, ep, block), block.temperature, block.normalizer, grads.wanted());
}

}  // namespace siglip::cpu
