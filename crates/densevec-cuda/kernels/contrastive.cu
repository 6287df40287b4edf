// densevec CUDA kernels: the row-wise softmax cross-entropy of InfoNCE / NT-Xent and of the
// margin losses. Compiled at run time by NVRTC (no headers). Matrices are row-major float32.
//
// The GEMMs around these kernels (logits = Q K^T, gradQ = P K, gradK += P^T Q) run in cuBLAS;
// a kernel here sees one block of complete logit rows, so the log-sum-exp of a row is exact
// (no online rescaling is needed on the GPU: a block of rows is R x K with R chosen to fit).

#define DV_CE_THREADS 256

// TF32 split of a gradient entry (see dv_split_tf32 in similarity.cu): the row kernels write
// hi in place and lo to a second buffer when the GEMMs run as 3xTF32.
__device__ __forceinline__ float dv_tf32_hi(float x) {
  unsigned u = __float_as_uint(x);
  if ((u & 0x7f800000u) == 0x7f800000u) return x;
  unsigned r = (u + 0x1000u) & 0xffffe000u;
  if ((r & 0x7f800000u) == 0x7f800000u) r = u & 0xffffe000u;
  return __uint_as_float(r);
}

__device__ __forceinline__ void dv_store(float* row, float* lo, size_t at, float v) {
  if (lo) {
    const float h = dv_tf32_hi(v);
    row[at] = h;
    lo[at] = v - h;
  } else {
    row[at] = v;
  }
}
#define DV_NEG_INF (-__int_as_float(0x7f800000))

// Block-wide max / sum over DV_CE_THREADS threads; every thread gets the result.
__device__ __forceinline__ float dv_block_max(float v, float* sh) {
  for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  __syncthreads();  // sh may still be read by a previous reduction
  if (lane == 0) sh[warp] = v;
  __syncthreads();
  v = sh[0];
  for (int w = 1; w < DV_CE_THREADS / 32; ++w) v = fmaxf(v, sh[w]);
  return v;
}

__device__ __forceinline__ double dv_block_sum(double v, double* sh) {
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  __syncthreads();
  if (lane == 0) sh[warp] = v;
  __syncthreads();
  v = 0.0;
  for (int w = 0; w < DV_CE_THREADS / 32; ++w) v += sh[w];  // same order in every thread
  return v;
}

// log sum_j exp(row[j]) of a block's row of n values whose maximum is mx (block-wide, every
// thread gets it); the exponentials summed in double in the same order in every thread.
__device__ __forceinline__ double dv_row_lse(const float* row, int n, float mx, double* shd) {
  double se = 0.0;
  for (int j = threadIdx.x; j < n; j += DV_CE_THREADS) se += (double)expf(row[j] - mx);
  se = dv_block_sum(se, shd);
  return (double)mx + log(se);
}

// InfoNCE / NT-Xent rows. s holds `rows` rows of n logits already scaled by 1/tau (leading
// dimension ld); the rows are queries i0 .. i0+rows-1. Per row i:
//   z_j = s_ij - logQ_j (when has_logq), z_ii = -inf (when exclude_self),
//   loss[i] = logsumexp_j z_j - z_{i,pos(i)},
//   s_ij <- softmax(z)_j - [j == pos(i)]   (the gradient with respect to the logits, times B).
// When lo is not null the result is stored split for 3xTF32: its TF32 part in s, the rest in lo
// (same layout). When extra is not null, row i's diagnostics go to extra[5i .. 5i+4]: with the
// negatives' (j != pos(i), z_j finite) own shift mn = max z_j, ln = sum exp(z_j - mn),
// Eq[z] and Eq[logQ] their means under the renormalized negatives, Pneg = exp(mn + ln ln - lse):
//   [Pneg (Eq[z] + Eq[logQ] - z_pos - logQ_pos), entropy of p, p_pos, exp(mn - lse),
//    exp(mn + ln ln - Eq[z])]
// (the first times -1/tau is d loss_i / d tau); a row without negatives gets [0, 0, 1, 0, 0].
// One block of DV_CE_THREADS threads per row, three passes over it: maxima, sums, gradient.
extern "C" __global__ void __launch_bounds__(DV_CE_THREADS)
dv_ce_rows(float* __restrict__ s, int rows, int n, long long ld, int i0,
           const float* __restrict__ log_q, int has_logq, const unsigned* __restrict__ positives,
           int exclude_self, double* __restrict__ loss, float* __restrict__ lo,
           double* __restrict__ extra) {
  __shared__ float shf[DV_CE_THREADS / 32];
  __shared__ double shd[DV_CE_THREADS / 32];
  for (int r = blockIdx.x; r < rows; r += gridDim.x) {  // block-uniform loop
    float* row = s + (size_t)r * ld;
    const int i = i0 + r;
    const int pos = (int)positives[i];
    const bool modified = has_logq || exclude_self;
    // Pass 1: the logits z (written back only where they differ from s), their maximum and
    // the maximum over the negatives.
    float mx = DV_NEG_INF, mn = DV_NEG_INF;
    for (int j = threadIdx.x; j < n; j += DV_CE_THREADS) {
      float z = row[j];
      if (has_logq) z -= log_q[j];
      if (exclude_self && j == i) z = DV_NEG_INF;
      if (modified) row[j] = z;
      mx = fmaxf(mx, z);
      if (j != pos) mn = fmaxf(mn, z);
    }
    mx = dv_block_max(mx, shf);
    if (extra) mn = dv_block_max(mn, shf);  // block-uniform
    // Pass 2: the row's sum of exponentials (log-sum-exp) and, for the diagnostics, the
    // negatives' own shifted sums, each in double in the same order in every thread.
    double se = 0.0, ln = 0.0, ez = 0.0, elq = 0.0;
    const bool negs = extra && mn != DV_NEG_INF;  // block-uniform
    for (int j = threadIdx.x; j < n; j += DV_CE_THREADS) {
      const float z = row[j];
      se += (double)expf(z - mx);
      if (negs && j != pos && z != DV_NEG_INF) {
        const double e = (double)expf(z - mn);
        ln += e;
        ez += e * (double)z;
        if (has_logq) elq += e * (double)log_q[j];
      }
    }
    se = dv_block_sum(se, shd);
    const double lse = (double)mx + log(se);
    const float zpos = row[pos];  // every thread reads it before any thread overwrites the row
    if (extra) {  // block-uniform
      ln = dv_block_sum(ln, shd);
      ez = dv_block_sum(ez, shd);
      elq = dv_block_sum(elq, shd);
      if (threadIdx.x == 0) {
        double* x = extra + (size_t)i * 5;
        if (!negs) {
          x[0] = 0.0; x[1] = 0.0; x[2] = 1.0; x[3] = 0.0; x[4] = 0.0;
        } else {
          const double zp = (double)zpos;
          const double up = zp + (has_logq ? (double)log_q[pos] : 0.0);
          const double eqz = ez / ln, eqlq = elq / ln;
          const double lsen = (double)mn + log(ln);
          const double pneg = exp(lsen - lse), pp = exp(zp - lse);
          x[0] = pneg * (eqz + eqlq - up);
          x[1] = pp * (lse - zp) + pneg * (lse - eqz);
          x[2] = pp;
          x[3] = exp((double)mn - lse);
          x[4] = exp(lsen - eqz);
        }
      }
    }
    __syncthreads();
    if (threadIdx.x == 0) loss[i] = lse - (double)zpos;
    // Pass 3: the gradient with respect to the logits, in place (split when lo is set).
    const float flse = (float)lse;
    for (int j = threadIdx.x; j < n; j += DV_CE_THREADS) {
      float z = row[j];
      float p = z == DV_NEG_INF ? 0.0f : expf(z - flse);
      dv_store(row, lo ? lo + (size_t)r * ld : lo, j, j == pos ? p - 1.0f : p);
    }
    __syncthreads();
  }
}

// Margin softmax rows (normalized softmax, CosFace, ArcFace). g holds `rows` rows of c cosines
// (leading dimension c) of the rows i0 .. i0+rows-1 against the unit prototypes. Per row i with
// label y: logits_j = scale * cos_j, logits_y = zy[i] (the margin rule's target logit, computed
// on the host in float64); logits are written to `logits` (rows x c, the same layout), and g is
// overwritten with d loss / d cos:
//   g_j = (p_j - eps/c) * scale / N,  g_y = (p_y - eps/c - (1 - eps)) * dzy[i] / N,
// loss[i] = logsumexp(logits) - (1 - eps) logits_y - eps/c * sum_j logits_j.
// When lo is not null, g is stored split for 3xTF32 (TF32 part in g, the rest in lo).
extern "C" __global__ void __launch_bounds__(DV_CE_THREADS)
dv_margin_rows(float* __restrict__ g, float* __restrict__ logits, int rows, int c, int i0,
               const unsigned* __restrict__ labels, const float* __restrict__ zy,
               const double* __restrict__ dzy, float scale, double eps, double inv_n,
               double* __restrict__ loss, float* __restrict__ lo) {
  __shared__ float shf[DV_CE_THREADS / 32];
  __shared__ double shd[DV_CE_THREADS / 32];
  for (int r = blockIdx.x; r < rows; r += gridDim.x) {
    float* grow = g + (size_t)r * c;
    float* lrow = logits + (size_t)r * c;
    const int i = i0 + r;
    const int y = (int)labels[i];
    float mx = DV_NEG_INF;
    double sum = 0.0;
    for (int j = threadIdx.x; j < c; j += DV_CE_THREADS) {
      float z = j == y ? zy[i] : grow[j] * scale;
      lrow[j] = z;
      mx = fmaxf(mx, z);
      sum += (double)z;
    }
    mx = dv_block_max(mx, shf);
    sum = dv_block_sum(sum, shd);
    const double lse = dv_row_lse(lrow, c, mx, shd);
    if (threadIdx.x == 0)
      loss[i] = lse - (1.0 - eps) * (double)zy[i] - eps / (double)c * sum;
    const float flse = (float)lse;
    const float sub = (float)(eps / (double)c);
    const float gs = (float)((double)scale * inv_n);
    for (int j = threadIdx.x; j < c; j += DV_CE_THREADS) {
      float p = expf(lrow[j] - flse) - sub;
      dv_store(grow, lo ? lo + (size_t)r * c : lo, j,
               j == y ? (float)(((double)p - (1.0 - eps)) * dzy[i] * inv_n) : p * gs);
    }
    __syncthreads();
  }
}

// Rows of x (rows x cols) normalized in place, one warp per row, as the CPU core does
// (contrastive.rs, normalized_rows): the norm is sqrt of the float32 sum of squares when that
// sum is finite and above 1e-30, else of the double sum; a row with norm v > 0 (finite) is
// scaled by (float)(1/v) (from v >= 1e-30; below, each value is divided in double). norms[r]
// gets v. Zero rows are refused on the host before this runs.
extern "C" __global__ void dv_row_normalize(float* __restrict__ x, int rows, int cols,
                                            double* __restrict__ norms) {
  const long long warp = ((long long)blockIdx.x * blockDim.x + threadIdx.x) >> 5;
  const int lane = threadIdx.x & 31;
  if (warp >= rows) return;  // whole warps leave together (blocks are whole warps)
  float* r = x + (size_t)warp * cols;
  float s = 0.0f;
  for (int k = lane; k < cols; k += 32) s = fmaf(r[k], r[k], s);
  for (int o = 16; o > 0; o >>= 1) s += __shfl_xor_sync(0xffffffffu, s, o);
  double v;
  if (isfinite(s) && s > 1e-30f) {
    v = sqrt((double)s);
  } else {
    double sd = 0.0;
    for (int k = lane; k < cols; k += 32) sd += (double)r[k] * (double)r[k];
    for (int o = 16; o > 0; o >>= 1) sd += __shfl_xor_sync(0xffffffffu, sd, o);
    v = sqrt(sd);
  }
  if (lane == 0) norms[warp] = v;
  if (!(v > 0.0) || !isfinite(v)) return;
  const double inv = 1.0 / v;
  if (v >= 1e-30) {
    const float fi = (float)inv;
    for (int k = lane; k < cols; k += 32) r[k] *= fi;
  } else {
    for (int k = lane; k < cols; k += 32) r[k] = (float)((double)r[k] * inv);
  }
}

// The value at `at` of an operand stored plain (lo null) or split for 3xTF32 (hi + lo exact).
__device__ __forceinline__ float dv_val(const float* hi, const float* lo, size_t at) {
  return lo ? hi[at] + lo[at] : hi[at];
}

// Backprop through x^ = x/|x| in place, one warp per row, as the CPU core's back_norm:
// g <- (g - x^ (x^ . g)) / |x|, with x^ the normalized rows (xh, xl: plain or split) and |x|
// from norms.
extern "C" __global__ void dv_back_norm(float* __restrict__ g, const float* __restrict__ xh,
                                        const float* __restrict__ xl,
                                        const double* __restrict__ norms, int rows, int cols) {
  const long long warp = ((long long)blockIdx.x * blockDim.x + threadIdx.x) >> 5;
  const int lane = threadIdx.x & 31;
  if (warp >= rows) return;
  const size_t base = (size_t)warp * cols;
  float s = 0.0f;
  for (int k = lane; k < cols; k += 32) s = fmaf(dv_val(xh, xl, base + k), g[base + k], s);
  for (int o = 16; o > 0; o >>= 1) s += __shfl_xor_sync(0xffffffffu, s, o);
  const float inv = (float)(1.0 / norms[warp]);
  for (int k = lane; k < cols; k += 32)
    g[base + k] = fmaf(-s, dv_val(xh, xl, base + k), g[base + k]) * inv;
}
