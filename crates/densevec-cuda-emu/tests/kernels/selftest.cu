// Kernels that test the emulator itself (tests/emulator.rs): each exercises one part of the
// execution model with a result the host can compute exactly. Valid CUDA C: they would give
// the same results on a GPU.

// Per-block sum of in[0 .. n) through a shared-memory tree and __syncthreads, on a grid of
// any shape: block b (linear, x fastest) sums in[b*blockDim.x .. (b+1)*blockDim.x) into
// out[b]. blockDim.x must be a power of two <= 1024.
extern "C" __global__ void st_block_sum(const unsigned* __restrict__ in, int n,
                                        unsigned long long* __restrict__ out) {
  __shared__ unsigned long long s[1024];
  const unsigned b = blockIdx.x + gridDim.x * (blockIdx.y + gridDim.y * blockIdx.z);
  const unsigned i = b * blockDim.x + threadIdx.x;
  s[threadIdx.x] = i < (unsigned)n ? in[i] : 0;
  __syncthreads();
  for (unsigned o = blockDim.x / 2; o > 0; o >>= 1) {
    if (threadIdx.x < o) s[threadIdx.x] += s[threadIdx.x + o];
    __syncthreads();
  }
  if (threadIdx.x == 0) out[b] = s[0];
}

// Warp reductions of in (one value per thread), per warp w = global thread id / 32:
// down[w] = lane 0's shuffle-down sum; every lane's xor-butterfly sum goes to xall[thread]
// (all lanes of a warp must agree); scan[thread] = inclusive shuffle-up prefix sum within the
// warp; bcast[thread] = the value of lane `src` (shfl idx); ballot[w] = ballot of odd values;
// vote[w] = __any_sync / __all_sync results.
extern "C" __global__ void st_warp(const int* __restrict__ in, int* __restrict__ down,
                                   int* __restrict__ xall, int* __restrict__ scan,
                                   int* __restrict__ bcast, unsigned* __restrict__ ballot,
                                   int* __restrict__ vote, int src) {
  const int t = blockIdx.x * blockDim.x + threadIdx.x;
  const int lane = threadIdx.x & 31;
  const int v = in[t];
  int d = v;
  for (int o = 16; o > 0; o >>= 1) d += __shfl_down_sync(0xffffffffu, d, o);
  if (lane == 0) down[t / 32] = d;
  int x = v;
  for (int o = 1; o < 32; o <<= 1) x += __shfl_xor_sync(0xffffffffu, x, o);
  xall[t] = x;
  int s = v;
  for (int o = 1; o < 32; o <<= 1) {
    int u = __shfl_up_sync(0xffffffffu, s, o);
    if (lane >= o) s += u;
  }
  scan[t] = s;
  bcast[t] = __shfl_sync(0xffffffffu, v, src);
  unsigned bal = __ballot_sync(0xffffffffu, v & 1);
  if (lane == 0) ballot[t / 32] = bal;
  // vote[w]: bit 0 = any value > 900, bit 1 = all values > -900.
  const int any = __any_sync(0xffffffffu, v > 900), all = __all_sync(0xffffffffu, v > -900);
  if (lane == 0) vote[t / 32] = any | all << 1;
}

// Segmented shuffles (width < 32) and 64-bit types: out[t] = sum of the double values of the
// thread's segment of `width` lanes (xor butterfly), and seg[t] = the long long value of the
// segment's lane `src` (shfl idx with width), and up[t] = the value `delta` lanes up in the
// segment (own value at the segment start).
extern "C" __global__ void st_width(const double* __restrict__ in, int width, int src, int delta,
                                    double* __restrict__ out, long long* __restrict__ seg,
                                    long long* __restrict__ up) {
  const int t = blockIdx.x * blockDim.x + threadIdx.x;
  double x = in[t];
  for (int o = 1; o < width; o <<= 1) x += __shfl_xor_sync(0xffffffffu, x, o, width);
  out[t] = x;
  const long long id = 1000000000000LL + t;
  seg[t] = __shfl_sync(0xffffffffu, id, src, width);
  up[t] = __shfl_up_sync(0xffffffffu, id, delta, width);
}

// A block of fewer than 32 threads is one partial warp: shuffles among its lanes.
extern "C" __global__ void st_small_block(int* out) {
  int v = threadIdx.x + 1;
  // Butterfly over the existing lanes only (blockDim.x is a power of two).
  for (int o = 1; o < (int)blockDim.x; o <<= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  out[blockIdx.x * blockDim.x + threadIdx.x] = v;
}

// Atomics across blocks: every thread adds 1 to fsum, 0.5 to dsum, 1 to usum; records the
// largest and smallest thread id and the number of threads through CAS and exch.
extern "C" __global__ void st_atomics(float* fsum, double* dsum, unsigned* usum,
                                      unsigned long long* ullsum, int* imax, int* imin,
                                      unsigned* umax, unsigned long long* cas_count,
                                      int* last) {
  const int t = blockIdx.x * blockDim.x + threadIdx.x;
  atomicAdd(fsum, 1.0f);
  atomicAdd(dsum, 0.5);
  atomicAdd(usum, 1u);
  atomicAdd(ullsum, (unsigned long long)t);
  atomicMax(imax, t);
  atomicMin(imin, -t);
  atomicMax(umax, (unsigned)t * 3u);
  unsigned long long old = *cas_count, seen;
  do {
    seen = old;
    old = atomicCAS(cas_count, seen, seen + 1);
  } while (old != seen);
  atomicExch(last, t);
  __threadfence();
}

// Threads with threadIdx.x >= active return at once; the others run a shared-memory
// reduction with several __syncthreads. Without exited threads leaving the barrier, this
// would hang. out[block] = sum of (threadIdx.x + 1) over the active threads.
extern "C" __global__ void st_early_exit(int active, int* out) {
  __shared__ int s[1024];
  if ((int)threadIdx.x >= active) return;
  s[threadIdx.x] = threadIdx.x + 1;
  __syncthreads();
  if (threadIdx.x == 0) {
    int t = 0;
    for (int i = 0; i < active; ++i) t += s[i];
    s[0] = t;
  }
  __syncthreads();
  if (threadIdx.x == 0) out[blockIdx.x] = s[0];
  __syncthreads();
}

// Every index: out[linear block][linear thread] = packed (blockIdx, threadIdx), and
// dims[0..6) = gridDim, blockDim (written by thread 0 of block 0).
extern "C" __global__ void st_index(unsigned long long* __restrict__ out, unsigned* dims) {
  const unsigned long long b =
      blockIdx.x + (unsigned long long)gridDim.x * (blockIdx.y + gridDim.y * blockIdx.z);
  const unsigned t = threadIdx.x + blockDim.x * (threadIdx.y + blockDim.y * threadIdx.z);
  const unsigned long long nt = blockDim.x * blockDim.y * blockDim.z;
  out[b * nt + t] = (unsigned long long)blockIdx.x << 48 | (unsigned long long)blockIdx.y << 32 |
                    (unsigned long long)blockIdx.z << 24 | threadIdx.x << 12 |
                    threadIdx.y << 6 | threadIdx.z;
  if (b == 0 && t == 0) {
    dims[0] = gridDim.x, dims[1] = gridDim.y, dims[2] = gridDim.z;
    dims[3] = blockDim.x, dims[4] = blockDim.y, dims[5] = blockDim.z;
  }
}

// __syncthreads_count / _and / _or: out[0..3) for block 0.
extern "C" __global__ void st_sync_count(int mod, int* out) {
  const int p = threadIdx.x % mod == 0;
  const int c = __syncthreads_count(p);
  const int a = __syncthreads_and(p);
  const int o = __syncthreads_or(p);
  if (threadIdx.x == 0) out[0] = c, out[1] = a, out[2] = o;
}

// Writes one element past the end of p[0 .. n): the guard zones must catch it.
extern "C" __global__ void st_write(float* p, int at, float v) {
  if (blockIdx.x == 0 && threadIdx.x == 0) p[at] = v;
}

// out[t] = the value thread t reads from shared memory it never wrote (poisoned: NaN).
extern "C" __global__ void st_shared_unwritten(float* out) {
  __shared__ float s[64];
  if (threadIdx.x == 0 && blockIdx.x == 0) s[0] = 1.0f;  // block 1 must not see this
  __syncthreads();
  out[blockIdx.x] = s[0];
}

// A barrier half the block never reaches while the other half waits for it elsewhere:
// threads < 16 wait at __syncthreads, threads >= 16 in a full-warp __syncwarp. A deadlock
// on the GPU too; the emulator must report it instead of hanging.
extern "C" __global__ void st_deadlock(int* p) {
  if (threadIdx.x < 16) __syncthreads();
  else __syncwarp();
  p[threadIdx.x] = 1;
}

// Lane 0 reads lane 1 after lane 1 has returned: undefined on the GPU, an error here.
extern "C" __global__ void st_shfl_exited(int* p) {
  if (threadIdx.x == 1) return;
  p[threadIdx.x] = __shfl_sync(0xffffffffu, (int)threadIdx.x, 1);
}

// A failing device assert and __trap(): errors of the launch, not a process abort.
extern "C" __global__ void st_assert(int v) { assert(v == 42); }
extern "C" __global__ void st_trap() { __trap(); }

// Divergent warp halves, each with its own mask: legal, and must not be mixed up.
extern "C" __global__ void st_split_masks(int* out) {
  const int lane = threadIdx.x & 31;
  int v = lane;
  if (lane < 16) {
    for (int o = 8; o > 0; o >>= 1) v += __shfl_down_sync(0x0000ffffu, v, o, 16);
  } else {
    for (int o = 8; o > 0; o >>= 1) v += __shfl_down_sync(0xffff0000u, v, o, 16);
  }
  out[threadIdx.x] = v;
}

// Math and intrinsics that the header maps: out[i] for a fixed list of expressions.
extern "C" __global__ void st_math(float x, double y, float* fo, double* dout, int* io) {
  fo[0] = rsqrtf(x);
  fo[1] = __expf(x) - expf(x);
  fo[2] = fminf(x, NAN);
  fo[3] = min(x, 2.0f);
  fo[4] = max(3, 7);
  fo[5] = __fdividef(x, 2.0f);
  fo[6] = __int_as_float(__float_as_int(x));
  fo[7] = fmaf(x, x, 1.0f);
  fo[8] = sqrt(x);  // float overload
  fo[9] = __saturatef(x);
  dout[0] = __longlong_as_double(__double_as_longlong(y));
  dout[1] = log1p(y);
  dout[2] = max(y, 1.5);
  dout[3] = atan2(y, 1.0);
  io[0] = isnan(NAN) && isinf(INFINITY) && isfinite(x);
  io[1] = min(5u, 3u);
  io[2] = (int)max(-1LL, 4LL);
  io[3] = __float2int_rn(2.5f);
  io[4] = __popc(0xf0f0u);
  io[5] = __ffs(8);
  io[6] = __clz(1);
  io[7] = (int)__ldg(&io[4]);
}

// __shared__ inside a __device__ template helper (its statics live in COMDAT sections) and a
// __noinline__ helper: out[2b] = block total of in, out[2b+1] = block total of 2*in.
template <int N>
__device__ __forceinline__ float st_block_total(float v) {
  __shared__ float part[N / 32];
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  for (int o = 16; o > 0; o >>= 1) v += __shfl_down_sync(0xffffffffu, v, o);
  if (lane == 0) part[warp] = v;
  __syncthreads();
  float t = 0.0f;
  for (int w = 0; w < N / 32; ++w) t += part[w];
  __syncthreads();  // part is written again by the next call
  return t;
}
__device__ __noinline__ float st_twice(float x) { return 2.0f * x; }
extern "C" __global__ void st_helpers(const float* __restrict__ in, float* __restrict__ out) {
  const float v = in[blockIdx.x * 128 + threadIdx.x];
  const float t = st_block_total<128>(v);
  const float t2 = st_block_total<128>(st_twice(v));
  if (threadIdx.x == 0) out[2 * blockIdx.x] = t, out[2 * blockIdx.x + 1] = t2;
}

// Parsed by build.rs: launch bounds between `void` and the name, across line breaks, and a
// kernel inside a comment that must not be registered:
// extern "C" __global__ void st_commented_out(int* p) {}
/* extern "C" __global__ void st_commented_out2(int* p) {} */
extern "C" __global__ void
__launch_bounds__(64,
                  2)
st_bounds(int* p) {
  p[blockIdx.x * blockDim.x + threadIdx.x] = 7;
}
extern "C" __global__ __launch_bounds__(32) void st_bounds_first(int* p) { p[threadIdx.x] = 8; }
