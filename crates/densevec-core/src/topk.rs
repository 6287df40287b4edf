//! Exact top-k fused with the blocked similarity: scores are produced tile by tile and fed to a
//! bounded heap per query, so the extra memory is O(q·k) per worker plus one tile; the full
//! q × n score table is never formed.

use crate::alloc;
use crate::bail;
use crate::error::{check_rows, Result};
use crate::pool;
use crate::quantized::Corpus;
use crate::similarity::{blocks, Batch, CBlock, Metric, Search, TileBufs, TILE_M, TILE_N};
use rayon::prelude::*;

/// One candidate: `key` is the score oriented so that larger is better (NaN → −∞, and a NaN
/// score ranks after a real −∞ key).
#[derive(Clone, Copy, Debug)]
struct Entry {
    key: f32,
    idx: u32,
    score: f32,
}

// SAFETY: every field is a plain number, so all-zero bits are a valid (empty) entry.
unsafe impl crate::alloc::Zeroable for Entry {}

/// The way out of a refused allocation of the per-query heaps or the result.
const KHINT: &str = "split the queries into batches";

/// `a` ranks before `b`: larger key, then a number before NaN, then lower index.
#[inline(always)]
fn better(a: &Entry, b: &Entry) -> bool {
    a.key > b.key
        || (a.key == b.key && {
            let (an, bn) = (a.score.is_nan(), b.score.is_nan());
            (!an && bn) || (an == bn && a.idx < b.idx)
        })
}

/// Bounded heaps (root = worst kept) for `q` queries.
#[derive(Clone)]
pub struct Heaps {
    k: usize,
    len: Vec<usize>,
    e: Vec<Entry>,
}

impl Heaps {
    /// Empty heaps; E_ARG (named after `func`) when q × k entries cannot be allocated.
    pub(crate) fn try_new(func: &str, q: usize, k: usize) -> Result<Self> {
        Ok(Heaps {
            k,
            len: alloc::try_vec(func, "the top-k heaps", q)?,
            e: alloc::try_mat(func, "the q.rows × k top-k heaps", q, k, KHINT)?,
        })
    }

    #[inline(always)]
    fn push(&mut self, qi: usize, cand: Entry) {
        let k = self.k;
        let h = &mut self.e[qi * k..qi * k + k];
        let n = self.len[qi];
        if n < k {
            // Sift up (the worst rises to the root).
            let mut i = n;
            h[i] = cand;
            while i > 0 {
                let p = (i - 1) / 2;
                if better(&h[p], &h[i]) {
                    h.swap(p, i);
                    i = p;
                } else {
                    break;
                }
            }
            self.len[qi] = n + 1;
        } else if better(&cand, &h[0]) {
            h[0] = cand;
            let mut i = 0;
            loop {
                let l = 2 * i + 1;
                if l >= k {
                    break;
                }
                let r = l + 1;
                let w = if r < k && better(&h[l], &h[r]) { r } else { l };
                if better(&h[i], &h[w]) {
                    h.swap(i, w);
                    i = w;
                } else {
                    break;
                }
            }
        }
    }

    /// Current admission threshold of query `qi`: a candidate with a smaller key cannot enter.
    #[inline(always)]
    fn floor(&self, qi: usize) -> f32 {
        if self.len[qi] < self.k {
            f32::NEG_INFINITY
        } else {
            self.e[qi * self.k].key
        }
    }

    pub(crate) fn merge(mut self, other: Heaps) -> Heaps {
        for qi in 0..self.len.len() {
            for j in 0..other.len[qi] {
                self.push(qi, other.e[qi * other.k + j]);
            }
        }
        self
    }
}

/// Result of [`top_k`]: `q × k` row-major indices and scores, best first per query.
#[derive(Clone, Debug)]
pub struct TopK {
    pub indices: Vec<u32>,
    pub scores: Vec<f32>,
}

/// Corpus rows per parallel piece.
const PIECE: usize = 4 * TILE_N;

/// The name in the messages of every top-k call.
const F: &str = "topK";

/// Exact top-k of each query row against the corpus rows under `metric`, best first (largest
/// dot/cosine, smallest l2sq), ties broken by lower index; NaN scores rank last.
pub fn top_k(
    q: &[f32],
    q_rows: usize,
    c: &[f32],
    c_rows: usize,
    cols: usize,
    kk: usize,
    metric: Metric,
) -> Result<TopK> {
    Batch::new(q, q_rows, Corpus::F32(c), c_rows, cols, metric).top_k(kk, Select::ALL)
}

/// Checks k against the corpus rows (E_ARG outside [1, c.rows]), and that row indices fit in
/// u32 (E_SHAPE); shared with the GPU backend so that both give the same errors.
pub fn check_k(func: &str, kk: usize, c_rows: usize) -> Result<()> {
    if kk < 1 || kk > c_rows {
        bail!(Arg, "{func}: k must be in [1, {c_rows}] (c.rows), got {kk}");
    }
    if c_rows > u32::MAX as usize {
        bail!(Shape, "{func}: c has {c_rows} rows, more than 2^32 - 1");
    }
    Ok(())
}

/// Exact top-k of each query of `b` over the corpus rows that `sel` admits (a corpus in any
/// storage type): like [`top_k`] (best first, ties by the lower index, NaN last), but query `i`
/// never returns `sel.skip[i]` nor a row `j` with `sel.mask[j] == 0`. Fewer than `kk` eligible
/// rows for a query → E_ARG.
pub fn top_k_filtered(b: Batch, kk: usize, sel: Select) -> Result<TopK> {
    b.top_k(kk, sel)
}

impl Batch<'_> {
    /// Checked top-k of the batch over the rows `sel` admits: parallel over fixed pieces of
    /// corpus rows (each taken as float32: a slice of a float32 corpus, or decoded into the
    /// task's buffer), heaps merged in a fixed order.
    pub(crate) fn top_k(&self, kk: usize, sel: Select) -> Result<TopK> {
        self.check(F)?;
        check_k(F, kk, self.c_rows)?;
        sel.check(F, self.q_rows, self.c_rows, kk)?;
        let (q_rows, c_rows) = (self.q_rows, self.c_rows);
        let new = || Heaps::try_new(F, q_rows, kk);
        let s = Search::new(*self);
        let scan = |heaps: Heaps, bufs: &mut TileBufs, tile: &mut Vec<f32>, j0: usize| {
            let (blk, scratch) = bufs.block(&s, j0..c_rows.min(j0 + PIECE));
            scan_block(&s, heaps, tile, &blk, sel, scratch)
        };
        let heaps = if c_rows <= PIECE {
            scan(new()?, &mut TileBufs::default(), &mut Vec::new(), 0)
        } else {
            let pieces: Vec<usize> = (0..c_rows).step_by(PIECE).collect();
            pool::run(|| {
                pieces
                    .par_iter()
                    .fold(
                        || new().map(|h| (h, TileBufs::default(), Vec::new())),
                        |st, &j0| {
                            st.map(|(h, mut b, mut t)| {
                                let h = scan(h, &mut b, &mut t, j0);
                                (h, b, t)
                            })
                        },
                    )
                    .map(|st| st.map(|(h, _, _)| h))
                    .reduce(new, |a, b| Ok(Heaps::merge(a?, b?)))
            })?
        };
        heaps.into_top_k(F, q_rows, kk)
    }
}

/// Row eligibility of a top-k call: `skip[i]` is one corpus row query `i` never returns
/// ([`SKIP_NONE`] = none); `mask[j] == 0` makes corpus row `j` ineligible for every query.
/// Both indexed globally (by corpus row, not block row).
#[derive(Clone, Copy, Debug, Default)]
pub struct Select<'a> {
    pub skip: Option<&'a [u32]>,
    pub mask: Option<&'a [u8]>,
}

/// The `skip` value that excludes nothing.
pub const SKIP_NONE: u32 = u32::MAX;

impl Select<'_> {
    /// No filter: every row is eligible.
    pub const ALL: Select<'static> = Select {
        skip: None,
        mask: None,
    };

    #[inline(always)]
    fn admits(&self, qi: usize, j: usize) -> bool {
        if let Some(s) = self.skip {
            if s[qi] as usize == j {
                return false;
            }
        }
        match self.mask {
            Some(m) => m[j] != 0,
            None => true,
        }
    }

    /// Checks lengths (E_SHAPE), skip values (E_ARG: a row index or `SKIP_NONE`) and that every
    /// query keeps at least `kk` eligible rows (E_ARG).
    pub fn check(&self, func: &str, q_rows: usize, c_rows: usize, kk: usize) -> Result<()> {
        if let Some(s) = self.skip {
            check_rows(func, "skip", s.len(), "q", q_rows)?;
        }
        if let Some(m) = self.mask {
            check_rows(func, "mask", m.len(), "c", c_rows)?;
        }
        if let Some(s) = self.skip {
            if let Some((i, &v)) = s
                .iter()
                .enumerate()
                .find(|(_, &v)| v != SKIP_NONE && v as usize >= c_rows)
            {
                bail!(
                    Arg,
                    "{func}: skip[{i}] = {v} is not a row of c (rows {c_rows}) nor 0xFFFFFFFF (none)"
                );
            }
        }
        let eligible = match self.mask {
            Some(m) => m.iter().filter(|&&x| x != 0).count(),
            None => c_rows,
        };
        for i in 0..q_rows {
            let mut n = eligible;
            if let Some(s) = self.skip {
                let j = s[i];
                if j != SKIP_NONE && self.mask.is_none_or(|m| m[j as usize] != 0) {
                    n -= 1;
                }
            }
            if n < kk {
                bail!(
                    Arg,
                    "{func}: query {i} has {n} eligible corpus row(s) after skip/mask, fewer than k = {kk}"
                );
            }
        }
        Ok(())
    }
}

/// Scores every query against a corpus block tile by tile ([`Search::score`]) and pushes the
/// candidates that `sel` admits into the heaps. A tile spans the whole block ([`PIECE`] rows at
/// most), so the queries are packed for the GEMM once per block and its prefetch of the next
/// corpus rows runs across the whole block.
fn scan_block(
    s: &Search,
    mut heaps: Heaps,
    tile: &mut Vec<f32>,
    blk: &CBlock,
    sel: Select,
    scratch: &mut Vec<f32>,
) -> Heaps {
    let larger = s.b.metric.larger_is_better();
    tile.resize(TILE_M * PIECE, 0.0);
    for qr in blocks(s.b.q_rows, TILE_M) {
        for cr in blocks(blk.rows, PIECE) {
            let sub = blk.sub(cr, s.b.cols);
            // SAFETY: the tile buffer holds TILE_M × PIECE values; q and the block hold these
            // rows.
            unsafe { s.score(qr.clone(), &sub, (tile.as_mut_ptr(), PIECE), scratch) };
            for (i, qi) in qr.clone().enumerate() {
                let row = &tile[i * PIECE..i * PIECE + sub.rows];
                let mut floor = heaps.floor(qi);
                for (c, chunk) in row.chunks(SKIM).enumerate() {
                    // Once the heap is full, most chunks hold no score that reaches its floor:
                    // one branch-free pass skips them (NaN compares false, and its key, −∞,
                    // is below a full heap's floor).
                    if floor > f32::NEG_INFINITY && !reaches(chunk, floor, larger) {
                        continue;
                    }
                    for (jj, &s) in chunk.iter().enumerate() {
                        let key = if s.is_nan() {
                            f32::NEG_INFINITY
                        } else if larger {
                            s
                        } else {
                            -s
                        };
                        if key < floor {
                            continue;
                        }
                        let j = sub.j0 + c * SKIM + jj;
                        if !sel.admits(qi, j) {
                            continue;
                        }
                        heaps.push(
                            qi,
                            Entry {
                                key,
                                idx: j as u32,
                                score: s,
                            },
                        );
                        floor = heaps.floor(qi);
                    }
                }
            }
        }
    }
    heaps
}

/// Scores per chunk of a row tested at once against the floor.
const SKIM: usize = 32;

/// Whether any score of `chunk` has a key (the score, or its negation when smaller is better)
/// at or above `floor`.
#[inline(always)]
fn reaches(chunk: &[f32], floor: f32, larger: bool) -> bool {
    if larger {
        chunk.iter().fold(false, |any, &s| any | (s >= floor))
    } else {
        chunk.iter().fold(false, |any, &s| any | (-s >= floor))
    }
}

impl Heaps {
    /// The kept candidates of every query, best first.
    pub(crate) fn into_top_k(self, func: &str, q_rows: usize, kk: usize) -> Result<TopK> {
        let heaps = self;
        let mut indices = alloc::try_mat(func, "the q.rows × k indices", q_rows, kk, KHINT)?;
        let mut scores = alloc::try_mat(func, "the q.rows × k scores", q_rows, kk, KHINT)?;
        for qi in 0..q_rows {
            let mut v: Vec<Entry> = heaps.e[qi * kk..qi * kk + heaps.len[qi]].to_vec();
            v.sort_by(|a, b| {
                if better(a, b) {
                    std::cmp::Ordering::Less
                } else {
                    std::cmp::Ordering::Greater
                }
            });
            for (j, e) in v.iter().enumerate() {
                indices[qi * kk + j] = e.idx;
                scores[qi * kk + j] = e.score;
            }
        }
        Ok(TopK { indices, scores })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nan_ranks_after_every_number() {
        // One query row against rows whose dot products are 1, −∞, NaN, 5, −∞, NaN.
        let q = [1.0f32, 0.0];
        let c = [
            1.0,
            0.0,
            f32::NEG_INFINITY,
            0.0,
            f32::NAN,
            0.0,
            5.0,
            0.0,
            f32::NEG_INFINITY,
            0.0,
            f32::NAN,
            0.0,
        ];
        for kk in 1..=6 {
            let r = top_k(&q, 1, &c, 6, 2, kk, Metric::Dot).unwrap();
            assert_eq!(r.indices, [3, 0, 1, 4, 2, 5][..kk].to_vec(), "k = {kk}");
        }
        // l2sq: +∞ distances rank before NaN, and NaN last.
        let c2 = [
            f32::NAN,
            0.0,
            f32::INFINITY,
            0.0,
            2.0,
            0.0,
            f32::NEG_INFINITY,
            0.0,
        ];
        let r = top_k(&q, 1, &c2, 4, 2, 4, Metric::L2sq).unwrap();
        assert_eq!(r.indices, vec![2, 1, 3, 0]);
    }

    /// Against a full sort of the similarity matrix's scores: corpora spanning several pieces
    /// and partial skim chunks, many tied scores (integer-valued rows), NaN rows, every metric,
    /// k from 1 to past a chunk, with and without a row mask and per-query skips.
    #[test]
    fn matches_a_full_sort_across_pieces_and_chunks() {
        let (q_rows, d) = (5usize, 7usize);
        let n = 2 * PIECE + SKIM + 5;
        let mut s = 12345u32;
        let mut next = || {
            s ^= s << 13;
            s ^= s >> 17;
            s ^= s << 5;
            s
        };
        let q: Vec<f32> = (0..q_rows * d).map(|_| (next() % 5) as f32 - 2.0).collect();
        let mut c: Vec<f32> = (0..n * d).map(|_| (next() % 5) as f32 - 2.0).collect();
        for r in [3, PIECE - 1, PIECE + 40, n - 1] {
            c[r * d + 2] = f32::NAN;
        }
        let mask: Vec<u8> = (0..n).map(|j| (j % 7 != 3) as u8).collect();
        let skip: Vec<u32> = (0..q_rows as u32).map(|i| i * 97).collect();
        for metric in [Metric::Dot, Metric::Cosine, Metric::L2sq] {
            let sm = crate::similarity::similarity_matrix(&q, q_rows, &c, n, d, metric).unwrap();
            for kk in [1, 10, SKIM + 3] {
                for filtered in [false, true] {
                    let sel = if filtered {
                        Select {
                            skip: Some(&skip),
                            mask: Some(&mask),
                        }
                    } else {
                        Select::ALL
                    };
                    let b = Batch::new(&q, q_rows, Corpus::F32(&c), n, d, metric);
                    let r = top_k_filtered(b, kk, sel).unwrap();
                    for qi in 0..q_rows {
                        let mut want: Vec<Entry> = (0..n)
                            .filter(|&j| sel.admits(qi, j))
                            .map(|j| {
                                let score = sm[qi * n + j];
                                let key = if score.is_nan() {
                                    f32::NEG_INFINITY
                                } else if metric.larger_is_better() {
                                    score
                                } else {
                                    -score
                                };
                                Entry {
                                    key,
                                    idx: j as u32,
                                    score,
                                }
                            })
                            .collect();
                        want.sort_by(|a, b| {
                            if better(a, b) {
                                std::cmp::Ordering::Less
                            } else if better(b, a) {
                                std::cmp::Ordering::Greater
                            } else {
                                std::cmp::Ordering::Equal
                            }
                        });
                        let idx: Vec<u32> = want[..kk].iter().map(|e| e.idx).collect();
                        assert_eq!(
                            r.indices[qi * kk..(qi + 1) * kk],
                            idx[..],
                            "{metric:?} k = {kk} filtered = {filtered} query {qi}"
                        );
                    }
                }
            }
        }
    }
}
