// densevec CUDA kernels: row norms, similarity epilogue, fallback SGEMM, fused top-k selection.
// Compiled at run time by NVRTC (no headers needed). All matrices are row-major float32.

#define DV_TOPK_THREADS 256
#define DV_KMAX 128

// The per-row auxiliary of a metric for rows of x (rows x cols), one warp per row: the sum of
// squares in float32, then metric 1 (cosine): 1/sqrt(s) in double precision (0 for a zero row);
// metric 2 (l2sq): s itself. out[r] is written for every row.
extern "C" __global__ void dv_row_aux(const float* __restrict__ x, int rows, int cols, int metric,
                                      float* __restrict__ out) {
  const long long warp = ((long long)blockIdx.x * blockDim.x + threadIdx.x) >> 5;
  int lane = threadIdx.x & 31;
  if (warp >= rows) return;  // whole warps leave together (blocks are whole warps)
  const float* r = x + (size_t)warp * cols;
  float s = 0.0f;
  for (int k = lane; k < cols; k += 32) s = fmaf(r[k], r[k], s);
  for (int o = 16; o > 0; o >>= 1) s += __shfl_down_sync(0xffffffffu, s, o);
  if (lane != 0) return;
  if (metric == 1) {
    double n = sqrt((double)s);
    out[warp] = n == 0.0 ? 0.0f : (float)(1.0 / n);
  } else {
    out[warp] = s;
  }
}

// Epilogue on a block of raw dot products: tile is m x n with leading dimension ld; qa/ca are
// the auxiliaries of its rows/columns. metric 1: v * (qa*ca); metric 2: max(qa + ca - 2v, 0)
// (NaN kept; the pairs where this cancels are then redone by dv_l2_direct).
extern "C" __global__ void dv_finish(float* __restrict__ tile, int m, int n, long long ld,
                                     const float* __restrict__ qa, const float* __restrict__ ca,
                                     int metric) {
  int j = blockIdx.x * blockDim.x + threadIdx.x;
  if (j >= n) return;
  // gridDim.y is capped at 65535 by the launcher; rows beyond it are strided.
  for (int i = blockIdx.y; i < m; i += gridDim.y) {
    float* p = tile + (size_t)i * ld + j;
    float v = *p;
    if (metric == 1) {
      *p = v * (qa[i] * ca[j]);
    } else if (metric == 2) {
      float d = qa[i] + ca[j] - 2.0f * v;
      *p = d > 0.0f ? d : (d != d ? d : 0.0f);
    }
  }
}

#define GT 64
#define GK 16

// The float32 value at `at` of an operand stored plain (lo null) or split for 3xTF32 (hi + lo
// is the value exactly).
__device__ __forceinline__ float dv_val(const float* hi, const float* lo, size_t at) {
  return lo ? hi[at] + lo[at] : hi[at];
}

// The l2sq pairs where the expansion cancels, recomputed directly (the CPU core's rule): tile
// (m x n, leading dimension ld) holds what dv_finish wrote for metric 2; a pair whose value e
// is not >= tau * (qa + ca) (NaN included) gets sum_k (q_k - c_k)^2, the differences and the
// sum in double, k in order (so the value depends on its two rows alone). q is m x d (q_hi,
// q_lo), c is n x d (c_hi, c_lo); a null lo means stored plain. One block of 256 threads per
// 64 x 64 tile of pairs, 4 x 4 pairs per thread, the rows staged through shared memory 16
// columns at a time; a tile with no pair to redo leaves after one read of its values.
extern "C" __global__ void __launch_bounds__(256)
dv_l2_direct(float* __restrict__ tile, int m, int n, long long ld,
             const float* __restrict__ qa, const float* __restrict__ ca,
             const float* __restrict__ q_hi, const float* __restrict__ q_lo,
             const float* __restrict__ c_hi, const float* __restrict__ c_lo, int d, float tau) {
  __shared__ float qs[GK][GT + 1];
  __shared__ float cs[GK][GT + 1];
  const int tx = threadIdx.x & 15, ty = threadIdx.x >> 4;
  const int j0 = blockIdx.x * GT;
  // gridDim.y is capped at 65535 by the launcher; further row tiles are strided.
  for (int i0 = blockIdx.y * GT; i0 < m; i0 += gridDim.y * GT) {
    bool redo[4][4];
    int any = 0;
    for (int u = 0; u < 4; ++u) {
      for (int v = 0; v < 4; ++v) {
        const int i = i0 + tx * 4 + u, j = j0 + ty * 4 + v;
        redo[u][v] = false;
        if (i < m && j < n) {
          const float e = tile[(size_t)i * ld + j];
          redo[u][v] = !(e >= tau * (qa[i] + ca[j]));
          any |= redo[u][v];
        }
      }
    }
    if (!__syncthreads_or(any)) continue;  // block-uniform
    double acc[4][4];
    for (int u = 0; u < 4; ++u)
      for (int v = 0; v < 4; ++v) acc[u][v] = 0.0;
    for (int k0 = 0; k0 < d; k0 += GK) {
      for (int t = threadIdx.x; t < GT * GK; t += 256) {
        // Consecutive threads walk the contiguous columns of a row.
        const int r = t / GK, kk = t % GK, k = k0 + kk;
        const int i = i0 + r, j = j0 + r;
        qs[kk][r] = (i < m && k < d) ? dv_val(q_hi, q_lo, (size_t)i * d + k) : 0.0f;
        cs[kk][r] = (j < n && k < d) ? dv_val(c_hi, c_lo, (size_t)j * d + k) : 0.0f;
      }
      __syncthreads();
      const int kn = d - k0 < GK ? d - k0 : GK;
      for (int kk = 0; kk < kn; ++kk) {
        double qv[4], cv[4];
        for (int u = 0; u < 4; ++u) qv[u] = (double)qs[kk][tx * 4 + u];
        for (int v = 0; v < 4; ++v) cv[v] = (double)cs[kk][ty * 4 + v];
        for (int u = 0; u < 4; ++u)
          for (int v = 0; v < 4; ++v) {
            const double t = qv[u] - cv[v];
            acc[u][v] = fma(t, t, acc[u][v]);
          }
      }
      __syncthreads();
    }
    for (int u = 0; u < 4; ++u)
      for (int v = 0; v < 4; ++v)
        if (redo[u][v]) tile[(size_t)(i0 + tx * 4 + u) * ld + j0 + ty * 4 + v] = (float)acc[u][v];
  }
}

// Fallback SGEMM when cuBLAS is absent, with cuBLAS's column-major semantics:
// C (m x n, ldc) = alpha * op(A) * op(B) + beta * C, op(A) m x k, op(B) k x n; C is not read
// when beta == 0. 64x64 tile of C per block (GT), 16-deep k slices (GK), 4x4 per thread
// (256 threads).
extern "C" __global__ void __launch_bounds__(256)
dv_sgemm(int transa, int transb, int m, int n, int k, float alpha,
         const float* __restrict__ a, int lda, const float* __restrict__ b, int ldb, float beta,
         float* __restrict__ c, int ldc) {
  __shared__ float as[GK][GT + 1];
  __shared__ float bs[GK][GT + 1];
  const int tx = threadIdx.x & 15, ty = threadIdx.x >> 4;
  const int i0 = blockIdx.x * GT;  // rows of C
  // gridDim.y is capped at 65535 by the launcher; further column tiles are strided.
  for (int j0 = blockIdx.y * GT; j0 < n; j0 += gridDim.y * GT) {
    float acc[4][4];
    for (int u = 0; u < 4; ++u)
      for (int v = 0; v < 4; ++v) acc[u][v] = 0.0f;
    for (int k0 = 0; k0 < k; k0 += GK) {
      for (int t = threadIdx.x; t < GT * GK; t += 256) {
        // Consecutive threads walk the contiguous direction of each operand.
        int r, kk;
        if (transa) { r = t / GK; kk = t % GK; } else { kk = t / GT; r = t % GT; }
        int gi = i0 + r, gk = k0 + kk;
        float va = 0.0f;
        if (gi < m && gk < k) va = transa ? a[(size_t)gi * lda + gk] : a[(size_t)gk * lda + gi];
        as[kk][r] = va;
        if (transb) { kk = t / GT; r = t % GT; } else { r = t / GK; kk = t % GK; }
        int gj = j0 + r;
        gk = k0 + kk;
        float vb = 0.0f;
        if (gj < n && gk < k) vb = transb ? b[(size_t)gk * ldb + gj] : b[(size_t)gj * ldb + gk];
        bs[kk][r] = vb;
      }
      __syncthreads();
      for (int kk = 0; kk < GK; ++kk) {
        float av[4], bv[4];
        for (int u = 0; u < 4; ++u) av[u] = as[kk][tx * 4 + u];
        for (int v = 0; v < 4; ++v) bv[v] = bs[kk][ty * 4 + v];
        for (int u = 0; u < 4; ++u)
          for (int v = 0; v < 4; ++v) acc[u][v] = fmaf(av[u], bv[v], acc[u][v]);
      }
      __syncthreads();
    }
    for (int v = 0; v < 4; ++v) {
      int gj = j0 + ty * 4 + v;
      if (gj >= n) continue;
      for (int u = 0; u < 4; ++u) {
        int gi = i0 + tx * 4 + u;
        if (gi >= m) continue;
        float* p = c + (size_t)gj * ldc + gi;
        *p = beta == 0.0f ? alpha * acc[u][v] : alpha * acc[u][v] + beta * *p;
      }
    }
  }
}

// Orientation: larger key is better. l2sq (metric 2) is negated; NaN ranks last (-inf).
__device__ __forceinline__ float dv_key(float s, int metric) {
  if (s != s) return -__int_as_float(0x7f800000);
  return metric == 2 ? -s : s;
}

// Candidate (key ka, score NaN na, index ia) beats (kb, nb, ib): larger key, then a number
// before NaN (a NaN's key is -inf, as is a real -inf's), then lower index: the CPU core's order.
__device__ __forceinline__ bool dv_better(float ka, bool na, unsigned ia, float kb, bool nb,
                                          unsigned ib) {
  return ka > kb || (ka == kb && ((!na && nb) || (na == nb && ia < ib)));
}

// The best min(k, have + n) of a query's candidates, best first, into out_idx/out_score (one
// block of DV_TOPK_THREADS threads; k <= DV_KMAX). Candidate t is (prev_score[t], prev_idx[t])
// for t < have (earlier winners; prev may be out itself), else the score row[t - have] with
// index cidx[t - have] (cidx null: j0 + t - have). Each thread keeps its own sorted best-k list;
// the block then extracts the winners in rounds of a block-wide arg-max over the heads of the
// lists. With pad set, the entries of out after the winners get index 0xffffffff and score NaN
// (ranked after every real candidate). sk/si/sw/sn: DV_TOPK_THREADS entries of shared memory
// each.
__device__ void dv_topk_select(const float* __restrict__ row, const unsigned* __restrict__ cidx,
                               int n, unsigned j0, int k, int have, int metric,
                               const unsigned* prev_idx, const float* prev_score,
                               unsigned* out_idx, float* out_score, int pad, float* sk,
                               unsigned* si, int* sw, int* sn) {
  const int tid = threadIdx.x;
  float lk[DV_KMAX];
  unsigned li[DV_KMAX];
  float ls[DV_KMAX];
  int len = 0;

  // Candidates: earlier winners (positions < have), then the new ones.
  int total = have + n;
  for (int t = tid; t < total; t += DV_TOPK_THREADS) {
    float s;
    unsigned idx;
    if (t < have) {
      s = prev_score[t];
      idx = prev_idx[t];
    } else {
      s = row[t - have];
      idx = cidx ? cidx[t - have] : j0 + (unsigned)(t - have);
    }
    float key = dv_key(s, metric);
    const bool nan = s != s;
    if (len == k && !dv_better(key, nan, idx, lk[k - 1], ls[k - 1] != ls[k - 1], li[k - 1]))
      continue;
    int p = len < k ? len : k - 1;
    while (p > 0 && dv_better(key, nan, idx, lk[p - 1], ls[p - 1] != ls[p - 1], li[p - 1])) {
      lk[p] = lk[p - 1];
      li[p] = li[p - 1];
      ls[p] = ls[p - 1];
      --p;
    }
    lk[p] = key;
    li[p] = idx;
    ls[p] = s;
    if (len < k) ++len;
  }
  __syncthreads();  // every thread has read the earlier winners before they are overwritten

  int head = 0;
  int want = total < k ? total : k;
  for (int r = 0; r < want; ++r) {
    sk[tid] = head < len ? lk[head] : -__int_as_float(0x7f800000);
    si[tid] = head < len ? li[head] : 0xffffffffu;
    sw[tid] = head < len ? tid : -1;
    sn[tid] = head < len ? ls[head] != ls[head] : 1;
    __syncthreads();
    for (int o = DV_TOPK_THREADS / 2; o > 0; o >>= 1) {
      if (tid < o) {
        bool take = sw[tid + o] >= 0 &&
                    (sw[tid] < 0 || dv_better(sk[tid + o], sn[tid + o], si[tid + o], sk[tid],
                                              sn[tid], si[tid]));
        if (take) {
          sk[tid] = sk[tid + o];
          si[tid] = si[tid + o];
          sw[tid] = sw[tid + o];
          sn[tid] = sn[tid + o];
        }
      }
      __syncthreads();
    }
    int winner = sw[0];
    if (tid == winner) {
      out_idx[r] = li[head];
      out_score[r] = ls[head];
      ++head;
    }
    __syncthreads();
  }
  if (pad) {
    for (int r = want + tid; r < k; r += DV_TOPK_THREADS) {
      out_idx[r] = 0xffffffffu;
      out_score[r] = __int_as_float(0x7fc00000);
    }
  }
}

// One block per query row. Merges the scores of a corpus block (tile: rows x n, leading
// dimension ld, corpus rows j0 .. j0+n) into the running best-k lists of each query
// (best_idx/best_score: rows x k, best first, `have` valid entries from earlier blocks).
// Requires k <= DV_KMAX.
extern "C" __global__ void __launch_bounds__(DV_TOPK_THREADS)
dv_topk_merge(const float* __restrict__ tile, int n, long long ld, unsigned j0, int k, int have,
              int metric, unsigned* __restrict__ best_idx, float* __restrict__ best_score) {
  __shared__ float sk[DV_TOPK_THREADS];
  __shared__ unsigned si[DV_TOPK_THREADS];
  __shared__ int sw[DV_TOPK_THREADS];
  __shared__ int sn[DV_TOPK_THREADS];
  const int q = blockIdx.x;
  unsigned* bi = best_idx + (size_t)q * k;
  float* bsc = best_score + (size_t)q * k;
  dv_topk_select(tile + (size_t)q * ld, 0, n, j0, k, have, metric, bi, bsc, bi, bsc, 0, sk, si,
                 sw, sn);
}

// The first of two steps of a merge for few queries (one block per query would leave most of
// the device idle): block (q, s) takes the s-th of `slices` equal slices of query q's scores in
// the tile (rows x n, leading dimension ld, corpus rows j0 .. j0+n) and writes its best k
// (padded, see dv_topk_select) to part_idx/part_score at (q * slices + s) * k.
extern "C" __global__ void __launch_bounds__(DV_TOPK_THREADS)
dv_topk_part(const float* __restrict__ tile, int n, long long ld, unsigned j0, int k,
             int metric, int slices, unsigned* __restrict__ part_idx,
             float* __restrict__ part_score) {
  __shared__ float sk[DV_TOPK_THREADS];
  __shared__ unsigned si[DV_TOPK_THREADS];
  __shared__ int sw[DV_TOPK_THREADS];
  __shared__ int sn[DV_TOPK_THREADS];
  const int q = blockIdx.x, s = blockIdx.y;
  const int lo = (int)((long long)n * s / slices), hi = (int)((long long)n * (s + 1) / slices);
  const size_t at = ((size_t)q * slices + s) * k;
  dv_topk_select(tile + (size_t)q * ld + lo, 0, hi - lo, j0 + (unsigned)lo, k, 0, metric, 0, 0,
                 part_idx + at, part_score + at, 1, sk, si, sw, sn);
}

// The second step: one block per query merges its `width` partial candidates (part_idx /
// part_score rows of width entries, from dv_topk_part) into its running best-k list as
// dv_topk_merge does.
extern "C" __global__ void __launch_bounds__(DV_TOPK_THREADS)
dv_topk_merge_parts(const unsigned* __restrict__ part_idx, const float* __restrict__ part_score,
                    int width, int k, int have, int metric, unsigned* __restrict__ best_idx,
                    float* __restrict__ best_score) {
  __shared__ float sk[DV_TOPK_THREADS];
  __shared__ unsigned si[DV_TOPK_THREADS];
  __shared__ int sw[DV_TOPK_THREADS];
  __shared__ int sn[DV_TOPK_THREADS];
  const int q = blockIdx.x;
  unsigned* bi = best_idx + (size_t)q * k;
  float* bsc = best_score + (size_t)q * k;
  const size_t at = (size_t)q * width;
  dv_topk_select(part_score + at, part_idx + at, width, 0, k, have, metric, bi, bsc, bi, bsc, 0,
                 sk, si, sw, sn);
}

// TF32 split for the 3xTF32 GEMM scheme: hi = x rounded to TF32 (10 explicit mantissa bits,
// round to nearest, ties away from zero — the rounding used by cvt.rna.tf32.f32), lo = x - hi
// (exact in float32). Then a*b = ah*bh + ah*bl + al*bh + al*bl, and the three products kept by
// the scheme carry float32 accuracy at tensor-core speed (lo itself is read as TF32: 2^-21 to
// 2^-22 relative to x).
__device__ __forceinline__ float dv_tf32_hi(float x) {
  unsigned u = __float_as_uint(x);
  if ((u & 0x7f800000u) == 0x7f800000u) return x;  // inf / NaN unchanged
  unsigned r = (u + 0x1000u) & 0xffffe000u;
  if ((r & 0x7f800000u) == 0x7f800000u) r = u & 0xffffe000u;  // no rounding up to infinity
  return __uint_as_float(r);
}

// Splits x (n values; x may be hi itself) into hi and lo. An infinite value cannot be split
// (inf * 0 in the cross products would make NaN where float32 gives inf): it sets *inf_seen,
// and the host then runs that GEMM in plain FP32 instead.
extern "C" __global__ void dv_split_tf32(const float* x, long long n, float* hi,
                                         float* __restrict__ lo, int* __restrict__ inf_seen) {
  const long long stride = (long long)gridDim.x * blockDim.x;
  for (long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += stride) {
    const float v = x[i];
    const float h = dv_tf32_hi(v);
    hi[i] = h;
    lo[i] = v - h;
    if (v - v != 0.0f && v == v) atomicOr(inf_seen, 1);  // v is ±inf
  }
}
