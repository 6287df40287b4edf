// launch.cpp — the emulator's "driver": runs one kernel launch on CPU threads.
//
// A launch of grid G and block B runs on B.x*B.y*B.z OS threads. Each thread plays one CUDA
// thread (threadIdx) in every block: the threads run block 0, meet at an inter-block barrier,
// run block 1, and so on (blockIdx x fastest, then y, then z). Blocks never overlap, so the
// statics that stand for `__shared__` arrays belong to exactly one block at a time.
//
// The threads are a process-wide pool (see Pool), created when a launch first needs that many
// and reused by every later launch: worker t is CUDA thread t of every launch with more than t
// threads. Creating and joining 256 threads per launch cost about 12 ms, more than most test
// launches take to run.
//
// All bookkeeping of a launch is guarded by ONE mutex (per launch): the block barrier
// (__syncthreads), one exchange record per warp (shuffles, votes, __syncwarp) and the
// inter-block barrier. One mutex makes the bookkeeping simple to check and lets the launcher
// detect deadlocks: when every thread of the launch waits at some barrier and no arrival can
// release any of them, the launch fails with a message instead of hanging the test.
//
// Waiting threads sleep on a futex word per barrier (a Gate) WITHOUT the mutex, and do not
// take it again when they wake: what they read after a release was written before it and
// stays put until they arrive at the next barrier. So releasing 256 threads costs 256
// wake-ups, not 256 contended mutex acquisitions (a condition variable's thundering herd).
//
// A thread that returns from the kernel leaves the block barrier and its warp for the rest of
// the block (the barrier then waits for one thread less), as exited threads do on the GPU.
//
// Errors inside kernel code (a trap, a failed assert, a misused intrinsic, a deadlock) abort
// the launch: the first message is kept, every waiting thread is woken, and each thread
// unwinds out of the kernel with a C++ exception (cuemu::Abort) at its next intrinsic.

#include <cxxabi.h>
#include <linux/futex.h>
#include <pthread.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cstdarg>
#include <exception>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "cuda_emu.h"

// Bounds of the section holding every `__shared__` variable (see cuda_emu.h). The linker
// defines them when the section exists; weak, so that a build with no shared memory links.
extern "C" char __start_cuemu_shared[] __attribute__((weak));
extern "C" char __stop_cuemu_shared[] __attribute__((weak));

namespace cuemu {
namespace {

/// Thrown through kernel frames to stop a thread of an aborted launch.
struct Abort {};

/// Stack of one worker thread. CUDA allows up to 512 KiB of local memory per thread.
constexpr size_t kStackBytes = 1 << 20;

// Linux futexes on 32-bit atomics: sleep while *w == seen (spurious returns are possible,
// callers re-check), wake up to n sleepers.
static_assert(sizeof(std::atomic<uint32_t>) == sizeof(uint32_t));
void futex_wait(std::atomic<uint32_t>& w, uint32_t seen) {
  syscall(SYS_futex, reinterpret_cast<uint32_t*>(&w), FUTEX_WAIT_PRIVATE, seen, nullptr, nullptr,
          0);
}
void futex_wake(std::atomic<uint32_t>& w, int n) {
  syscall(SYS_futex, reinterpret_cast<uint32_t*>(&w), FUTEX_WAKE_PRIVATE, n, nullptr, nullptr, 0);
}

/// Where threads sleep until a barrier is released or the launch aborted: a futex word that
/// every release and every abort bumps. A waiter reads it, checks its condition, and sleeps
/// only while the word still has the value it read, so no wake-up is lost.
///
/// A release bumps the word under the lock but wakes the sleepers only after unlocking
/// (wake_later / unlock_and_wake): woken threads run straight to their next barrier, and if
/// the releaser still held the lock, each would sleep once more on the mutex. (Measured: 5×
/// faster barriers of 256 threads.)
struct Gate {
  std::atomic<uint32_t> seq{0};

  void bump() { seq.fetch_add(1, std::memory_order_release); }
  void wake() { futex_wake(seq, INT_MAX); }
  void open() {
    bump();
    wake();
  }
  void sleep(uint32_t seen) { futex_wait(seq, seen); }
};

/// Lanes of one warp-level exchange in progress (the lanes of `mask` that meet in it).
struct Group {
  bool busy = false;
  int phase = 1;       // 1: lanes write their values; 2: lanes have read them
  unsigned mask = 0;   // the mask the lanes passed
  int op = 0;          // the intrinsic (WarpOp), which all lanes of the exchange must agree on
  unsigned arrived = 0;
  unsigned took_part = 0;  // set when phase 1 completes: mask ∩ live lanes
  std::atomic<unsigned long long> gen{0};  // bumped by every phase completion
};

struct Warp {
  unsigned full = 0;  // lanes that exist (a partial warp when the block has < 32 threads)
  unsigned live = 0;  // lanes that have not returned from the kernel in this block
  unsigned long long slot[32] = {};
  // Concurrent exchanges of disjoint lane sets (divergent code with different masks); at
  // most one per lane, so 32 suffice.
  Group groups[32];
  Gate gate;  // the lanes of every exchange of this warp sleep here
};

struct Launch {
  const cuemu_kernel* kernel = nullptr;
  void** params = nullptr;
  dim3 grid, block;
  unsigned nthreads = 0;
  unsigned long long nblocks = 0;

  std::mutex mu;  // guards everything below

  std::atomic<bool> aborted{false};
  std::string message;  // the first error
  // Threads waiting at a barrier that has not been released yet (a releaser subtracts the
  // threads it releases). When it reaches nthreads, nothing can ever release them.
  unsigned blocked = 0;

  // The block barrier (__syncthreads): `live` threads have not returned from the kernel.
  unsigned block_live = 0, block_arrived = 0, block_true = 0;
  std::atomic<unsigned long long> block_gen{0};
  unsigned block_result_true[2] = {}, block_result_n[2] = {};  // per generation parity
  Gate block_gate;

  std::unique_ptr<Warp[]> warps;
  unsigned nwarps = 0;

  // The barrier between two blocks: every thread of the launch.
  unsigned between_arrived = 0;
  std::atomic<unsigned long long> between_gen{0};
  unsigned long long block_no = 0;  // linear index of the block now running
  Gate between_gate;
};

thread_local Launch* tls_launch = nullptr;
thread_local unsigned tls_tid = 0;

// Gates this thread has bumped under the lock and will wake after unlocking: at most the
// block barrier's, its warp's and the inter-block barrier's.
thread_local Gate* tls_wake[3];
thread_local int tls_nwake = 0;

/// Releases `g`'s sleepers once this thread unlocks (see Gate). Lock held.
void wake_later(Gate& g) {
  g.bump();
  for (int i = 0; i < tls_nwake; ++i)
    if (tls_wake[i] == &g) return;
  tls_wake[tls_nwake++] = &g;
}

void unlock_and_wake(std::unique_lock<std::mutex>& lk) {
  lk.unlock();
  for (int i = 0; i < tls_nwake; ++i) tls_wake[i]->wake();
  tls_nwake = 0;
}

uint3 block_coords(const Launch& L, unsigned long long b) {
  return uint3{unsigned(b % L.grid.x), unsigned(b / L.grid.x % L.grid.y),
               unsigned(b / (unsigned long long)L.grid.x / L.grid.y)};
}

/// Stops the launch (the first message wins) and wakes every waiting thread. Lock held.
void abort_locked(Launch& L, const std::string& msg) {
  if (!L.aborted) {
    L.message = msg;
    L.aborted = true;
  }
  L.block_gate.open();
  L.between_gate.open();
  for (unsigned w = 0; w < L.nwarps; ++w) L.warps[w].gate.open();
}

std::string vformat(const char* fmt, va_list ap) {
  char buf[1024];
  vsnprintf(buf, sizeof buf, fmt, ap);
  return buf;
}

std::string format(const char* fmt, ...) __attribute__((format(printf, 1, 2)));
std::string format(const char* fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  std::string s = vformat(fmt, ap);
  va_end(ap);
  return s;
}

/// "block (x,y,z) thread (x,y,z)" of the calling thread.
std::string where() {
  return format("block (%u,%u,%u) thread (%u,%u,%u)", blockIdx.x, blockIdx.y, blockIdx.z,
                threadIdx.x, threadIdx.y, threadIdx.z);
}

/// Aborts from inside kernel code: lock held; unwinds the calling thread.
[[noreturn]] void fail_locked(Launch& L, const std::string& msg) {
  abort_locked(L, where() + ": " + msg);
  throw Abort{};
}

/// Describes a deadlock: where the threads of the current block wait. Lock held.
std::string deadlock_message(const Launch& L) {
  unsigned in_warp = 0;
  for (unsigned w = 0; w < L.nwarps; ++w)
    for (const Group& g : L.warps[w].groups)
      if (g.busy) in_warp += g.arrived;
  const uint3 b = block_coords(L, L.block_no);
  return format(
      "deadlock in block (%u,%u,%u): all %u threads wait (%u at __syncthreads, %u in warp "
      "intrinsics, %u returned from the kernel); some thread waits at a barrier that the "
      "threads it waits for never reach (e.g. __syncthreads or a full-mask shuffle in divergent "
      "code, or lanes of one warp passing different masks)",
      b.x, b.y, b.z, L.nthreads, L.block_arrived, in_warp, L.between_arrived);
}

/// Called with the lock held by a thread whose arrival did not complete a barrier: releases
/// the lock and sleeps until `gen` moves past `mine`. Returns without the lock; false if the
/// launch was aborted first.
bool wait_unlock(Launch& L, std::unique_lock<std::mutex>& lk, Gate& gate,
                 const std::atomic<unsigned long long>& gen, unsigned long long mine) {
  if (++L.blocked == L.nthreads) {
    abort_locked(L, deadlock_message(L));
    unlock_and_wake(lk);
    return false;
  }
  unlock_and_wake(lk);
  for (;;) {
    const uint32_t seen = gate.seq.load(std::memory_order_acquire);
    if (gen.load(std::memory_order_acquire) != mine) return true;
    if (L.aborted.load(std::memory_order_acquire)) return false;
    gate.sleep(seen);
  }
}

// ----- the block barrier ---------------------------------------------------------------------

/// Completes a generation of the block barrier, waking `waiting` threads. Lock held.
void release_block_locked(Launch& L, unsigned waiting) {
  const unsigned p = unsigned(L.block_gen & 1);
  L.block_result_true[p] = L.block_true;
  L.block_result_n[p] = L.block_arrived;
  L.block_arrived = 0;
  L.block_true = 0;
  L.blocked -= waiting;
  L.block_gen.fetch_add(1, std::memory_order_release);
  wake_later(L.block_gate);
}

// ----- warp exchanges ------------------------------------------------------------------------

/// Completes the current phase of a warp exchange, waking `waiting` lanes. Lock held.
void release_group_locked(Launch& L, Warp& W, Group& g, unsigned waiting) {
  if (g.phase == 1) {
    g.took_part = g.mask & W.live;
    g.phase = 2;
  } else {
    g.busy = false;  // phase 2 done: every lane has read; the record can be reused
    g.phase = 1;
  }
  g.arrived = 0;
  L.blocked -= waiting;
  g.gen.fetch_add(1, std::memory_order_release);
  wake_later(W.gate);
}

/// One arrival at a phase of `g` (lock held); returns when the phase is complete, without
/// the lock.
void arrive_group_unlock(Launch& L, std::unique_lock<std::mutex>& lk, Warp& W, Group& g) {
  const unsigned long long mine = g.gen.load(std::memory_order_relaxed);
  if (++g.arrived == unsigned(std::popcount(g.mask & W.live))) {
    release_group_locked(L, W, g, g.arrived - 1);
    unlock_and_wake(lk);
  } else if (!wait_unlock(L, lk, W.gate, g.gen, mine)) {
    throw Abort{};
  }
}

// ----- leaving a block -----------------------------------------------------------------------

/// The calling thread has returned from the kernel: it leaves the block barrier and its warp
/// for the rest of the block, which may complete barriers the others wait at. Lock held.
void leave_block_locked(Launch& L) {
  --L.block_live;
  if (L.block_arrived > 0 && L.block_arrived == L.block_live)
    release_block_locked(L, L.block_arrived);
  Warp& W = L.warps[tls_tid / 32];
  W.live &= ~(1u << (tls_tid % 32));
  for (Group& g : W.groups)
    if (g.busy && g.arrived > 0 && g.arrived == unsigned(std::popcount(g.mask & W.live)))
      release_group_locked(L, W, g, g.arrived);
}

/// Fills every `__shared__` variable with 0xFF bytes (see cuda_emu.h).
void poison_shared_memory() {
  char* start = __start_cuemu_shared;
  char* stop = __stop_cuemu_shared;
  if (start && stop > start) std::memset(start, 0xff, size_t(stop - start));
}

/// State of a fresh block: every thread present, shared memory poisoned. Lock held (or no
/// thread running yet).
void reset_block_locked(Launch& L) {
  L.block_live = L.nthreads;
  L.block_arrived = 0;
  L.block_true = 0;
  for (unsigned w = 0; w < L.nwarps; ++w) {
    Warp& W = L.warps[w];
    W.live = W.full;
    for (Group& g : W.groups) {
      g.busy = false;
      g.phase = 1;
      g.arrived = 0;
    }
  }
  poison_shared_memory();
}

/// The barrier between two blocks. The last thread to arrive resets the block state. False
/// if the launch was aborted.
bool between_blocks(Launch& L) {
  std::unique_lock<std::mutex> lk(L.mu);
  leave_block_locked(L);
  if (L.aborted) {
    unlock_and_wake(lk);
    return false;
  }
  const unsigned long long mine = L.between_gen.load(std::memory_order_relaxed);
  if (++L.between_arrived == L.nthreads) {
    ++L.block_no;
    reset_block_locked(L);
    L.between_arrived = 0;
    L.blocked -= L.nthreads - 1;
    L.between_gen.fetch_add(1, std::memory_order_release);
    wake_later(L.between_gate);
    unlock_and_wake(lk);
    return true;
  }
  return wait_unlock(L, lk, L.between_gate, L.between_gen, mine);
}

// ----- the threads ---------------------------------------------------------------------------

/// CUDA thread `tid` of launch `L`, through every block.
void run_thread(Launch& L, unsigned tid) {
  tls_launch = &L;
  tls_tid = tid;
  tls_lane = tid % 32;
  tls_nwake = 0;
  threadIdx = uint3{tid % L.block.x, tid / L.block.x % L.block.y, tid / (L.block.x * L.block.y)};
  for (unsigned long long b = 0; b < L.nblocks; ++b) {
    blockIdx = block_coords(L, b);
    try {
      L.kernel->entry(L.params);
    } catch (const Abort&) {
      // the launch is aborted; leave the block like any other thread
    } catch (abi::__forced_unwind&) {
      throw;  // thread cancellation must unwind
    } catch (const std::exception& e) {
      std::lock_guard<std::mutex> lk(L.mu);
      abort_locked(L, where() + ": exception: " + e.what());
    } catch (...) {
      std::lock_guard<std::mutex> lk(L.mu);
      abort_locked(L, where() + ": unknown exception");
    }
    if (!between_blocks(L)) break;
  }
}

// ----- the worker pool -----------------------------------------------------------------------

/// The worker threads, kept for the life of the process (launches are serialised, so one
/// launch at a time uses them). Worker t sleeps on its `go` word; a launch sets `launch`, bumps
/// the words of workers 0 .. nthreads-1 and sleeps on `done` until the last of them finishes.
struct Pool {
  struct Worker {
    std::atomic<uint32_t> go{0};
  };
  std::vector<std::unique_ptr<Worker>> workers;
  Launch* launch = nullptr;
  std::atomic<unsigned> remaining{0};  // workers of the current launch still running
  std::atomic<uint32_t> done{0};       // bumped when a launch's last worker finishes
};

/// Never destroyed: the workers sleep in it until the process exits.
Pool& pool() {
  static Pool* p = new Pool;
  return *p;
}

struct WorkerArg {
  unsigned tid;
  Pool::Worker* worker;  // not read from P.workers, which the creating thread is growing
};

void* worker_main(void* p) {
  const WorkerArg arg = *static_cast<WorkerArg*>(p);
  delete static_cast<WorkerArg*>(p);
  const unsigned tid = arg.tid;
  Pool::Worker& me = *arg.worker;
  Pool& P = pool();
  uint32_t seen = 0;
  for (;;) {
    uint32_t go;
    while ((go = me.go.load(std::memory_order_acquire)) == seen) futex_wait(me.go, seen);
    seen = go;
    run_thread(*P.launch, tid);
    // The launch's data (and every kernel write) is published by this release; the last
    // worker wakes the launcher.
    if (P.remaining.fetch_sub(1, std::memory_order_acq_rel) == 1) {
      P.done.fetch_add(1, std::memory_order_release);
      futex_wake(P.done, 1);
    }
  }
  return nullptr;
}

/// Grows the pool to `n` workers. Empty, or why a thread could not be created.
std::string grow_pool(unsigned n) {
  Pool& P = pool();
  if (P.workers.size() >= n) return {};
  pthread_attr_t attr;
  pthread_attr_init(&attr);
  pthread_attr_setstacksize(&attr, kStackBytes);
  pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
  std::string err;
  P.workers.reserve(n);
  while (P.workers.size() < n) {
    const unsigned tid = unsigned(P.workers.size());
    P.workers.push_back(std::make_unique<Pool::Worker>());
    pthread_t th;
    auto* arg = new WorkerArg{tid, P.workers.back().get()};
    const int rc = pthread_create(&th, &attr, worker_main, arg);
    if (rc != 0) {
      delete arg;
      P.workers.pop_back();
      err = format("could not create worker thread %u of %u: %s", tid + 1, n, strerror(rc));
      break;
    }
  }
  pthread_attr_destroy(&attr);
  return err;
}

/// Checks a launch configuration as the driver does (CUDA_ERROR_INVALID_VALUE), plus the
/// emulator's own requirement on warps. Empty when valid.
std::string check_config(const unsigned g[3], const unsigned b[3]) {
  const unsigned long long threads = (unsigned long long)b[0] * b[1] * b[2];
  const char* why = nullptr;
  std::string own;
  if (b[0] == 0 || b[1] == 0 || b[2] == 0) why = "a block dimension is 0";
  else if (b[0] > 1024 || b[1] > 1024) why = "block.x and block.y must be at most 1024";
  else if (b[2] > 64) why = "block.z must be at most 64";
  else if (threads > 1024) why = "more than 1024 threads per block";
  else if (g[0] == 0 || g[1] == 0 || g[2] == 0) why = "a grid dimension is 0";
  else if (g[0] > 0x7fffffffu) why = "grid.x must be at most 2^31 - 1";
  else if (g[1] > 65535 || g[2] > 65535) why = "grid.y and grid.z must be at most 65535";
  else if (threads > 32 && threads % 32 != 0) {
    own = format("the emulator needs a block of whole warps or of fewer than 32 threads, got %llu",
                 threads);
    why = own.c_str();
  }
  if (!why) return {};
  return format("invalid launch configuration: grid (%u,%u,%u) block (%u,%u,%u): %s", g[0], g[1],
                g[2], b[0], b[1], b[2], why);
}

void copy_error(const std::string& msg, char* err, size_t errlen) {
  if (!err || errlen == 0) return;
  const size_t n = msg.size() < errlen - 1 ? msg.size() : errlen - 1;
  std::memcpy(err, msg.data(), n);
  err[n] = 0;
}

}  // namespace

// ----- the runtime entry points of cuda_emu.h --------------------------------------------------

void failf(const char* fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  const std::string msg = vformat(fmt, ap);
  va_end(ap);
  Launch& L = *tls_launch;
  std::lock_guard<std::mutex> lk(L.mu);
  fail_locked(L, msg);
}

int block_sync(int op, int pred) {
  Launch& L = *tls_launch;
  std::unique_lock<std::mutex> lk(L.mu);
  if (L.aborted) throw Abort{};
  const unsigned long long mine = L.block_gen.load(std::memory_order_relaxed);
  L.block_true += pred != 0;
  if (++L.block_arrived == L.block_live) {
    release_block_locked(L, L.block_arrived - 1);
    unlock_and_wake(lk);
  } else if (!wait_unlock(L, lk, L.block_gate, L.block_gen, mine)) {
    throw Abort{};
  }
  // Written by the release; kept until the barrier after next, which needs this thread.
  const unsigned t = L.block_result_true[mine & 1], n = L.block_result_n[mine & 1];
  switch (op) {
    case 1: return int(t);
    case 2: return t == n;
    case 3: return t != 0;
    default: return 0;
  }
}

unsigned warp_exchange(unsigned mask, int op, unsigned long long value,
                       unsigned long long all[32]) {
  Launch& L = *tls_launch;
  std::unique_lock<std::mutex> lk(L.mu);
  if (L.aborted) throw Abort{};
  const unsigned lane = tls_tid % 32;
  Warp& W = L.warps[tls_tid / 32];
  if (!((mask >> lane) & 1u))
    fail_locked(L, format("warp intrinsic with mask 0x%08x, which does not include the calling "
                          "lane %u",
                          mask, lane));
  // Join the exchange of this mask that is collecting values, or open one.
  Group* g = nullptr;
  for (Group& c : W.groups)
    if (c.busy && c.phase == 1 && c.mask == mask) g = &c;
  if (!g) {
    for (Group& c : W.groups)
      if (!c.busy) {
        g = &c;
        break;
      }
    g->busy = true;
    g->phase = 1;
    g->mask = mask;
    g->op = op;
    g->arrived = 0;
  } else if (g->op != op) {
    fail_locked(L, format("lanes of mask 0x%08x meet in different warp intrinsics", mask));
  }
  W.slot[lane] = value;
  arrive_group_unlock(L, lk, W, *g);  // phase 1: every lane has written its value
  // The slots and took_part were written before phase 1 completed; no lane of this exchange
  // writes its slot again before phase 2 completes, and the group record stays busy.
  const unsigned took_part = g->took_part;
  for (unsigned l = 0; l < 32; ++l)
    if ((took_part >> l) & 1u) all[l] = W.slot[l];
  lk.lock();
  if (L.aborted) throw Abort{};
  arrive_group_unlock(L, lk, W, *g);  // phase 2: every lane has read; slots may be reused
  return took_part;
}

unsigned warp_live_mask() {
  Launch& L = *tls_launch;
  std::lock_guard<std::mutex> lk(L.mu);
  return L.warps[tls_tid / 32].live;
}

}  // namespace cuemu

/// Runs one launch of `k` to completion. Returns 0, or 1 with a message in `err`.
extern "C" int cuemu_launch(const cuemu_kernel* k, const unsigned grid[3], const unsigned block[3],
                            void** params, char* err, size_t errlen) {
  using namespace cuemu;
  std::string bad = check_config(grid, block);
  if (!bad.empty()) {
    copy_error(bad, err, errlen);
    return 1;
  }
  // blockDim, gridDim, the shared-memory statics and the worker pool are process-wide: one
  // launch at a time (the Rust side serialises launches too; this keeps the C++ self-contained).
  static std::mutex one_launch;
  std::lock_guard<std::mutex> one(one_launch);
  const unsigned nthreads = block[0] * block[1] * block[2];
  const std::string no_threads = grow_pool(nthreads);
  if (!no_threads.empty()) {
    copy_error(std::string("kernel ") + k->name + ": " + no_threads, err, errlen);
    return 1;
  }

  Launch L;
  L.kernel = k;
  L.params = params;
  L.grid = dim3(grid[0], grid[1], grid[2]);
  L.block = dim3(block[0], block[1], block[2]);
  L.nthreads = nthreads;
  L.nblocks = (unsigned long long)grid[0] * grid[1] * grid[2];
  L.nwarps = (L.nthreads + 31) / 32;
  L.warps.reset(new Warp[L.nwarps]);
  for (unsigned w = 0; w < L.nwarps; ++w) {
    const unsigned lanes = L.nthreads - 32 * w < 32 ? L.nthreads - 32 * w : 32;
    L.warps[w].full = lanes == 32 ? 0xffffffffu : (1u << lanes) - 1;
  }
  blockDim = L.block;
  gridDim = L.grid;
  reset_block_locked(L);

  // Start workers 0 .. nthreads-1 and wait until the last one has finished the last block.
  Pool& P = pool();
  P.launch = &L;
  P.remaining.store(L.nthreads, std::memory_order_relaxed);
  const uint32_t done = P.done.load(std::memory_order_relaxed);
  for (unsigned t = 0; t < L.nthreads; ++t) {
    P.workers[t]->go.fetch_add(1, std::memory_order_release);
    futex_wake(P.workers[t]->go, 1);
  }
  while (P.done.load(std::memory_order_acquire) == done) futex_wait(P.done, done);
  if (L.aborted) {
    copy_error(std::string("kernel ") + k->name + ": " + L.message, err, errlen);
    return 1;
  }
  return 0;
}
