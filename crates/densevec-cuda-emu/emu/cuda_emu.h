// cuda_emu.h — compiles the CUDA C kernels of densevec as ordinary C++20 for the CPU.
//
// Every kernel file `kernels/*.cu` is compiled in a translation unit of its own that includes
// this header first, then the .cu file, then a generated table of its kernels (see build.rs).
// The execution model lives in launch.cpp:
//
//   * one OS thread per CUDA thread of a block, created once per launch;
//   * the blocks of a launch run one after the other (x fastest, then y, then z), so a
//     function-static array is exactly one block's shared memory;
//   * __syncthreads() is a real barrier over the block's threads, warp intrinsics are real
//     exchanges over the lanes of a warp (linear thread id / 32), atomics are std::atomic_ref.
//
// Nothing here is a performance model: there is no timing, no memory coalescing, no limit on
// registers or shared memory, and no memory model beyond what the barriers and the atomics
// guarantee. See the crate's README.md for what a kernel author must know.
//
// The standard headers come first on purpose: the CUDA qualifiers below are macros with
// reserved names (`__noinline__`, `__shared__`, …), and libstdc++ itself spells attributes
// such as `__attribute__((__noinline__))`, which would break if a standard header were
// included after the macros are defined.

#pragma once

#include <atomic>
#include <bit>
#include <cassert>
#include <chrono>
#include <climits>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <math.h>  // libstdc++'s wrapper: puts the float overloads (sqrt(float), …) in :: as CUDA does
#include <thread>
#include <type_traits>
#include <utility>

// ---------------------------------------------------------------------------------------------
// The kernel table shared with Rust (see src/ffi.rs). Plain C layout.
// ---------------------------------------------------------------------------------------------

extern "C" {
/// Kind of one kernel parameter, so the Rust side can check `Arg`s before a launch.
enum cuemu_kind : unsigned {
  CUEMU_POINTER = 1,
  CUEMU_SIGNED = 2,    // signed integer
  CUEMU_UNSIGNED = 3,  // unsigned integer (and bool, char)
  CUEMU_FLOAT = 4,     // float, double
  CUEMU_OTHER = 5,     // a struct or anything else passed by value
};
struct cuemu_param {
  unsigned kind;  // a cuemu_kind
  unsigned size;  // sizeof the parameter
};
/// Calls the kernel for the current thread and block with cuLaunchKernel-style parameters: an
/// array of pointers, each pointing at one argument's value.
typedef void (*cuemu_entry)(void** params);
struct cuemu_kernel {
  const char* name;
  cuemu_entry entry;
  unsigned nparams;
  const cuemu_param* params;  // nparams entries
};
}

// ---------------------------------------------------------------------------------------------
// Built-in variables and vector types.
// ---------------------------------------------------------------------------------------------

struct uint3 {
  unsigned int x, y, z;
};
struct dim3 {
  unsigned int x, y, z;
  constexpr dim3(unsigned int vx = 1, unsigned int vy = 1, unsigned int vz = 1)
      : x(vx), y(vy), z(vz) {}
  constexpr dim3(uint3 v) : x(v.x), y(v.y), z(v.z) {}
  constexpr operator uint3() const { return uint3{x, y, z}; }
};

// Per CUDA thread (= per OS thread): set by the launcher before each block.
inline thread_local uint3 threadIdx{};
inline thread_local uint3 blockIdx{};
// Per launch: one launch runs at a time in the process (the Rust side holds a global lock).
inline dim3 blockDim;
inline dim3 gridDim;
constexpr int warpSize = 32;

#define CUEMU_VEC2(T, N, A)                                   \
  struct alignas(A) N##2 {                                    \
    T x, y;                                                   \
  };                                                          \
  inline N##2 make_##N##2(T x, T y) { return N##2{x, y}; }
#define CUEMU_VEC4(T, N, A)                                                        \
  struct alignas(A) N##4 {                                                         \
    T x, y, z, w;                                                                  \
  };                                                                               \
  inline N##4 make_##N##4(T x, T y, T z, T w) { return N##4{x, y, z, w}; }
CUEMU_VEC2(float, float, 8)
CUEMU_VEC4(float, float, 16)
CUEMU_VEC2(int, int, 8)
CUEMU_VEC4(int, int, 16)
CUEMU_VEC2(unsigned int, uint, 8)
CUEMU_VEC4(unsigned int, uint, 16)
CUEMU_VEC2(double, double, 16)
#undef CUEMU_VEC2
#undef CUEMU_VEC4
inline uint3 make_uint3(unsigned x, unsigned y, unsigned z) { return uint3{x, y, z}; }

// ---------------------------------------------------------------------------------------------
// The runtime of launch.cpp, as seen by kernel code.
// ---------------------------------------------------------------------------------------------

namespace cuemu {

/// Lane of the calling thread in its warp (linear thread id % 32); set by the launcher.
inline thread_local unsigned tls_lane = 0;

/// Stops the whole launch with a message (printf-style): the launch returns it as an error.
/// Used for traps, failed asserts and misuse of the intrinsics. Does not return.
[[noreturn]] void failf(const char* fmt, ...) __attribute__((format(printf, 1, 2)));

/// __syncthreads and its reducing variants. `op`: 0 plain, 1 count, 2 and, 3 or.
int block_sync(int op, int pred);

/// Which warp intrinsic an exchange belongs to (lanes meeting in one exchange must agree).
enum WarpOp : int { kShfl = 1, kVote = 2, kSyncWarp = 3, kMatch = 4, kReduce = 5 };

/// The one warp primitive: the calling lane and every other live lane of `mask` meet; each
/// contributes `value`; on return `all[l]` holds lane l's value for every lane l of the
/// returned mask (the lanes that took part: `mask` minus exited or nonexistent lanes).
/// Two barrier waits: one after the values are written, one after they are read.
unsigned warp_exchange(unsigned mask, int op, unsigned long long value,
                       unsigned long long all[32]);

/// The lanes of the caller's warp that have not returned from the kernel.
unsigned warp_live_mask();

enum class Shfl { Idx, Up, Down, Xor };

/// Source lane of a shuffle, as PTX `shfl.sync` computes it: the operand is taken modulo 32;
/// `width` splits the warp into segments; a source outside the caller's segment (up: before
/// it; down/xor: after it) gives the caller its own value.
inline unsigned shfl_source(Shfl mode, unsigned lane, unsigned b, int width) {
  if (width < 1 || width > 32 || (width & (width - 1)) != 0)
    failf("shuffle width %d is not a power of two in [1, 32]", width);
  b &= 31u;
  const unsigned first = lane & ~unsigned(width - 1);  // first lane of the caller's segment
  const unsigned last = first + unsigned(width) - 1;
  switch (mode) {
    case Shfl::Idx:
      return first + (b & unsigned(width - 1));
    case Shfl::Up:
      return lane >= first + b ? lane - b : lane;
    case Shfl::Down:
      return lane + b <= last ? lane + b : lane;
    case Shfl::Xor:
      return (lane ^ b) <= last ? (lane ^ b) : lane;
  }
  return lane;
}

template <class T>
T shfl(unsigned mask, T v, Shfl mode, unsigned b, int width) {
  static_assert(sizeof(T) <= 8 && std::is_trivially_copyable_v<T>);
  unsigned long long bits = 0, all[32];
  std::memcpy(&bits, &v, sizeof v);
  const unsigned lane = tls_lane;
  const unsigned src = shfl_source(mode, lane, b, width);
  const unsigned took_part = warp_exchange(mask, kShfl, bits, all);
  if (!((took_part >> src) & 1u))
    failf("shuffle: lane %u reads lane %u, which is not taking part in the exchange (mask 0x%08x, "
          "lanes present 0x%08x): not in the mask, returned from the kernel, or beyond the block",
          lane, src, mask, took_part);
  T r;
  std::memcpy(&r, &all[src], sizeof r);
  return r;
}

/// A value read as bits, for reinterpretation intrinsics.
template <class To, class From>
inline To bits(From v) {
  return std::bit_cast<To>(v);
}

/// CUDA's float → int conversions saturate and map NaN to 0 (C++'s cast is undefined there).
template <class I>
inline I saturate_to(double r) {
  if (r != r) return 0;
  if (r <= double(std::numeric_limits<I>::min())) return std::numeric_limits<I>::min();
  if (r >= double(std::numeric_limits<I>::max())) return std::numeric_limits<I>::max();
  return I(r);
}

template <class T, class F>
inline T atomic_update(T* p, F f) {
  std::atomic_ref<T> a(*p);
  T old = a.load();
  while (!a.compare_exchange_weak(old, f(old))) {
  }
  return old;
}

// The kernel table: `kernel<&f>` knows f's parameter types, so only kernel NAMES need to be
// parsed from the sources. `entry` unpacks cuLaunchKernel's `void**` by those types.
template <class T>
constexpr cuemu_param param_of() {
  using U = std::remove_cv_t<T>;
  if constexpr (std::is_pointer_v<U>) return {CUEMU_POINTER, unsigned(sizeof(U))};
  else if constexpr (std::is_floating_point_v<U>) return {CUEMU_FLOAT, unsigned(sizeof(U))};
  else if constexpr (std::is_integral_v<U> && std::is_signed_v<U>)
    return {CUEMU_SIGNED, unsigned(sizeof(U))};
  else if constexpr (std::is_integral_v<U>) return {CUEMU_UNSIGNED, unsigned(sizeof(U))};
  else return {CUEMU_OTHER, unsigned(sizeof(U))};
}

template <auto K>
struct kernel;

template <class... A, void (*K)(A...)>
struct kernel<K> {
  static constexpr unsigned nparams = sizeof...(A);
  // One extra entry so that a kernel without parameters still has an array.
  static constexpr cuemu_param params[sizeof...(A) + 1] = {param_of<A>()..., {0, 0}};
  static void entry(void** p) { call(p, std::index_sequence_for<A...>{}); }
  template <std::size_t... I>
  static void call(void** p, std::index_sequence<I...>) {
    K(*static_cast<std::remove_cv_t<A>*>(p[I])...);
  }
};

}  // namespace cuemu

/// One row of a generated kernel table.
#define CUEMU_KERNEL(f) \
  cuemu_kernel { #f, &cuemu::kernel<&f>::entry, cuemu::kernel<&f>::nparams, cuemu::kernel<&f>::params }

// ---------------------------------------------------------------------------------------------
// Qualifiers. Shared memory: every `__shared__` variable is a static placed in the section
// `cuemu_shared`, which the launcher fills with 0xFF bytes (NaN as float, -1 as int) before
// each block, so that a read of shared memory the block has not written is visible in tests
// instead of silently returning the previous block's data.
// ---------------------------------------------------------------------------------------------

#define __global__
#define __device__
#define __host__
#define __constant__
#define __forceinline__ inline
#define __noinline__ __attribute__((noinline))
#define __launch_bounds__(...)
#define __align__(n) __attribute__((aligned(n)))
#define __shared__ static __attribute__((section("cuemu_shared")))
// __restrict__ is native in g++ and clang.

/// Defined for kernel code that needs to know it runs in the emulator.
#define CUEMU 1

// ---------------------------------------------------------------------------------------------
// Synchronisation, warp intrinsics.
// ---------------------------------------------------------------------------------------------

inline void __syncthreads() { cuemu::block_sync(0, 0); }
inline int __syncthreads_count(int pred) { return cuemu::block_sync(1, pred); }
inline int __syncthreads_and(int pred) { return cuemu::block_sync(2, pred); }
inline int __syncthreads_or(int pred) { return cuemu::block_sync(3, pred); }

inline void __threadfence() { std::atomic_thread_fence(std::memory_order_seq_cst); }
inline void __threadfence_block() { std::atomic_thread_fence(std::memory_order_seq_cst); }
inline void __threadfence_system() { std::atomic_thread_fence(std::memory_order_seq_cst); }

inline void __syncwarp(unsigned mask = 0xffffffffu) {
  unsigned long long all[32];
  cuemu::warp_exchange(mask, cuemu::kSyncWarp, 0, all);
}

/// Approximation: the lanes of the warp that have not returned (threads are not converged in
/// the emulator, so divergence inside the warp is not reflected).
inline unsigned __activemask() { return cuemu::warp_live_mask(); }

inline unsigned __ballot_sync(unsigned mask, int pred) {
  unsigned long long all[32];
  const unsigned took_part = cuemu::warp_exchange(mask, cuemu::kVote, pred != 0, all);
  unsigned r = 0;
  for (unsigned l = 0; l < 32; ++l)
    if (((took_part >> l) & 1u) && all[l]) r |= 1u << l;
  return r;
}
inline int __any_sync(unsigned mask, int pred) { return __ballot_sync(mask, pred) != 0; }
inline int __all_sync(unsigned mask, int pred) {
  unsigned long long all[32];
  const unsigned took_part = cuemu::warp_exchange(mask, cuemu::kVote, pred != 0, all);
  for (unsigned l = 0; l < 32; ++l)
    if (((took_part >> l) & 1u) && !all[l]) return 0;
  return 1;
}

#define CUEMU_SHFL(T)                                                              \
  inline T __shfl_sync(unsigned mask, T v, int src, int width = warpSize) {        \
    return cuemu::shfl(mask, v, cuemu::Shfl::Idx, unsigned(src), width);           \
  }                                                                                \
  inline T __shfl_up_sync(unsigned mask, T v, unsigned delta, int width = warpSize) { \
    return cuemu::shfl(mask, v, cuemu::Shfl::Up, delta, width);                    \
  }                                                                                \
  inline T __shfl_down_sync(unsigned mask, T v, unsigned delta, int width = warpSize) { \
    return cuemu::shfl(mask, v, cuemu::Shfl::Down, delta, width);                  \
  }                                                                                \
  inline T __shfl_xor_sync(unsigned mask, T v, int lane_mask, int width = warpSize) { \
    return cuemu::shfl(mask, v, cuemu::Shfl::Xor, unsigned(lane_mask), width);     \
  }
CUEMU_SHFL(int)
CUEMU_SHFL(unsigned int)
CUEMU_SHFL(long)
CUEMU_SHFL(unsigned long)
CUEMU_SHFL(long long)
CUEMU_SHFL(unsigned long long)
CUEMU_SHFL(float)
CUEMU_SHFL(double)
#undef CUEMU_SHFL

// sm_80 warp reductions over the lanes taking part.
#define CUEMU_WARP_REDUCE(NAME, T, OP)                                      \
  inline T NAME(unsigned mask, T v) {                                       \
    unsigned long long all[32];                                             \
    const unsigned took_part = cuemu::warp_exchange(mask, cuemu::kReduce,   \
                                                    (unsigned long long)v, all); \
    bool first = true;                                                      \
    T r = 0;                                                                \
    for (unsigned l = 0; l < 32; ++l) {                                     \
      if (!((took_part >> l) & 1u)) continue;                               \
      T x = T(all[l]);                                                      \
      r = first ? x : OP;                                                   \
      first = false;                                                        \
    }                                                                       \
    return r;                                                               \
  }
CUEMU_WARP_REDUCE(__reduce_add_sync, unsigned, r + x)
CUEMU_WARP_REDUCE(__reduce_add_sync, int, r + x)
CUEMU_WARP_REDUCE(__reduce_min_sync, unsigned, (x < r ? x : r))
CUEMU_WARP_REDUCE(__reduce_min_sync, int, (x < r ? x : r))
CUEMU_WARP_REDUCE(__reduce_max_sync, unsigned, (x > r ? x : r))
CUEMU_WARP_REDUCE(__reduce_max_sync, int, (x > r ? x : r))
CUEMU_WARP_REDUCE(__reduce_and_sync, unsigned, r & x)
CUEMU_WARP_REDUCE(__reduce_or_sync, unsigned, r | x)
CUEMU_WARP_REDUCE(__reduce_xor_sync, unsigned, r ^ x)
#undef CUEMU_WARP_REDUCE

// ---------------------------------------------------------------------------------------------
// Atomics (return the old value, like CUDA's). std::atomic_ref is sequentially consistent,
// which is stronger than CUDA's relaxed device atomics.
// ---------------------------------------------------------------------------------------------

#define CUEMU_ATOMIC_FETCH(NAME, T, FETCH) \
  inline T NAME(T* p, T v) { return std::atomic_ref<T>(*p).FETCH(v); }
CUEMU_ATOMIC_FETCH(atomicAdd, int, fetch_add)
CUEMU_ATOMIC_FETCH(atomicAdd, unsigned int, fetch_add)
CUEMU_ATOMIC_FETCH(atomicAdd, unsigned long long, fetch_add)
CUEMU_ATOMIC_FETCH(atomicAdd, float, fetch_add)
CUEMU_ATOMIC_FETCH(atomicAdd, double, fetch_add)
CUEMU_ATOMIC_FETCH(atomicSub, int, fetch_sub)
CUEMU_ATOMIC_FETCH(atomicSub, unsigned int, fetch_sub)
CUEMU_ATOMIC_FETCH(atomicAnd, int, fetch_and)
CUEMU_ATOMIC_FETCH(atomicAnd, unsigned int, fetch_and)
CUEMU_ATOMIC_FETCH(atomicAnd, unsigned long long, fetch_and)
CUEMU_ATOMIC_FETCH(atomicOr, int, fetch_or)
CUEMU_ATOMIC_FETCH(atomicOr, unsigned int, fetch_or)
CUEMU_ATOMIC_FETCH(atomicOr, unsigned long long, fetch_or)
CUEMU_ATOMIC_FETCH(atomicXor, int, fetch_xor)
CUEMU_ATOMIC_FETCH(atomicXor, unsigned int, fetch_xor)
CUEMU_ATOMIC_FETCH(atomicXor, unsigned long long, fetch_xor)
CUEMU_ATOMIC_FETCH(atomicExch, int, exchange)
CUEMU_ATOMIC_FETCH(atomicExch, unsigned int, exchange)
CUEMU_ATOMIC_FETCH(atomicExch, unsigned long long, exchange)
CUEMU_ATOMIC_FETCH(atomicExch, float, exchange)
#undef CUEMU_ATOMIC_FETCH

#define CUEMU_ATOMIC_MINMAX(T)                                                           \
  inline T atomicMax(T* p, T v) {                                                        \
    return cuemu::atomic_update(p, [v](T o) { return o > v ? o : v; });                  \
  }                                                                                      \
  inline T atomicMin(T* p, T v) {                                                        \
    return cuemu::atomic_update(p, [v](T o) { return o < v ? o : v; });                  \
  }
CUEMU_ATOMIC_MINMAX(int)
CUEMU_ATOMIC_MINMAX(unsigned int)
CUEMU_ATOMIC_MINMAX(long long)
CUEMU_ATOMIC_MINMAX(unsigned long long)
#undef CUEMU_ATOMIC_MINMAX

#define CUEMU_ATOMIC_CAS(T)                                   \
  inline T atomicCAS(T* p, T compare, T v) {                  \
    std::atomic_ref<T>(*p).compare_exchange_strong(compare, v); \
    return compare; /* the old value, whether or not it matched */ \
  }
CUEMU_ATOMIC_CAS(int)
CUEMU_ATOMIC_CAS(unsigned int)
CUEMU_ATOMIC_CAS(unsigned long long)
#undef CUEMU_ATOMIC_CAS

/// ((old >= v) ? 0 : old + 1)
inline unsigned atomicInc(unsigned* p, unsigned v) {
  return cuemu::atomic_update(p, [v](unsigned o) { return o >= v ? 0u : o + 1u; });
}
/// ((old == 0) || (old > v)) ? v : old - 1
inline unsigned atomicDec(unsigned* p, unsigned v) {
  return cuemu::atomic_update(p, [v](unsigned o) { return (o == 0 || o > v) ? v : o - 1u; });
}

// ---------------------------------------------------------------------------------------------
// Math. <cmath>/<math.h> already give the C functions (expf, sqrtf, fmaf, …) and the float and
// double overloads of the C++ ones (sqrt(float), isnan, …) in the global namespace. What
// follows is what CUDA adds. The CPU does not contract a*b+c into an FMA as nvcc does by
// default, so results can differ from the GPU's in the last bits.
// ---------------------------------------------------------------------------------------------

inline float rsqrtf(float x) { return 1.0f / sqrtf(x); }
inline double rsqrt(double x) { return 1.0 / sqrt(x); }
inline float rcbrtf(float x) { return 1.0f / cbrtf(x); }
inline float __expf(float x) { return expf(x); }
inline float __exp10f(float x) { return powf(10.0f, x); }
inline float __logf(float x) { return logf(x); }
inline float __log2f(float x) { return log2f(x); }
inline float __log10f(float x) { return log10f(x); }
inline float __sinf(float x) { return sinf(x); }
inline float __cosf(float x) { return cosf(x); }
inline float __tanf(float x) { return tanf(x); }
inline void __sincosf(float x, float* s, float* c) { *s = sinf(x), *c = cosf(x); }
inline float __powf(float x, float y) { return powf(x, y); }
inline float __fdividef(float a, float b) { return a / b; }
inline float fdividef(float a, float b) { return a / b; }
/// Clamp to [0, 1]; NaN → 0.
inline float __saturatef(float x) { return x != x ? 0.0f : (x < 0.0f ? 0.0f : (x > 1.0f ? 1.0f : x)); }

// Explicitly rounded operations (round-to-nearest is the CPU's default mode).
inline float __fadd_rn(float a, float b) { return a + b; }
inline float __fsub_rn(float a, float b) { return a - b; }
inline float __fmul_rn(float a, float b) { return a * b; }
inline float __fdiv_rn(float a, float b) { return a / b; }
inline float __frcp_rn(float a) { return 1.0f / a; }
inline float __fsqrt_rn(float a) { return sqrtf(a); }
inline float __frsqrt_rn(float a) { return 1.0f / sqrtf(a); }
inline float __fmaf_rn(float a, float b, float c) { return fmaf(a, b, c); }
inline double __dadd_rn(double a, double b) { return a + b; }
inline double __dsub_rn(double a, double b) { return a - b; }
inline double __dmul_rn(double a, double b) { return a * b; }
inline double __ddiv_rn(double a, double b) { return a / b; }
inline double __drcp_rn(double a) { return 1.0 / a; }
inline double __dsqrt_rn(double a) { return sqrt(a); }
inline double __fma_rn(double a, double b, double c) { return fma(a, b, c); }

// Reinterpretation.
inline float __int_as_float(int v) { return cuemu::bits<float>(v); }
inline int __float_as_int(float v) { return cuemu::bits<int>(v); }
inline float __uint_as_float(unsigned v) { return cuemu::bits<float>(v); }
inline unsigned __float_as_uint(float v) { return cuemu::bits<unsigned>(v); }
inline long long __double_as_longlong(double v) { return cuemu::bits<long long>(v); }
inline double __longlong_as_double(long long v) { return cuemu::bits<double>(v); }
inline int __double2hiint(double v) { return int(cuemu::bits<unsigned long long>(v) >> 32); }
inline int __double2loint(double v) { return int(cuemu::bits<unsigned long long>(v)); }
inline double __hiloint2double(int hi, int lo) {
  return cuemu::bits<double>((unsigned long long)(unsigned)hi << 32 | (unsigned)lo);
}

// Conversions: _rn nearest-even, _rz toward zero, _rd down, _ru up; saturating, NaN → 0.
inline int __float2int_rn(float x) { return cuemu::saturate_to<int>(nearbyint(double(x))); }
inline int __float2int_rz(float x) { return cuemu::saturate_to<int>(trunc(double(x))); }
inline int __float2int_rd(float x) { return cuemu::saturate_to<int>(floor(double(x))); }
inline int __float2int_ru(float x) { return cuemu::saturate_to<int>(ceil(double(x))); }
inline unsigned __float2uint_rn(float x) { return cuemu::saturate_to<unsigned>(nearbyint(double(x))); }
inline unsigned __float2uint_rz(float x) { return cuemu::saturate_to<unsigned>(trunc(double(x))); }
inline long long __float2ll_rn(float x) { return cuemu::saturate_to<long long>(nearbyint(double(x))); }
inline long long __float2ll_rz(float x) { return cuemu::saturate_to<long long>(trunc(double(x))); }
inline int __double2int_rn(double x) { return cuemu::saturate_to<int>(nearbyint(x)); }
inline int __double2int_rz(double x) { return cuemu::saturate_to<int>(trunc(x)); }
inline float __int2float_rn(int x) { return float(x); }
inline float __uint2float_rn(unsigned x) { return float(x); }
inline float __ll2float_rn(long long x) { return float(x); }
inline float __double2float_rn(double x) { return float(x); }
inline double __int2double_rn(int x) { return double(x); }

// Integer intrinsics.
inline int __popc(unsigned x) { return std::popcount(x); }
inline int __popcll(unsigned long long x) { return std::popcount(x); }
inline int __clz(int x) { return std::countl_zero(unsigned(x)); }
inline int __clzll(long long x) { return std::countl_zero((unsigned long long)x); }
inline int __ffs(int x) { return x == 0 ? 0 : std::countr_zero(unsigned(x)) + 1; }
inline int __ffsll(long long x) {
  return x == 0 ? 0 : std::countr_zero((unsigned long long)x) + 1;
}
inline unsigned __brev(unsigned x) {
  unsigned r = 0;
  for (int i = 0; i < 32; ++i) r |= ((x >> i) & 1u) << (31 - i);
  return r;
}
inline unsigned long long __brevll(unsigned long long x) {
  return (unsigned long long)__brev(unsigned(x)) << 32 | __brev(unsigned(x >> 32));
}
inline int __mulhi(int a, int b) { return int(((long long)a * b) >> 32); }
inline unsigned __umulhi(unsigned a, unsigned b) {
  return unsigned(((unsigned long long)a * b) >> 32);
}
inline long long __mul64hi(long long a, long long b) {
  return (long long)(((__int128)a * b) >> 64);
}
inline unsigned long long __umul64hi(unsigned long long a, unsigned long long b) {
  return (unsigned long long)(((unsigned __int128)a * b) >> 64);
}
inline int __mul24(int a, int b) { return (a << 8 >> 8) * (b << 8 >> 8); }
inline unsigned __umul24(unsigned a, unsigned b) { return (a & 0xffffffu) * (b & 0xffffffu); }

// min / max: CUDA device code calls them unqualified, with these overloads (mixed signedness
// converts to unsigned, mixed float/double to double). The floating ones are fminf/fmaxf
// (a NaN operand yields the other operand).
#define CUEMU_MINMAX(R, A, B)                                  \
  inline R min(A a, B b) {                                     \
    return static_cast<R>(a) < static_cast<R>(b) ? static_cast<R>(a) : static_cast<R>(b); \
  }                                                            \
  inline R max(A a, B b) {                                     \
    return static_cast<R>(a) > static_cast<R>(b) ? static_cast<R>(a) : static_cast<R>(b); \
  }
CUEMU_MINMAX(int, int, int)
CUEMU_MINMAX(unsigned int, unsigned int, unsigned int)
CUEMU_MINMAX(unsigned int, int, unsigned int)
CUEMU_MINMAX(unsigned int, unsigned int, int)
CUEMU_MINMAX(long, long, long)
CUEMU_MINMAX(unsigned long, unsigned long, unsigned long)
CUEMU_MINMAX(unsigned long, long, unsigned long)
CUEMU_MINMAX(unsigned long, unsigned long, long)
CUEMU_MINMAX(long long, long long, long long)
CUEMU_MINMAX(unsigned long long, unsigned long long, unsigned long long)
CUEMU_MINMAX(unsigned long long, long long, unsigned long long)
CUEMU_MINMAX(unsigned long long, unsigned long long, long long)
#undef CUEMU_MINMAX
inline float min(float a, float b) { return fminf(a, b); }
inline float max(float a, float b) { return fmaxf(a, b); }
inline double min(double a, double b) { return fmin(a, b); }
inline double max(double a, double b) { return fmax(a, b); }
inline double min(float a, double b) { return fmin(double(a), b); }
inline double max(float a, double b) { return fmax(double(a), b); }
inline double min(double a, float b) { return fmin(a, double(b)); }
inline double max(double a, float b) { return fmax(a, double(b)); }

// Loads and stores with cache hints: plain memory accesses here.
template <class T> inline T __ldg(const T* p) { return *p; }
template <class T> inline T __ldcg(const T* p) { return *p; }
template <class T> inline T __ldca(const T* p) { return *p; }
template <class T> inline T __ldcs(const T* p) { return *p; }
template <class T> inline T __ldlu(const T* p) { return *p; }
template <class T> inline T __ldcv(const T* p) { return *p; }
template <class T> inline void __stcg(T* p, T v) { *p = v; }
template <class T> inline void __stcs(T* p, T v) { *p = v; }
template <class T> inline void __stwb(T* p, T v) { *p = v; }
template <class T> inline void __stwt(T* p, T v) { *p = v; }

// Time and traps. clock() is <ctime>'s; clock64() counts nanoseconds.
inline long long clock64() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}
inline void __nanosleep(unsigned ns) { std::this_thread::sleep_for(std::chrono::nanoseconds(ns)); }
[[noreturn]] inline void __trap() { cuemu::failf("kernel executed __trap()"); }
[[noreturn]] inline void __brkpt() { cuemu::failf("kernel executed __brkpt()"); }

// A failed device assert stops the launch with an error instead of aborting the process.
#undef assert
#define assert(e) \
  ((e) ? (void)0 : cuemu::failf("%s:%d: assertion `%s` failed", __FILE__, __LINE__, #e))
