// densevec CUDA kernels: the Wasserstein pairwise-similarity regularizer. Compiled at run time by
// NVRTC (no headers).
//
// Each view's upper-triangle cosines S_ij (i < j) become 64-bit keys
//   order_bits(S_ij) << 32 | i << 16 | j,
// whose unsigned order is the order of the values with ties broken by the pair's row-major
// position — exactly the stable order of the CPU's radix sort. The keys are sorted with a
// bitonic network (padded to a power of two with all-ones keys, which sort last): the steps
// whose stride fits a 2048-key tile run in shared memory, the longer strides one launch each.
// The slot-wise differences of the two sorted lists give the loss and a coefficient per slot,
// scattered symmetrically into an n x n matrix G; grad = G * X^ (cuBLAS), then the host backprops
// through the normalization.

#define DV_SORT_THREADS 1024
#define DV_SORT_TILE 2048
#define DV_W_THREADS 256

typedef unsigned long long u64;

// Order-preserving map of a finite float to u32 (-0 and +0 map alike); inverse below.
__device__ __forceinline__ unsigned dv_order_bits(float s) {
  unsigned b = __float_as_uint(s + 0.0f);
  return (b & 0x80000000u) ? ~b : (b | 0x80000000u);
}

__device__ __forceinline__ float dv_from_order_bits(unsigned u) {
  return __uint_as_float((u & 0x80000000u) ? (u & 0x7fffffffu) : ~u);
}

// keys[off(i) + j - i - 1] for 0 <= i < j < n, off(i) = i*n - i*(i+1)/2, from the n x n matrix
// s (row-major); keys [npairs, total) are set to all ones (padding). Grid-stride over rows i
// (blockIdx.x), threads over j.
extern "C" __global__ void dv_pair_keys(const float* __restrict__ s, int n, u64* __restrict__ keys,
                                        u64 total) {
  const u64 npairs = (u64)n * (u64)(n - 1) / 2;
  for (int i = blockIdx.x; i < n; i += gridDim.x) {
    const u64 off = (u64)i * (u64)n - (u64)i * (u64)(i + 1) / 2;
    const float* row = s + (size_t)i * n;
    for (int j = i + 1 + threadIdx.x; j < n; j += blockDim.x) {
      keys[off + (u64)(j - i - 1)] =
          ((u64)dv_order_bits(row[j]) << 32) | ((u64)i << 16) | (u64)j;
    }
  }
  const u64 stride = (u64)gridDim.x * blockDim.x;
  for (u64 t = npairs + (u64)blockIdx.x * blockDim.x + threadIdx.x; t < total; t += stride)
    keys[t] = ~0ull;
}

// One compare-exchange step of the bitonic network over the whole array (stride j >= tile,
// stage k): element t and t ^ j are ordered ascending when (t & k) == 0, else descending.
// One thread per pair.
extern "C" __global__ void dv_bitonic_step(u64* __restrict__ keys, u64 total, u64 j, u64 k) {
  const u64 half = total / 2;
  const u64 stride = (u64)gridDim.x * blockDim.x;
  for (u64 p = (u64)blockIdx.x * blockDim.x + threadIdx.x; p < half; p += stride) {
    const u64 lo = ((p & ~(j - 1)) << 1) | (p & (j - 1));  // j is a power of two
    const u64 hi = lo + j;
    const bool up = (lo & k) == 0;
    u64 a = keys[lo], b = keys[hi];
    if ((a > b) == up) {
      keys[lo] = b;
      keys[hi] = a;
    }
  }
}

// The steps of the network that stay inside one tile of DV_SORT_TILE keys, in shared memory.
// k_lo == 0: a full local sort (stages k = 2 .. TILE, every stride); otherwise the tail of stage
// k_lo (strides TILE/2 .. 1) after the global steps of that stage. One block per tile.
extern "C" __global__ void __launch_bounds__(DV_SORT_THREADS)
dv_bitonic_tile(u64* __restrict__ keys, u64 total, u64 k_lo) {
  __shared__ u64 sh[DV_SORT_TILE];
  for (u64 tile = blockIdx.x; tile * DV_SORT_TILE < total; tile += gridDim.x) {  // block-uniform
    const u64 base = tile * DV_SORT_TILE;
    for (int t = threadIdx.x; t < DV_SORT_TILE; t += DV_SORT_THREADS) sh[t] = keys[base + t];
    __syncthreads();
    const u64 k_first = k_lo == 0 ? 2 : k_lo;
    const u64 k_last = k_lo == 0 ? DV_SORT_TILE : k_lo;
    for (u64 k = k_first; k <= k_last; k <<= 1) {
      for (unsigned j = (unsigned)(k_lo == 0 ? k / 2 : DV_SORT_TILE / 2); j > 0; j >>= 1) {
        for (unsigned p = threadIdx.x; p < DV_SORT_TILE / 2; p += DV_SORT_THREADS) {
          const unsigned lo = ((p & ~(j - 1)) << 1) | (p & (j - 1));
          const unsigned hi = lo + j;
          const bool up = ((base + lo) & k) == 0;
          u64 a = sh[lo], b = sh[hi];
          if ((a > b) == up) {
            sh[lo] = b;
            sh[hi] = a;
          }
        }
        __syncthreads();
      }
    }
    for (int t = threadIdx.x; t < DV_SORT_TILE; t += DV_SORT_THREADS) keys[base + t] = sh[t];
    __syncthreads();
  }
}

// Slot-wise coefficients of the sorted lists ka, kb (npairs slots): with
// diff = S_a,(k) - S_b,(k) (in double), the slot's loss term is diff^2 (p = 2) or |diff| (p = 1),
// and its coefficient c = 2 diff / npairs or sign(diff) / npairs (rounded to float). c is
// scattered into ga at the pair of ka's slot (both (i, j) and (j, i)) and -c into gb at kb's.
// partial[blockIdx.x] receives the block's sum of loss terms (grid-stride, fixed order).
extern "C" __global__ void __launch_bounds__(DV_W_THREADS)
dv_w_coef(const u64* __restrict__ ka, const u64* __restrict__ kb, u64 npairs, int p,
          double inv_np, float* __restrict__ ga, float* __restrict__ gb, int n,
          double* __restrict__ partial) {
  __shared__ double sh[DV_W_THREADS / 32];
  double acc = 0.0;
  const u64 stride = (u64)gridDim.x * DV_W_THREADS;
  for (u64 t = (u64)blockIdx.x * DV_W_THREADS + threadIdx.x; t < npairs; t += stride) {
    const u64 a = ka[t], b = kb[t];
    const double diff = (double)dv_from_order_bits((unsigned)(a >> 32)) -
                        (double)dv_from_order_bits((unsigned)(b >> 32));
    double g;
    if (p == 2) {
      acc += diff * diff;
      g = 2.0 * diff * inv_np;
    } else {
      acc += fabs(diff);
      g = diff > 0.0 ? inv_np : (diff < 0.0 ? -inv_np : 0.0);
    }
    const float c = (float)g;
    const size_t ia = (size_t)((a >> 16) & 0xffff), ja = (size_t)(a & 0xffff);
    const size_t ib = (size_t)((b >> 16) & 0xffff), jb = (size_t)(b & 0xffff);
    ga[ia * n + ja] = c;
    ga[ja * n + ia] = c;
    gb[ib * n + jb] = -c;
    gb[jb * n + ib] = -c;
  }
  for (int o = 16; o > 0; o >>= 1) acc += __shfl_xor_sync(0xffffffffu, acc, o);
  if ((threadIdx.x & 31) == 0) sh[threadIdx.x >> 5] = acc;
  __syncthreads();
  if (threadIdx.x == 0) {
    double s = 0.0;
    for (int w = 0; w < DV_W_THREADS / 32; ++w) s += sh[w];
    partial[blockIdx.x] = s;
  }
}
