//! The worker pool. Work is always cut into pieces whose boundaries do not depend on the
//! number of threads, and reductions combine pieces in index order, so results are identical
//! for every thread count.

use rayon::prelude::*;
use std::sync::{Arc, OnceLock, RwLock};

fn default_threads() -> usize {
    std::env::var("DENSEVEC_THREADS")
        .ok()
        .and_then(|v| v.parse::<usize>().ok())
        .filter(|&n| n >= 1)
        .unwrap_or_else(|| {
            std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(1)
        })
}

fn build(n: usize) -> Option<Arc<rayon::ThreadPool>> {
    rayon::ThreadPoolBuilder::new()
        .num_threads(n)
        .thread_name(|i| format!("densevec-{i}"))
        .build()
        .ok()
        .map(Arc::new)
}

fn slot() -> &'static RwLock<(usize, Option<Arc<rayon::ThreadPool>>)> {
    static POOL: OnceLock<RwLock<(usize, Option<Arc<rayon::ThreadPool>>)>> = OnceLock::new();
    POOL.get_or_init(|| {
        let n = default_threads();
        RwLock::new((n, build(n)))
    })
}

/// Number of worker threads.
pub fn threads() -> usize {
    slot().read().map(|g| g.0).unwrap_or(1)
}

/// Replaces the pool with one of `n` threads (n ≥ 1).
pub fn set_threads(n: usize) -> Result<(), String> {
    if n == 0 {
        return Err("thread count must be at least 1".into());
    }
    let pool = build(n).ok_or_else(|| format!("could not start {n} threads"))?;
    let mut g = slot()
        .write()
        .map_err(|_| "thread pool lock poisoned".to_string())?;
    *g = (n, Some(pool));
    Ok(())
}

/// Runs `f` inside the pool (so rayon's parallel iterators inside use its threads).
pub fn run<R: Send>(f: impl FnOnce() -> R + Send) -> R {
    let pool = slot().read().ok().and_then(|g| g.1.clone());
    match pool {
        Some(p) => p.install(f),
        None => f(),
    }
}

/// Runs `f(first_row, block)` in the pool over the fixed blocks of `block_rows` rows of the
/// row-major `out` (rows of `width ≥ 1` values; the last block may be shorter).
pub fn par_row_blocks<T: Send>(
    out: &mut [T],
    width: usize,
    block_rows: usize,
    f: impl Fn(usize, &mut [T]) + Sync + Send,
) {
    run(|| {
        out.par_chunks_mut(block_rows * width)
            .enumerate()
            .for_each(|(b, c)| f(b * block_rows, c))
    })
}
