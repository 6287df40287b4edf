//! Column-major SGEMM with cuBLAS semantics (`cublasSgemm`):
//! C (m × n, ldc) = alpha · op(A) · op(B) + beta · C, op(A) m × k, op(B) k × n,
//! element (i, j) of a column-major X at X[i + j·ldX].
//!
//! Products are accumulated in f64 and rounded to f32 once (or, on an `Emu` built with
//! `with_f32_sums(true)`, summed one by one in f32). With `tf32` set (cublasGemmEx with
//! CUBLAS_COMPUTE_32F_FAST_TF32) every A and B element is first rounded to TF32 — 10 explicit
//! mantissa bits, to nearest, ties away from zero — as the tensor cores read them. As in the reference BLAS, C is not
//! read when beta = 0 (NaN in C does not propagate), and A and B are not read when alpha = 0 or
//! k = 0.

use crate::mem::Memory;
use densevec_cuda::dev::Sgemm;

/// The parameter checks of cublasSgemm (CUBLAS_STATUS_INVALID_VALUE), in its order.
pub(crate) fn validate(g: &Sgemm) -> Result<(), String> {
    let bad = |what: String| Err(format!("sgemm: CUBLAS_STATUS_INVALID_VALUE: {what}"));
    for (name, v) in [("m", g.m), ("n", g.n), ("k", g.k)] {
        if v < 0 {
            return bad(format!("{name} = {v} < 0"));
        }
    }
    // The rows of A as stored (k when transposed, else m), then of B (n, else k).
    for (ld_is, ld, transposed, if_t, if_n) in [
        ("lda", g.lda, g.transa, (g.k, "k, A transposed"), (g.m, "m")),
        ("ldb", g.ldb, g.transb, (g.n, "n, B transposed"), (g.k, "k")),
    ] {
        let (rows, rows_is) = if transposed { if_t } else { if_n };
        if ld < rows.max(1) {
            return bad(format!("{ld_is} = {ld} < max(1, {rows_is} = {rows})"));
        }
    }
    if g.ldc < g.m.max(1) {
        return bad(format!("ldc = {} < max(1, m = {})", g.ldc, g.m));
    }
    Ok(())
}

/// x rounded to TF32 (see the module note); infinities and NaN unchanged, no rounding up to
/// infinity.
pub fn tf32(x: f32) -> f32 {
    let u = x.to_bits();
    if u & 0x7f80_0000 == 0x7f80_0000 {
        return x;
    }
    let mut r = u.wrapping_add(0x1000) & 0xffff_e000;
    if r & 0x7f80_0000 == 0x7f80_0000 {
        r = u & 0xffff_e000;
    }
    f32::from_bits(r)
}

fn input(v: f32, tf32_inputs: bool) -> f64 {
    if tf32_inputs {
        tf32(v) as f64
    } else {
        v as f64
    }
}

/// Elements spanned by a column-major `rows × cols` matrix with leading dimension `ld`.
fn span(rows: usize, cols: usize, ld: usize) -> usize {
    if rows == 0 || cols == 0 {
        0
    } else {
        (cols - 1) * ld + rows
    }
}

/// Runs a validated GEMM on device memory, after checking that every operand it touches lies
/// inside one live allocation and is 4-byte aligned.
pub(crate) fn run(mem: &Memory, g: &Sgemm, f32_sums: bool) -> Result<(), String> {
    let (m, n, k) = (g.m as usize, g.n as usize, g.k as usize);
    let (lda, ldb, ldc) = (g.lda as usize, g.ldb as usize, g.ldc as usize);
    if m == 0 || n == 0 {
        return Ok(()); // cuBLAS returns at once
    }
    let reads_ab = g.alpha != 0.0 && k > 0;
    // Stored shapes: A is m × k (k × m when transposed), B is k × n (n × k when transposed).
    let (ar, ac) = if g.transa { (k, m) } else { (m, k) };
    let (br, bc) = if g.transb { (n, k) } else { (k, n) };
    let mut operands = vec![("C", g.c, span(m, n, ldc))];
    if reads_ab {
        operands.push(("A", g.a, span(ar, ac, lda)));
        operands.push(("B", g.b, span(br, bc, ldb)));
    }
    for (name, p, elems) in operands {
        if p % 4 != 0 {
            return Err(format!("sgemm: {name} (0x{p:x}) is not 4-byte aligned"));
        }
        mem.check_range(&format!("sgemm: operand {name}"), p, elems * 4)?;
    }

    // op(A) packed row by row and op(B) column by column, both as f64, so that every C
    // element is one contiguous dot product. Packing copies the operands before C is written,
    // so an operand overlapping C reads its old values.
    let (pa, pb) = if reads_ab {
        // SAFETY: ranges checked above; the allocations stay alive while `mem` is borrowed.
        let a = unsafe { std::slice::from_raw_parts(g.a as *const f32, span(ar, ac, lda)) };
        let b = unsafe { std::slice::from_raw_parts(g.b as *const f32, span(br, bc, ldb)) };
        // `outer` vectors of k values; element (o, l) at x[l + o·ld] when the k values of a
        // vector are contiguous, else at x[o + l·ld].
        let pack = |x: &[f32], outer: usize, ld: usize, k_contiguous: bool| -> Vec<f64> {
            let at = |o: usize, l: usize| if k_contiguous { l + o * ld } else { o + l * ld };
            (0..outer * k)
                .map(|t| input(x[at(t / k, t % k)], g.tf32))
                .collect()
        };
        (pack(a, m, lda, g.transa), pack(b, n, ldb, !g.transb))
    } else {
        (Vec::new(), Vec::new())
    };
    // SAFETY: range checked above; no other reference into C is alive (A and B were copied).
    let c = unsafe { std::slice::from_raw_parts_mut(g.c as *mut f32, span(m, n, ldc)) };
    let (alpha, beta) = (g.alpha as f64, g.beta as f64);
    for j in 0..n {
        let col = &mut c[j * ldc..j * ldc + m];
        let bj = if reads_ab {
            &pb[j * k..(j + 1) * k]
        } else {
            &[][..]
        };
        for (i, out) in col.iter_mut().enumerate() {
            let ab = if reads_ab {
                let ai = &pa[i * k..(i + 1) * k];
                if f32_sums {
                    // float32 products summed one by one in float32: a pessimistic model of
                    // device accumulation (cuBLAS and tensor cores sum in blocks)
                    let s = ai
                        .iter()
                        .zip(bj)
                        .fold(0f32, |s, (x, y)| s + (*x as f32) * (*y as f32));
                    alpha * s as f64
                } else {
                    alpha * ai.iter().zip(bj).map(|(x, y)| x * y).sum::<f64>()
                }
            } else {
                0.0
            };
            let old = if g.beta == 0.0 {
                0.0
            } else {
                beta * *out as f64
            };
            *out = (ab + old) as f32;
        }
    }
    Ok(())
}
