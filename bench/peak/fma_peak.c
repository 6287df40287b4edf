/*
 * Single-thread fp32 FMA peak of this CPU: twelve independent FMA chains on registers (no memory
 * traffic; enough chains to cover FMA latency × pipes on current x86 cores), at 256-bit
 * (AVX2+FMA) and 512-bit (AVX-512F) width where the CPU has them. Prints one JSON object:
 * {"avx2": GFLOP/s, "avx512": GFLOP/s, "peak": the larger}. bench/machine.js compiles it with the
 * system C compiler and divides GEMM-bound rows by "peak". A CPU that executes 512-bit FMAs as
 * two 256-bit halves (Zen 4) shows about equal figures for both widths.
 */
#include <immintrin.h>
#include <stdio.h>
#include <time.h>

static double now(void) {
  struct timespec t;
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t); /* CPU time of this thread: time-slicing on a busy machine does not count */
  return t.tv_sec + 1e-9 * t.tv_nsec;
}

/* One FMA-throughput loop for vector type T with `lanes` fp32 lanes. */
#define FMA_LOOP(T, SET1, FMA, ADD, FIRST, lanes)                                              \
  const T a = SET1(0.999999f), b = SET1(1e-7f);                                              \
  T c0 = SET1(0.f), c1 = SET1(1.f), c2 = SET1(2.f), c3 = SET1(3.f), c4 = SET1(4.f),          \
    c5 = SET1(5.f), c6 = SET1(6.f), c7 = SET1(7.f), c8 = SET1(8.f), c9 = SET1(9.f),          \
    c10 = SET1(10.f), c11 = SET1(11.f);                                                      \
  double t0 = now();                                                                         \
  for (long n = 0; n < iters; n++) {                                                         \
    c0 = FMA(c0, a, b); c1 = FMA(c1, a, b); c2 = FMA(c2, a, b); c3 = FMA(c3, a, b);          \
    c4 = FMA(c4, a, b); c5 = FMA(c5, a, b); c6 = FMA(c6, a, b); c7 = FMA(c7, a, b);          \
    c8 = FMA(c8, a, b); c9 = FMA(c9, a, b); c10 = FMA(c10, a, b); c11 = FMA(c11, a, b);      \
    __asm__ volatile("" ::: "memory");                                                       \
  }                                                                                          \
  double dt = now() - t0;                                                                    \
  T s = ADD(ADD(ADD(c0, c1), ADD(c2, c3)), ADD(ADD(c4, c5), ADD(c6, c7)));                   \
  s = ADD(s, ADD(ADD(c8, c9), ADD(c10, c11)));                                               \
  volatile float sink = FIRST(s);                                                            \
  (void)sink;                                                                                \
  return (double)iters * 12 * (lanes) * 2 / dt / 1e9;

__attribute__((target("avx2,fma"))) static double run256(long iters) {
  FMA_LOOP(__m256, _mm256_set1_ps, _mm256_fmadd_ps, _mm256_add_ps, _mm256_cvtss_f32, 8)
}

__attribute__((target("avx512f"))) static double run512(long iters) {
  FMA_LOOP(__m512, _mm512_set1_ps, _mm512_fmadd_ps, _mm512_add_ps, _mm512_reduce_add_ps, 16)
}

/* Best of five runs: the peak is what the core can do, not what a busy machine gave once. */
static double best(double (*f)(long), long iters) {
  double b = 0;
  for (int r = 0; r < 5; r++) {
    double g = f(iters);
    if (g > b) b = g;
  }
  return b;
}

int main(void) {
  __builtin_cpu_init();
  double g256 = 0, g512 = 0;
  if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) g256 = best(run256, 20000000L);
  if (__builtin_cpu_supports("avx512f")) g512 = best(run512, 10000000L);
  printf("{\"avx2\": %.2f, \"avx512\": %.2f, \"peak\": %.2f}\n", g256, g512, g256 > g512 ? g256 : g512);
  return 0;
}
