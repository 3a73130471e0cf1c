// nvcuda::wmma for the CUDA emulation: bf16 / fp16 m16n16k16 and tf32 m16n16k8 with float
// accumulation. A fragment's elements map to matrix positions by a random permutation drawn
// once per run (siglip_emu::fragmentLayout): the real map is undocumented, so code that reads or
// writes fragment.x[i] as if it knew it gets wrong results here. load/store run per lane (each
// lane touches only its own elements, seen by the shared-memory race checks); mma_sync is a
// warp collective. TF32 inputs are used as the tensor cores use them: the 13 low mantissa bits
// ignored (so a missing __float_to_tf32 truncates instead of rounding).
#pragma once
#include <cstdint>
#include <cstring>

namespace nvcuda {
namespace wmma {

struct matrix_a {};
struct matrix_b {};
struct accumulator {};
struct row_major {};
struct col_major {};
enum layout_t { mem_row_major, mem_col_major };
namespace precision {
struct tf32 {};
}  // namespace precision

template <class T>
struct StorageOf {
  using type = T;
};
template <>
struct StorageOf<precision::tf32> {
  using type = float;
};

template <class Use, int M, int N, int K>
struct FragShape;
template <int M, int N, int K>
struct FragShape<matrix_a, M, N, K> {
  static constexpr int rows = M, cols = K, use = 0;
};
template <int M, int N, int K>
struct FragShape<matrix_b, M, N, K> {
  static constexpr int rows = K, cols = N, use = 1;
};
template <int M, int N, int K>
struct FragShape<accumulator, M, N, K> {
  static constexpr int rows = M, cols = N, use = 2;
};

template <class Use, int M, int N, int K, class T, class Layout = void>
struct fragment {
  using Shape = FragShape<Use, M, N, K>;
  using element_type = typename StorageOf<T>::type;
  using storage_element_type = element_type;
  enum { num_elements = Shape::rows * Shape::cols / 32 };
  element_type x[num_elements];
  static const uint16_t* layout() { return ::siglip_emu::fragmentLayout(Shape::use, Shape::rows, Shape::cols); }
};

inline float __float_to_tf32(float v) {  // cvt.rna.tf32.f32: nearest, ties away from zero
  uint32_t bits;
  std::memcpy(&bits, &v, 4);
  if ((bits & 0x7f800000u) == 0x7f800000u) return v;
  bits = (bits + 0x1000u) & 0xffffe000u;
  std::memcpy(&v, &bits, 4);
  return v;
}

template <class Use, int M, int N, int K, class T, class L, class V>
inline void fill_fragment(fragment<Use, M, N, K, T, L>& f, const V& v) {
  for (int i = 0; i < int(f.num_elements); ++i) f.x[i] = typename fragment<Use, M, N, K, T, L>::element_type(v);
}

namespace detail {
template <class E>
inline void checkOperand(const E* p, unsigned ldm, const char* what) {
  // WMMA: a 256-bit aligned pointer, ldm a multiple of 16 bytes.
  if ((reinterpret_cast<uintptr_t>(p) & 31) != 0 || (ldm * sizeof(E)) % 16 != 0) ::siglip_emu::reportWmmaMisuse(what, p, ldm);
}
}  // namespace detail

// matrix_a / matrix_b: the layout is the fragment's.
template <class Use, int M, int N, int K, class T, class L, class E>
inline void load_matrix_sync(fragment<Use, M, N, K, T, L>& f, const E* p, unsigned ldm) {
  using F = fragment<Use, M, N, K, T, L>;
  detail::checkOperand(p, ldm, "wmma::load_matrix_sync");
  const uint16_t* map = F::layout() + ::siglip_emu::laneId() * int(F::num_elements);
  constexpr bool col = std::is_same<L, col_major>::value;
  for (int i = 0; i < int(F::num_elements); ++i) {
    const int r = map[i] / F::Shape::cols, c = map[i] % F::Shape::cols;
    f.x[i] = typename F::element_type(col ? p[size_t(c) * ldm + r] : p[size_t(r) * ldm + c]);
  }
}
// accumulator: the layout is given.
template <int M, int N, int K, class T>
inline void load_matrix_sync(fragment<accumulator, M, N, K, T, void>& f, const T* p, unsigned ldm, layout_t layout) {
  using F = fragment<accumulator, M, N, K, T, void>;
  detail::checkOperand(p, ldm, "wmma::load_matrix_sync");
  const uint16_t* map = F::layout() + ::siglip_emu::laneId() * int(F::num_elements);
  for (int i = 0; i < int(F::num_elements); ++i) {
    const int r = map[i] / N, c = map[i] % N;
    f.x[i] = layout == mem_col_major ? p[size_t(c) * ldm + r] : p[size_t(r) * ldm + c];
  }
}
template <int M, int N, int K, class T>
inline void store_matrix_sync(T* p, const fragment<accumulator, M, N, K, T, void>& f, unsigned ldm, layout_t layout) {
  using F = fragment<accumulator, M, N, K, T, void>;
  detail::checkOperand(p, ldm, "wmma::store_matrix_sync");
  const uint16_t* map = F::layout() + ::siglip_emu::laneId() * int(F::num_elements);
  for (int i = 0; i < int(F::num_elements); ++i) {
    const int r = map[i] / N, c = map[i] % N;
    (layout == mem_col_major ? p[size_t(c) * ldm + r] : p[size_t(r) * ldm + c]) = f.x[i];
  }
}

namespace detail {
inline float tensorInput(float v, bool tf32) {
  if (!tf32) return v;
  uint32_t bits;  // the tensor cores read a tf32 operand's top 19 bits
  std::memcpy(&bits, &v, 4);
  bits &= 0xffffe000u;
  std::memcpy(&v, &bits, 4);
  return v;
}
template <class FD, class FA, class FB, class FC>
struct MmaArgs {
  FD* d;
  const FA* a;
  const FB* b;
  const FC* c;
};
template <class FD, class FA, class FB, class FC, int M, int N, int K, bool TF32>
void mmaComplete(void* const* payloads, unsigned mask) {
  if (mask != 0xffffffffu) ::siglip_emu::deviceTrap("wmma::mma_sync needs every lane of the warp");
  float A[M * K], B[K * N], C[M * N];
  const uint16_t* la = FA::layout();
  const uint16_t* lb = FB::layout();
  const uint16_t* lc = FC::layout();
  for (int lane = 0; lane < 32; ++lane) {
    const auto* p = static_cast<const MmaArgs<FD, FA, FB, FC>*>(payloads[lane]);
    for (int i = 0; i < int(FA::num_elements); ++i) A[la[lane * FA::num_elements + i]] = tensorInput(float(p->a->x[i]), TF32);
    for (int i = 0; i < int(FB::num_elements); ++i) B[lb[lane * FB::num_elements + i]] = tensorInput(float(p->b->x[i]), TF32);
    for (int i = 0; i < int(FC::num_elements); ++i) C[lc[lane * FC::num_elements + i]] = p->c->x[i];
  }
  float D[M * N];
  for (int r = 0; r < M; ++r)
    for (int c = 0; c < N; ++c) {
      float s = C[r * N + c];
      for (int k = 0; k < K; ++k) s = std::fma(A[r * K + k], B[k * N + c], s);
      D[r * N + c] = s;
    }
  const uint16_t* ld = FD::layout();
  for (int lane = 0; lane < 32; ++lane) {
    auto* p = static_cast<const MmaArgs<FD, FA, FB, FC>*>(payloads[lane]);
    for (int i = 0; i < int(FD::num_elements); ++i) p->d->x[i] = D[ld[lane * FD::num_elements + i]];
  }
}
}  // namespace detail

template <int M, int N, int K, class TA, class LA, class TB, class LB>
inline void mma_sync(fragment<accumulator, M, N, K, float>& d, const fragment<matrix_a, M, N, K, TA, LA>& a,
                     const fragment<matrix_b, M, N, K, TB, LB>& b, const fragment<accumulator, M, N, K, float>& c,
                     const char* file = __builtin_FILE(), int line = __builtin_LINE()) {
  using FD = fragment<accumulator, M, N, K, float>;
  using FA = fragment<matrix_a, M, N, K, TA, LA>;
  using FB = fragment<matrix_b, M, N, K, TB, LB>;
  detail::MmaArgs<FD, FA, FB, FD> args{&d, &a, &b, &c};
  ::siglip_emu::warpCollective("wmma::mma_sync", 0xffffffffu, &args,
                               detail::mmaComplete<FD, FA, FB, FD, M, N, K, std::is_same<TA, precision::tf32>::value>,
                               file, line);
}

}  // namespace wmma
}  // namespace nvcuda
