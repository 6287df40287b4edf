//! The bf16 GEMMs: the `vdpbf16ps` path (where the CPU has it) against the fallback on every
//! ISA and against a float64 reference on the rounded inputs, odd shapes, padded leading
//! dimensions, accumulation, NaN/∞ inputs, subnormal inputs, and independence from tiling.
//!
//! `isa::set` is process-global, so every test that forces an ISA holds `LOCK`.

use densevec_kernels::bf16::{self as b16, to_bf16_f32};
use densevec_kernels::{isa, GemmRef, Isa};
mod common;
use common::{lock, same_bits, Case, Rng};

/// The sums in the documented order, in float32: per k pair, the odd product then the even one,
/// each added with one rounding (the products of bf16 values are exact in float32).
fn order_ref(case: &Case, c: &mut [f32], ldc: usize, accumulate: bool) {
    for i in 0..case.m {
        for j in 0..case.n {
            let av = |p: usize| to_bf16_f32(case.a_at(i, p));
            let bv = |p: usize| to_bf16_f32(case.b_at(j, p));
            let mut s = if accumulate { c[i * ldc + j] } else { 0.0 };
            let mut p = 0;
            while p < case.kd {
                if p + 1 < case.kd {
                    s += av(p + 1) * bv(p + 1);
                }
                s += av(p) * bv(p);
                p += 2;
            }
            c[i * ldc + j] = s;
        }
    }
}

/// One case on the active ISA: result vs the order reference (bit for bit unless scalar) and
/// vs float64 (tolerance), padding columns of C untouched.
fn check(nt: bool, m: usize, n: usize, kd: usize, rng: &mut Rng, accumulate: bool) {
    let accumulate = accumulate && !nt;
    let case = Case::random(rng, nt, (m, n, kd), (3, if nt { 1 } else { 2 }));
    let ldc = n + 5;
    let c0: Vec<f32> = (0..m * ldc).map(|i| (i % 7) as f32 * 0.25 - 0.5).collect();
    let mut c = c0.clone();
    b16::gemm(case.op((&mut c, ldc)).accumulate(accumulate));
    let mut want = c0.clone();
    order_ref(&case, &mut want, ldc, accumulate);
    let exact = isa::active() != Isa::Scalar;
    let f = case.f64_ref(to_bf16_f32).0;
    for i in 0..m {
        for j in 0..ldc {
            let (g, w) = (c[i * ldc + j], want[i * ldc + j]);
            if j >= n {
                assert_eq!(g.to_bits(), c0[i * ldc + j].to_bits(), "padding touched");
                continue;
            }
            if exact {
                assert_eq!(
                    g.to_bits(),
                    w.to_bits(),
                    "{} nt={nt} {m}x{n}x{kd} acc={accumulate} ({i},{j}): {g} vs {w}",
                    b16::path_name()
                );
            }
            let base = if accumulate {
                c0[i * ldc + j] as f64
            } else {
                0.0
            };
            let tol = 1e-6 * (kd as f64 + 1.0) * 2.0 + 1e-6;
            assert!(
                (g as f64 - (base + f[i * n + j])).abs() <= tol,
                "nt={nt} {m}x{n}x{kd} ({i},{j}): {g} vs {}",
                base + f[i * n + j]
            );
        }
    }
}

fn shapes() -> Vec<(usize, usize, usize)> {
    vec![
        (1, 1, 1),
        (1, 1, 2),
        (3, 5, 7),
        (12, 32, 8),
        (13, 33, 9),
        (11, 31, 385),
        (25, 70, 384),
        (24, 64, 769),
        (37, 45, 1),
        (5, 3, 0),
        (150, 40, 50),
        (7, 2100, 33),
    ]
}

#[test]
fn every_path_follows_the_documented_order() {
    let _g = lock();
    let mut rng = Rng::new(7);
    for isa_now in isa::available() {
        isa::set(isa_now).unwrap();
        for &(m, n, kd) in &shapes() {
            for nt in [true, false] {
                for acc in [false, true] {
                    check(nt, m, n, kd, &mut rng, acc);
                }
            }
        }
    }
    isa::set(isa::detected()).unwrap();
}

#[test]
fn native_path_equals_fallback_bit_for_bit() {
    let _g = lock();
    isa::set(isa::detected()).unwrap();
    let native = b16::native_active();
    println!("bf16 path: {}", b16::path_name());
    let mut rng = Rng::new(11);
    for &(m, n, kd) in &[
        (29, 77, 768),
        (64, 96, 1001),
        (3, 4000, 130),
        (150, 2100, 401),
        // Several k blocks under the cache-derived blocking of a 1 MiB L2 (768 pairs and 168
        // rows per block, Zen 4): a short A packed whole (at most 1024 pairs), and several
        // blocks of A rows.
        (29, 77, 1901),
        (337, 70, 3001),
    ] {
        for nt in [true, false] {
            let case = Case::random(&mut rng, nt, (m, n, kd), (0, 0));
            let mut c1 = vec![0f32; m * n];
            let mut c2 = vec![1f32; m * n];
            b16::gemm(case.op((&mut c1, n)));
            let fallback = case.op((&mut c2, n));
            // SAFETY: the operands were checked against the shapes and are borrowed meanwhile.
            unsafe { b16::fallback(fallback.get()) };
            assert!(same_bits(&c1, &c2), "native={native}");
        }
    }
}

#[test]
fn forcing_a_lower_isa_uses_the_fallback() {
    let _g = lock();
    for isa_now in isa::available() {
        isa::set(isa_now).unwrap();
        let native = b16::native_active();
        assert_eq!(native, isa_now == Isa::Avx512 && b16::has_avx512_bf16());
        assert_eq!(
            b16::path_name(),
            if native { "avx512bf16" } else { "fallback" }
        );
    }
    isa::set(isa::detected()).unwrap();
}

#[test]
fn special_values() {
    let _g = lock();
    for isa_now in isa::available() {
        isa::set(isa_now).unwrap();
        // Row 0 of A holds NaN, row 1 +∞, row 2 a float32 subnormal and a value that rounds to
        // the largest finite bf16, row 3 ordinary values.
        let kd = 5;
        let a = vec![
            1.0,
            f32::NAN,
            1.0,
            1.0,
            1.0,
            f32::INFINITY,
            1.0,
            0.0,
            0.0,
            0.0,
            1.0e-39,
            3.0e38,
            0.0,
            0.0,
            0.0,
            0.5,
            0.25,
            -1.0,
            2.0,
            1.0 + 1.0 / 256.0,
        ];
        let b = vec![1.0f32, 1.0, 1.0, 1.0, 1.0, 0.0, 1.0, 0.0, 0.0, 0.0];
        let mut c = vec![0f32; 8];
        b16::gemm(GemmRef::nt(4, 2, kd, (&a, kd), (&b, kd), (&mut c, 2)));
        assert!(c[0].is_nan() && c[1].is_nan(), "{c:?}"); // NaN·1
        assert_eq!(c[2], f32::INFINITY); // ∞·1 + 1·1
        assert!(c[3].is_nan()); // ∞·0
                                // 3e38 rounds to the bf16 3.0037e38.
        assert_eq!(c[4], to_bf16_f32(3.0e38));
        assert_eq!(c[5], to_bf16_f32(3.0e38));
        assert_ne!(to_bf16_f32(3.0e38), 3.0e38);
        // 0.5 + 0.25 − 1 + 2 + round(1 + 2⁻⁸) = 1.75 + 1 (tie to even).
        assert_eq!(c[6], 2.75);
        assert_eq!(c[7], 0.25);
        // A float32 subnormal input counts as zero (1e-39·1e30 would be 1e-9 otherwise).
        let mut c = vec![5f32; 1];
        b16::gemm(GemmRef::nt(
            1,
            1,
            1,
            (&[1.0e-39], 1),
            (&[1.0e30], 1),
            (&mut c, 1),
        ));
        assert_eq!(c[0], 0.0);
        b16::gemm(GemmRef::nn(
            1,
            1,
            2,
            (&[1.0e-39, 1.0], 2),
            (&[1.0e30, 2.0], 1),
            (&mut c, 1),
        ));
        assert_eq!(c[0], 2.0);
    }
    isa::set(isa::detected()).unwrap();
}

#[test]
fn results_do_not_depend_on_tiling() {
    let _g = lock();
    isa::set(isa::detected()).unwrap();
    let mut rng = Rng::new(3);
    let case = Case::random(&mut rng, true, (50, 3000, 800), (0, 0));
    // Tiles of C computed separately (as threads would): same bits.
    let (whole, tiled) = case.whole_and_tiled(b16::gemm, &[0, 7, 31, 50], &[0, 33, 2049, 3000]);
    assert!(same_bits(&whole, &tiled));
}

/// The bf16 product from a transposed A equals the plain one on the explicitly transposed A,
/// bit for bit, on the native path and the fallback.
#[test]
fn tn_equals_nn_on_the_transposed_copy() {
    let _g = lock();
    isa::set(isa::detected()).unwrap();
    let mut rng = Rng::new(13);
    for &(m, n, kd) in &common::tn_shapes() {
        let case = Case::random(&mut rng, false, (m, n, kd), (3, 5));
        let (at, ld) = case.a_transposed(2);
        let (b, ldb) = (&case.b[..], case.ldb);
        for acc in [false, true] {
            let start: Vec<f32> = (0..m * n).map(|_| rng.f()).collect();
            let (mut c1, mut c2, mut c3) = (start.clone(), start.clone(), start);
            b16::gemm(case.op((&mut c1, n)).accumulate(acc));
            b16::gemm(GemmRef::tn(m, n, kd, (&at, ld), (b, ldb), (&mut c2, n)).accumulate(acc));
            let g = GemmRef::tn(m, n, kd, (&at, ld), (b, ldb), (&mut c3, n)).accumulate(acc);
            // SAFETY: the operands were checked against the shapes and are borrowed meanwhile.
            unsafe { b16::fallback(g.get()) };
            assert!(same_bits(&c1, &c2), "native {m}x{n}x{kd} acc={acc}");
            assert!(same_bits(&c1, &c3), "fallback {m}x{n}x{kd} acc={acc}");
        }
    }
}
