//! Compact corpus storage for `similarityMatrix` and `topK` (API.md §1, optional storage types):
//! IEEE half precision (f16), bfloat16 (bf16) and 8-bit integers with a scale (i8: value =
//! q · scale, one scale for the matrix or one per row).
//!
//! A corpus row means exactly its decoded float32 value, so every result equals the float32
//! function applied to the decoded corpus. The search code is the float32 corpus's own
//! (`similarity::Batch`, its tiles scored by `similarity::Search`): each tile or piece of corpus
//! rows is decoded (`densevec_kernels::f16`: F16C on x86 when the active ISA is a SIMD one) into a
//! per-task float32 buffer, so the decoded corpus is never held whole.

use crate::bail;
use crate::error::{check_rows, Result};
use crate::similarity::{Batch, Metric};
use crate::topk::{Select, TopK};
use crate::view::check_shape;

/// Scale of an i8 corpus.
#[derive(Clone, Copy, Debug)]
pub enum I8Scale<'a> {
    /// One scale for every value.
    Global(f32),
    /// One scale per row.
    Rows(&'a [f32]),
}

/// A corpus in any storage type (row-major, rows × cols values): float32, or compact.
#[derive(Clone, Copy, Debug)]
pub enum Corpus<'a> {
    F32(&'a [f32]),
    F16(&'a [u16]),
    Bf16(&'a [u16]),
    I8 { data: &'a [i8], scale: I8Scale<'a> },
}

use densevec_kernels::f16::f16_decode;
pub use densevec_kernels::f16::f16_to_f32;

/// f32 → f16 bits, round to nearest even; overflow to ±∞, NaN stays NaN.
pub fn f32_to_f16(x: f32) -> u16 {
    let b = x.to_bits();
    let sign = ((b >> 16) & 0x8000) as u16;
    let exp = ((b >> 23) & 0xff) as i32;
    let man = b & 0x7f_ffff;
    if exp == 255 {
        return sign | 0x7c00 | if man != 0 { 0x200 } else { 0 };
    }
    let e = exp - 127 + 15;
    if e >= 31 {
        return sign | 0x7c00;
    }
    if e <= 0 {
        // subnormal or zero in f16: value = m · 2^-24
        if e < -10 {
            return sign;
        }
        let m = man | 0x80_0000;
        let shift = (14 - e) as u32; // 24-bit mantissa down to the subnormal grid
        let half = 1u32 << (shift - 1);
        let rest = m & ((1u32 << shift) - 1);
        let mut r = m >> shift;
        if rest > half || (rest == half && (r & 1) == 1) {
            r += 1;
        }
        return sign | r as u16;
    }
    let mut r = ((e as u32) << 10) | (man >> 13);
    let rest = man & 0x1fff;
    if rest > 0x1000 || (rest == 0x1000 && (r & 1) == 1) {
        r += 1; // may carry into the exponent, up to infinity: still correct
    }
    sign | r as u16
}

/// bf16 bits → f32 (exact).
#[inline]
pub fn bf16_to_f32(h: u16) -> f32 {
    f32::from_bits((h as u32) << 16)
}

/// f32 → bf16 bits, round to nearest even; NaN stays NaN.
pub fn f32_to_bf16(x: f32) -> u16 {
    let b = x.to_bits();
    if x.is_nan() {
        return ((b >> 16) | 0x40) as u16;
    }
    let round = 0x7fff + ((b >> 16) & 1);
    (b.wrapping_add(round) >> 16) as u16
}

impl Corpus<'_> {
    /// Stored values.
    pub fn len(&self) -> usize {
        match self {
            Corpus::F32(d) => d.len(),
            Corpus::F16(d) | Corpus::Bf16(d) => d.len(),
            Corpus::I8 { data, .. } => data.len(),
        }
    }

    /// Whether no value is stored.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Decodes rows `j0 .. j0 + rows` into `out` (rows × cols float32).
    pub fn decode(&self, j0: usize, rows: usize, cols: usize, out: &mut [f32]) {
        let (a, b) = (j0 * cols, (j0 + rows) * cols);
        let out = &mut out[..rows * cols];
        match self {
            Corpus::F32(d) => out.copy_from_slice(&d[a..b]),
            Corpus::F16(d) => f16_decode(&d[a..b], out),
            Corpus::Bf16(d) => {
                for (o, &h) in out.iter_mut().zip(&d[a..b]) {
                    *o = bf16_to_f32(h);
                }
            }
            Corpus::I8 { data, scale } => match scale {
                I8Scale::Global(s) => {
                    for (o, &v) in out.iter_mut().zip(&data[a..b]) {
                        *o = v as f32 * s;
                    }
                }
                I8Scale::Rows(sc) => {
                    for (r, (orow, drow)) in out
                        .chunks_exact_mut(cols)
                        .zip(data[a..b].chunks_exact(cols))
                        .enumerate()
                    {
                        let s = sc[j0 + r];
                        for (o, &v) in orow.iter_mut().zip(drow) {
                            *o = v as f32 * s;
                        }
                    }
                }
            },
        }
    }
}

impl Corpus<'_> {
    /// Rows `j0 .. j0 + rows` as float32: the slice itself for a float32 corpus, else decoded
    /// into `buf`.
    pub(crate) fn rows<'b>(
        &'b self,
        j0: usize,
        rows: usize,
        cols: usize,
        buf: &'b mut Vec<f32>,
    ) -> &'b [f32] {
        if let Corpus::F32(d) = self {
            return &d[j0 * cols..(j0 + rows) * cols];
        }
        buf.resize(rows * cols, 0.0);
        self.decode(j0, rows, cols, buf);
        buf
    }
}

/// Checks a compact corpus: its length against rows × cols, non-empty, and the i8 scales
/// (one per row when per-row; finite and ≥ 0).
pub fn check_corpus(func: &str, c: &Corpus, rows: usize, cols: usize) -> Result<()> {
    check_shape(func, "c", c.len(), rows, cols)?;
    if let Corpus::I8 { scale, .. } = c {
        match scale {
            I8Scale::Global(s) => {
                if !s.is_finite() || *s < 0.0 {
                    bail!(Arg, "{func}: c.scale must be finite and >= 0, got {s}");
                }
            }
            I8Scale::Rows(sc) => {
                check_rows(func, "c.scale", sc.len(), "c", rows)?;
                if let Some(i) = sc.iter().position(|s| !s.is_finite() || *s < 0.0) {
                    bail!(
                        Arg,
                        "{func}: c.scale[{i}] must be finite and >= 0, got {}",
                        sc[i]
                    );
                }
            }
        }
    }
    Ok(())
}

/// `similarity_matrix` with a compact corpus: q.rows × c.rows, identical to the float32
/// function on the decoded corpus.
pub fn similarity_matrix_q(
    q: &[f32],
    q_rows: usize,
    c: &Corpus,
    c_rows: usize,
    cols: usize,
    metric: Metric,
) -> Result<Vec<f32>> {
    Batch::new(q, q_rows, *c, c_rows, cols, metric).similarity()
}

/// [`similarity_matrix_q`] written into `out` (q.rows × c.rows values).
pub fn similarity_matrix_q_into(
    q: &[f32],
    q_rows: usize,
    c: &Corpus,
    c_rows: usize,
    cols: usize,
    metric: Metric,
    out: &mut [f32],
) -> Result<()> {
    Batch::new(q, q_rows, *c, c_rows, cols, metric).similarity_into(out)
}

/// `top_k` with a compact corpus: identical to the float32 function on the decoded corpus
/// (best first, ties by the lower index, NaN last).
pub fn top_k_q(
    q: &[f32],
    q_rows: usize,
    c: &Corpus,
    c_rows: usize,
    cols: usize,
    kk: usize,
    metric: Metric,
) -> Result<TopK> {
    Batch::new(q, q_rows, *c, c_rows, cols, metric).top_k(kk, Select::ALL)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::similarity::similarity_matrix;
    use crate::topk::top_k;

    #[test]
    fn f16_round_trips_and_rounds_to_nearest_even() {
        for h in 0..=u16::MAX {
            let x = f16_to_f32(h);
            if x.is_nan() {
                assert!(f16_to_f32(f32_to_f16(x)).is_nan());
            } else {
                assert_eq!(f32_to_f16(x), h, "{h:#x} {x}");
            }
        }
        assert_eq!(f32_to_f16(65520.0), 0x7c00); // rounds up to infinity
        assert_eq!(f32_to_f16(65519.0), 0x7bff);
        assert_eq!(f32_to_f16(1.0 + 1.0 / 2048.0), 0x3c00); // tie to even
        assert_eq!(f32_to_f16(1.0 + 3.0 / 2048.0), 0x3c02);
        assert_eq!(f32_to_f16(2.0f32.powi(-25)), 0); // half the smallest subnormal: to even (0)
        assert_eq!(f32_to_f16(2.0f32.powi(-25) * 1.5), 1);
        let src: Vec<u16> = (0..=u16::MAX).collect();
        let mut out = vec![0f32; src.len()];
        f16_decode(&src, &mut out);
        for (&h, &o) in src.iter().zip(&out) {
            let w = f16_to_f32(h);
            assert!(
                o.to_bits() == w.to_bits() || (o.is_nan() && w.is_nan()),
                "{h:#x}"
            );
        }
    }

    #[test]
    fn bf16_round_trips_and_rounds_to_nearest_even() {
        for h in 0..=u16::MAX {
            let x = bf16_to_f32(h);
            if !x.is_nan() {
                assert_eq!(f32_to_bf16(x), h);
            }
        }
        assert_eq!(f32_to_bf16(f32::from_bits(0x3f80_8000)), 0x3f80); // tie to even
        assert_eq!(f32_to_bf16(f32::from_bits(0x3f81_8000)), 0x3f82);
        assert!(bf16_to_f32(f32_to_bf16(f32::NAN)).is_nan());
    }

    #[test]
    fn compact_corpora_score_like_their_decoded_float32() {
        let (m, n, d) = (7, 2 * 1536 + 37, 19); // spans three top-k pieces of 1536 rows
        let q: Vec<f32> = (0..m * d)
            .map(|i| ((i * 7919) % 113) as f32 / 56.0 - 1.0)
            .collect();
        let raw: Vec<f32> = (0..n * d)
            .map(|i| ((i * 104_729) % 127) as f32 / 63.0 - 1.0)
            .collect();
        let h16: Vec<u16> = raw.iter().map(|&x| f32_to_f16(x)).collect();
        let hb: Vec<u16> = raw.iter().map(|&x| f32_to_bf16(x)).collect();
        let i8d: Vec<i8> = raw.iter().map(|&x| (x * 127.0).round() as i8).collect();
        let scales: Vec<f32> = (0..n).map(|j| 1.0 / (127.0 + j as f32)).collect();
        let corpora = [
            Corpus::F16(&h16),
            Corpus::Bf16(&hb),
            Corpus::I8 {
                data: &i8d,
                scale: I8Scale::Global(1.0 / 127.0),
            },
            Corpus::I8 {
                data: &i8d,
                scale: I8Scale::Rows(&scales),
            },
        ];
        for c in &corpora {
            let mut dec = vec![0f32; n * d];
            c.decode(0, n, d, &mut dec);
            for metric in [Metric::Dot, Metric::Cosine, Metric::L2sq] {
                let want = similarity_matrix(&q, m, &dec, n, d, metric).unwrap();
                let got = similarity_matrix_q(&q, m, c, n, d, metric).unwrap();
                assert_eq!(got, want, "{c:?} {metric:?}");
                let want = top_k(&q, m, &dec, n, d, 9, metric).unwrap();
                let got = top_k_q(&q, m, c, n, d, 9, metric).unwrap();
                assert_eq!(got.indices, want.indices);
                assert_eq!(got.scores, want.scores);
            }
        }
    }

    #[test]
    fn compact_corpus_errors() {
        let q = [1f32, 2.0];
        let c = [0u16; 4];
        let e = similarity_matrix_q(&q, 1, &Corpus::F16(&c[..3]), 2, 2, Metric::Dot).unwrap_err();
        assert_eq!(e.code, crate::Code::Shape);
        let d = [1i8; 4];
        let bad = Corpus::I8 {
            data: &d,
            scale: I8Scale::Rows(&[1.0]),
        };
        assert_eq!(
            top_k_q(&q, 1, &bad, 2, 2, 1, Metric::Dot).unwrap_err().code,
            crate::Code::Shape
        );
        let bad = Corpus::I8 {
            data: &d,
            scale: I8Scale::Global(f32::NAN),
        };
        assert_eq!(
            top_k_q(&q, 1, &bad, 2, 2, 1, Metric::Dot).unwrap_err().code,
            crate::Code::Arg
        );
        let ok = Corpus::F16(&c);
        assert_eq!(
            top_k_q(&q, 1, &ok, 2, 2, 3, Metric::Dot).unwrap_err().code,
            crate::Code::Arg
        );
    }
}
