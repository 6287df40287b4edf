//! Every available ISA against the scalar (float64-accumulating) kernels: odd lengths, unaligned
//! starting offsets, NaN handling, exp accuracy, GEMM on odd shapes with padded leading
//! dimensions, and GEMM results independent of tiling.
//!
//! `isa::set` is process-global and the test harness runs tests on several threads, so every
//! test that forces an ISA holds `LOCK`.

use densevec_kernels as k;
use densevec_kernels::{isa, GemmRef, Isa};
mod common;
use common::{edges, lock, same_bits, Case, Rng};

fn lengths() -> Vec<usize> {
    let mut v: Vec<usize> = (0..=67).collect();
    v.extend_from_slice(&[768, 1031, 1536]);
    v
}

const OFFSETS: [usize; 3] = [0, 1, 3];
const EPS: f64 = f32::EPSILON as f64;

/// Runs `f` once per available SIMD ISA (scalar excluded), restoring the detected ISA after.
fn for_each_simd(mut f: impl FnMut(Isa)) -> usize {
    let _g = lock();
    let mut count = 0;
    for isa in isa::available() {
        if isa == Isa::Scalar {
            continue;
        }
        isa::set(isa).unwrap();
        assert_eq!(isa::active(), isa);
        f(isa);
        count += 1;
    }
    isa::set(isa::detected()).unwrap();
    count
}

/// Tolerance for a float32 sum of n terms whose absolute values sum to `abs`.
fn tol(n: usize, abs: f64) -> f64 {
    4.0 * EPS * ((n as f64).sqrt() + 1.0) * abs + 1e-30
}

fn close(got: f32, want: f64, n: usize, abs: f64, what: &str) {
    let err = (got as f64 - want).abs();
    assert!(
        err <= tol(n, abs),
        "{}: got {} want {} (err {:e}, tol {:e})",
        what,
        got,
        want,
        err,
        tol(n, abs)
    );
}

#[test]
fn detection_is_consistent() {
    let av = isa::available();
    assert_eq!(av[0], Isa::Scalar);
    assert!(av.contains(&isa::detected()));
    #[cfg(target_arch = "aarch64")]
    assert!(av.contains(&Isa::Neon), "NEON must be available on aarch64");
    #[cfg(target_arch = "x86_64")]
    assert!(!av.contains(&Isa::Neon));
}

#[test]
fn reductions_match_scalar() {
    let mut rng = Rng::new(1);
    let n_isa = for_each_simd(|isa| {
        for &n in &lengths() {
            for &off in &OFFSETS {
                let a = rng.vec(n + off);
                let b = rng.vec(n + off);
                let (a, b) = (&a[off..], &b[off..]);
                let what = |f: &str| format!("{} {} n={} off={}", isa.name(), f, n, off);
                let abs_ab: f64 = a
                    .iter()
                    .zip(b)
                    .map(|(x, y)| (*x as f64 * *y as f64).abs())
                    .sum();
                let aa: f64 = a.iter().map(|x| *x as f64 * *x as f64).sum();
                let bb: f64 = b.iter().map(|x| *x as f64 * *x as f64).sum();
                let ab: f64 = a.iter().zip(b).map(|(x, y)| *x as f64 * *y as f64).sum();
                let l2: f64 = a
                    .iter()
                    .zip(b)
                    .map(|(x, y)| (*x as f64 - *y as f64).powi(2))
                    .sum();
                close(k::dot(a, b), ab, n, abs_ab, &what("dot"));
                let (d, na, nb) = k::dot_norms(a, b);
                close(d, ab, n, abs_ab, &what("dot_norms.ab"));
                close(na, aa, n, aa, &what("dot_norms.aa"));
                close(nb, bb, n, bb, &what("dot_norms.bb"));
                close(k::l2sq(a, b), l2, n, l2, &what("l2sq"));
                close(k::sumsq(a), aa, n, aa, &what("sumsq"));
                // The scalar path is the float64 baseline: check that it is within tolerance too.
                close(k::scalar::dot(a, b), ab, n, abs_ab, &what("scalar dot"));
            }
        }
    });
    assert_eq!(n_isa + 1, isa::available().len());
}

#[test]
fn reductions_are_deterministic_per_length() {
    let mut rng = Rng::new(2);
    for_each_simd(|isa| {
        for &n in &lengths() {
            let a = rng.vec(n + 1);
            let b = rng.vec(n + 1);
            // Same values at another address: the result depends on the values and length only.
            let (a2, b2) = (a[1..].to_vec(), b[1..].to_vec());
            assert_eq!(
                k::dot(&a[1..], &b[1..]).to_bits(),
                k::dot(&a2, &b2).to_bits(),
                "{} n={}",
                isa.name(),
                n
            );
            assert_eq!(
                k::l2sq(&a[1..], &b[1..]).to_bits(),
                k::l2sq(&a2, &b2).to_bits()
            );
        }
    });
}

#[test]
fn scale_and_axpy_match_scalar() {
    let mut rng = Rng::new(3);
    for_each_simd(|isa| {
        for &n in &lengths() {
            for &off in &OFFSETS {
                let x = rng.vec(n + off);
                let y = rng.vec(n + off);
                let s = rng.f() * 3.0;
                // scale: one rounding per element, identical to scalar; the element before the
                // slice stays untouched.
                let mut got = x.clone();
                k::scale(&mut got[off..], s);
                let mut want = x.clone();
                k::scalar::scale(&mut want[off..], s);
                assert_eq!(got, want, "{} scale n={} off={}", isa.name(), n, off);
                // axpy: fused on SIMD paths, so within one rounding of each term.
                let mut got = y.clone();
                k::axpy(&mut got[off..], s, &x[off..]);
                assert_eq!(&got[..off], &y[..off]);
                for i in off..n + off {
                    let want = y[i] as f64 + s as f64 * x[i] as f64;
                    let err = (got[i] as f64 - want).abs();
                    let t = 2.0 * EPS * (y[i].abs() as f64 + (s * x[i]).abs() as f64);
                    assert!(
                        err <= t,
                        "{} axpy n={} i={}: {} vs {}",
                        isa.name(),
                        n,
                        i,
                        got[i],
                        want
                    );
                }
            }
        }
    });
}

#[test]
fn max_matches_scalar_and_propagates_nan() {
    let mut rng = Rng::new(4);
    for_each_simd(|isa| {
        for &n in &lengths() {
            for &off in &OFFSETS {
                let mut x = rng.vec(n + off);
                for v in x.iter_mut() {
                    *v -= 2.0; // all negative, so a zero padding lane would be wrong
                }
                let xs = &x[off..];
                assert_eq!(
                    k::max(xs),
                    k::scalar::max(xs),
                    "{} max n={} off={}",
                    isa.name(),
                    n,
                    off
                );
                if n == 0 {
                    assert_eq!(k::max(xs), f32::NEG_INFINITY);
                }
            }
            // One NaN at every position (first, middle, last, in the tail) → NaN.
            for pos in [0, n / 2, n.saturating_sub(1)] {
                if n == 0 {
                    break;
                }
                let mut x = rng.vec(n);
                x[pos] = f32::NAN;
                assert!(
                    k::max(&x).is_nan(),
                    "{} max NaN n={} pos={}",
                    isa.name(),
                    n,
                    pos
                );
                // With an infinity elsewhere the NaN still wins.
                if n > 1 {
                    x[(pos + 1) % n] = f32::INFINITY;
                    assert!(
                        k::max(&x).is_nan(),
                        "{} max NaN+inf n={} pos={}",
                        isa.name(),
                        n,
                        pos
                    );
                }
            }
            if n > 0 {
                let x = vec![f32::NEG_INFINITY; n];
                assert_eq!(k::max(&x), f32::NEG_INFINITY);
                let mut x = vec![-1.0f32; n];
                x[n - 1] = f32::INFINITY;
                assert_eq!(k::max(&x), f32::INFINITY);
            }
        }
    });
}

/// |got − exp(x)| within 2e-7 relative (normal results) or 2 subnormal steps.
fn exp_ok(got: f32, x: f32, shift: f32) -> bool {
    let want = ((x - shift) as f64).exp();
    if want.is_nan() {
        return got.is_nan();
    }
    if want > f32::MAX as f64 * (1.0 + EPS / 2.0) {
        return got == f32::INFINITY;
    }
    let err = (got as f64 - want).abs();
    err <= 2e-7 * want || err <= 2.0 * 1.401_298_5e-45
}

#[test]
fn exp_shift_sum_is_accurate() {
    let mut rng = Rng::new(5);
    for_each_simd(|isa| {
        for &n in &lengths() {
            for &off in &OFFSETS {
                for &spread in &[1.0f32, 20.0, 120.0] {
                    let x: Vec<f32> = (0..n + off).map(|_| rng.f() * spread).collect();
                    let shift = k::scalar::max(&x[off..]).max(-1e30);
                    let mut got = x.clone();
                    let s = k::exp_shift_sum(&mut got[off..], shift);
                    assert_eq!(&got[..off], &x[..off]);
                    let mut want = x.clone();
                    let ws = k::scalar::exp_shift_sum(&mut want[off..], shift);
                    for i in off..n + off {
                        assert!(
                            exp_ok(got[i], x[i], shift),
                            "{} exp n={} x={} shift={}: {} vs {}",
                            isa.name(),
                            n,
                            x[i],
                            shift,
                            got[i],
                            want[i]
                        );
                    }
                    // The sum is of the stored float32 values: within 1e-6 of the float64 sum.
                    assert!(
                        (s - ws).abs() <= 1e-6 * ws + 1e-300,
                        "{} sum n={}: {} vs {}",
                        isa.name(),
                        n,
                        s,
                        ws
                    );
                    let stored: f64 = got[off..].iter().map(|v| *v as f64).sum();
                    assert!((s - stored).abs() <= 1e-12 * stored.max(1e-300));
                }
            }
        }
        // Whole range incl. overflow, underflow, subnormals, infinities and NaN.
        let mut x: Vec<f32> = (0..=4000).map(|i| -110.0 + i as f32 * 0.05).collect();
        x.extend_from_slice(&[
            f32::INFINITY,
            f32::NEG_INFINITY,
            -1e30,
            1e30,
            88.7,
            88.8,
            -87.3,
            -103.9,
            -0.0,
        ]);
        let mut got = x.clone();
        let s = k::exp_shift_sum(&mut got, 0.0);
        assert!(s.is_infinite());
        for (g, v) in got.iter().zip(&x) {
            assert!(exp_ok(*g, *v, 0.0), "{} exp({}) = {}", isa.name(), v, g);
        }
        let mut y = vec![0.5f32, f32::NAN, 0.25];
        assert!(k::exp_shift_sum(&mut y, 0.0).is_nan());
        assert!(y[1].is_nan());
        assert!((y[0] as f64 - 0.5f64.exp()).abs() < 1e-6);
    });
}

#[test]
fn exp_is_the_same_bits_on_every_simd_isa() {
    // The whole range: overflow, underflow through the subnormals, ±∞, and values around
    // every power of two's boundary; odd length (the tail path too).
    let mut x: Vec<f32> = (0..=80_001)
        .map(|i| -110.0 + i as f32 * (200.0 / 80_001.0))
        .collect();
    x.extend_from_slice(&[
        f32::INFINITY,
        f32::NEG_INFINITY,
        -1e30,
        1e30,
        88.72,
        88.73,
        -87.33,
        -103.97,
        -0.0,
        0.0,
    ]);
    let mut rng = Rng::new(16);
    x.extend((0..4001).map(|_| rng.f() * 180.0 - 90.0));
    let mut outs: Vec<(String, Vec<f32>, f64)> = Vec::new();
    for_each_simd(|isa| {
        let mut y = x.clone();
        let s = k::exp_shift_sum(&mut y, 0.75);
        outs.push((isa.name().to_string(), y, s));
    });
    for w in outs.windows(2) {
        let ((a, ya, _), (b, yb, _)) = (&w[0], &w[1]);
        let bad = ya
            .iter()
            .zip(yb)
            .position(|(p, q)| p.to_bits() != q.to_bits());
        assert!(
            bad.is_none(),
            "exp differs between {} and {} at x = {}: {} vs {}",
            a,
            b,
            x[bad.unwrap()],
            ya[bad.unwrap()],
            yb[bad.unwrap()]
        );
    }
}

#[test]
fn fused_exp_kernels_equal_exp_shift_sum_then_the_elementwise_steps() {
    let mut rng = Rng::new(15);
    let check = |name: &str, rng: &mut Rng| {
        for &n in &lengths() {
            for &off in &OFFSETS {
                for &spread in &[1.0f32, 30.0, 120.0] {
                    let mut z: Vec<f32> = (0..n + off).map(|_| rng.f() * spread).collect();
                    // Excluded entries (−∞) and one of each edge where there is room.
                    if n > 4 {
                        z[off + 1] = f32::NEG_INFINITY;
                        z[off + n - 1] = f32::NEG_INFINITY;
                    }
                    let z = &z[off..];
                    let shift = k::scalar::max(z).max(-1e30);
                    let (sub, mul) = (rng.f().abs() * 1e-3, rng.f() * 0.01 + 0.02);
                    // The reference: exp_shift_sum's stored values, then − sub, then · mul.
                    let mut e = z.to_vec();
                    let se = k::exp_shift_sum(&mut e, shift);
                    let want: Vec<f32> = e.iter().map(|&v| (v - sub) * mul).collect();
                    let mut got = vec![7.0f32; n];
                    k::exp_shift_affine(z, &mut got, shift, sub, mul);
                    assert!(
                        same_bits(&got, &want),
                        "{} exp_shift_affine n={} off={}",
                        name,
                        n,
                        off
                    );
                    // The sums: Σe the same bits as exp_shift_sum's, Σe·z within float32
                    // rounding of each product (terms with e = 0 are 0).
                    let (s, sz) = k::exp_shift_sum_dot(z, shift);
                    assert_eq!(s.to_bits(), se.to_bits(), "{} Σe n={} off={}", name, n, off);
                    let terms = e.iter().zip(z).filter(|(e, _)| **e != 0.0);
                    let wz: f64 = terms.clone().map(|(e, v)| *e as f64 * *v as f64).sum();
                    let abs: f64 = terms.map(|(e, v)| (*e as f64 * *v as f64).abs()).sum();
                    assert!(sz.is_finite(), "{} Σe·z n={}: {}", name, n, sz);
                    assert!(
                        (sz - wz).abs() <= 2.0 * EPS * abs + 1e-300,
                        "{} Σe·z n={}: {} vs {}",
                        name,
                        n,
                        sz,
                        wz
                    );
                }
            }
        }
        // NaN propagates through both; infinite shifts give the IEEE results.
        let (s, sz) = k::exp_shift_sum_dot(&[0.5, f32::NAN, 0.25], 0.0);
        assert!(s.is_nan() && sz.is_nan(), "{} NaN", name);
        let mut out = [0f32; 3];
        k::exp_shift_affine(&[0.5, f32::NAN, -200.0], &mut out, 0.0, 0.0, 2.0);
        assert!(
            out[1].is_nan() && out[2] == 0.0 && (out[0] as f64 - 2.0 * 0.5f64.exp()).abs() < 1e-6,
            "{} {:?}",
            name,
            out
        );
    };
    let n_isa = for_each_simd(|isa| check(isa.name(), &mut rng));
    assert!(n_isa >= 1 || cfg!(not(any(target_arch = "x86_64", target_arch = "aarch64"))));
    // The scalar path: float64 throughout, so within float32 rounding of the SIMD results.
    let z: Vec<f32> = (0..1031).map(|_| rng.f() * 30.0).collect();
    let shift = k::scalar::max(&z);
    let (s, sz) = k::scalar::exp_shift_sum_dot(&z, shift);
    let (s2, sz2) = k::exp_shift_sum_dot(&z, shift);
    assert!((s - s2).abs() <= 1e-6 * s && (sz - sz2).abs() <= 1e-5 * (sz.abs() + s));
    let mut a = vec![0f32; z.len()];
    let mut b = vec![0f32; z.len()];
    k::scalar::exp_shift_affine(&z, &mut a, shift, 1e-4, 0.5);
    k::exp_shift_affine(&z, &mut b, shift, 1e-4, 0.5);
    for (x, y) in a.iter().zip(&b) {
        assert!((x - y).abs() <= 4e-7 * x.abs().max(1e-4), "{} vs {}", x, y);
    }
}

const SENTINEL: f32 = 12345.5;

fn check_gemm(isa: Isa, nt: bool, m: usize, n: usize, kd: usize, rng: &mut Rng, accumulate: bool) {
    let case = Case::random(rng, nt, (m, n, kd), (3, 5));
    let ldc = n + 2;
    let c0: Vec<f32> = (0..m * ldc)
        .map(|i| if i % ldc < n { rng.f() } else { SENTINEL })
        .collect();
    let mut c = c0.clone();
    k::gemm(case.op((&mut c, ldc)).accumulate(accumulate));
    let (want, abs) = case.f64_ref(|x| x);
    for i in 0..m {
        for j in 0..ldc {
            let got = c[i * ldc + j];
            if j >= n {
                assert_eq!(
                    got,
                    SENTINEL,
                    "{} wrote outside C at ({}, {})",
                    isa.name(),
                    i,
                    j
                );
                continue;
            }
            let base = if accumulate {
                c0[i * ldc + j] as f64
            } else {
                0.0
            };
            let w = base + want[i * n + j];
            let t = tol(kd + 1, abs[i * n + j] + base.abs());
            assert!(
                (got as f64 - w).abs() <= t,
                "{} gemm_{} m={} n={} k={} acc={} at ({}, {}): {} vs {}",
                isa.name(),
                if nt { "nt" } else { "nn" },
                m,
                n,
                kd,
                accumulate,
                i,
                j,
                got,
                w
            );
        }
    }
}

#[test]
fn gemm_odd_shapes_match_reference() {
    let mut rng = Rng::new(6);
    let _g = lock();
    let shapes: Vec<(usize, usize, usize)> = {
        let mut s = Vec::new();
        let dims = [1usize, 2, 3, 5, 7, 11, 13, 17, 31, 33, 47, 70];
        for (ii, &m) in dims.iter().enumerate() {
            for (jj, &n) in dims.iter().enumerate() {
                let kd = dims[(ii * 5 + jj * 7) % dims.len()] + (ii + jj) % 3;
                s.push((m, n, kd));
            }
        }
        s.extend_from_slice(&[
            (13, 29, 0),
            (1, 1, 1),
            (25, 65, 257),
            (37, 41, 513),
            (7, 3, 300),
        ]);
        s
    };
    for isa in isa::available() {
        isa::set(isa).unwrap();
        for &(m, n, kd) in &shapes {
            check_gemm(isa, true, m, n, kd, &mut rng, false);
            check_gemm(isa, false, m, n, kd, &mut rng, false);
            check_gemm(isa, false, m, n, kd, &mut rng, true);
        }
    }
    isa::set(isa::detected()).unwrap();
}

#[test]
fn gemm_full_tile_matches_reference() {
    let mut rng = Rng::new(7);
    let _g = lock();
    for isa in isa::available() {
        isa::set(isa).unwrap();
        check_gemm(isa, true, 192, 384, 768, &mut rng, false);
        check_gemm(isa, false, 61, 250, 300, &mut rng, true);
        // Past the short-A limits (m > MC, or m·k large): the general blocked loop order.
        check_gemm(isa, true, 251, 45, 300, &mut rng, false);
        check_gemm(isa, false, 251, 45, 300, &mut rng, true);
        check_gemm(isa, true, 61, 37, 2900, &mut rng, false);
        check_gemm(isa, false, 61, 37, 2900, &mut rng, false);
    }
    isa::set(isa::detected()).unwrap();
}

/// Computing C in one call or tile by tile (any split) gives bit-identical results, and all
/// fused-multiply-add ISAs agree bit for bit (one FMA chain per element, in k order).
#[test]
fn gemm_is_independent_of_tiling() {
    let mut rng = Rng::new(8);
    let shape = (150, 200, 700);
    let cases = [
        Case::random(&mut rng, true, shape, (0, 0)),
        Case::random(&mut rng, false, shape, (0, 0)),
    ];
    let _g = lock();
    let mut per_isa: Vec<Vec<Vec<f32>>> = Vec::new();
    for isa in isa::available() {
        isa::set(isa).unwrap();
        let mut fulls = Vec::new();
        for case in &cases {
            let mut whole = Vec::new();
            for &(tm, tn) in &[(1usize, 1usize), (7, 13), (64, 96), (100, 37), (150, 200)] {
                let (rows, cols) = (edges(case.m, tm), edges(case.n, tn));
                let (full, tiled) = case.whole_and_tiled(k::gemm, &rows, &cols);
                assert!(
                    same_bits(&full, &tiled),
                    "{} nt={} tiles {tm}x{tn}",
                    isa.name(),
                    case.nt
                );
                whole = full;
            }
            fulls.push(whole);
        }
        if isa != Isa::Scalar {
            per_isa.push(fulls);
        }
    }
    isa::set(isa::detected()).unwrap();
    for w in per_isa.windows(2) {
        assert!(w[0].iter().zip(&w[1]).all(|(x, y)| same_bits(x, y)));
    }
}

/// A tall A (the general loop order, B packed once per block for all MC blocks of A) and its
/// row blocks (the short-A order, B packed per micro-panel) agree bit for bit: on a small
/// product, and on one with several blocks along every dimension (MC, NC on this CPU, KC) and
/// edge panels on each.
#[test]
fn gemm_loop_orders_agree() {
    let mut rng = Rng::new(9);
    let mut cases = Vec::new();
    for shape in [(300, 70, 530), (341, 1411, 1603)] {
        cases.push(Case::random(&mut rng, true, shape, (0, 0)));
        cases.push(Case::random(&mut rng, false, shape, (0, 0)));
    }
    let _g = lock();
    for isa in isa::available() {
        isa::set(isa).unwrap();
        for case in &cases {
            let (full, rows) = case.whole_and_tiled(k::gemm, &edges(case.m, 100), &[0, case.n]);
            assert!(same_bits(&full, &rows), "{} nt={}", isa.name(), case.nt);
        }
    }
    isa::set(isa::detected()).unwrap();
}

/// Tiles computed concurrently on several threads (each with its own packing buffers) equal
/// the single-threaded product bit for bit.
#[test]
fn gemm_tiles_on_threads_match() {
    let mut rng = Rng::new(10);
    let (m, n, kd) = (90, 260, 300);
    let a = rng.vec(m * kd);
    let b = rng.vec(n * kd);
    let _g = lock();
    for isa in isa::available() {
        isa::set(isa).unwrap();
        let mut want = vec![0f32; m * n];
        k::gemm_nt(m, n, kd, (&a, kd), (&b, kd), (&mut want, n));
        let strips: Vec<Vec<f32>> = std::thread::scope(|s| {
            let handles: Vec<_> = (0..4)
                .map(|t| {
                    let (a, b) = (&a, &b);
                    s.spawn(move || {
                        // Strip t: columns 65t..65t+65, computed in two row blocks, twice.
                        let mut out = vec![0f32; m * 65];
                        for _ in 0..2 {
                            for i0 in [0usize, 41] {
                                let mb = if i0 == 0 { 41 } else { m - 41 };
                                k::gemm_nt(
                                    mb,
                                    65,
                                    kd,
                                    (&a[i0 * kd..], kd),
                                    (&b[65 * t * kd..], kd),
                                    (&mut out[i0 * 65..], 65),
                                );
                            }
                        }
                        out
                    })
                })
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        });
        for (t, strip) in strips.iter().enumerate() {
            for i in 0..m {
                for j in 0..65 {
                    assert_eq!(
                        strip[i * 65 + j].to_bits(),
                        want[i * n + 65 * t + j].to_bits(),
                        "{} thread {}",
                        isa.name(),
                        t
                    );
                }
            }
        }
    }
    isa::set(isa::detected()).unwrap();
}

#[test]
fn gemm_k_zero_and_empty() {
    let _g = lock();
    for isa in isa::available() {
        isa::set(isa).unwrap();
        let mut c = vec![7.0f32; 6];
        k::gemm_nt(2, 3, 0, (&[], 0), (&[], 0), (&mut c, 3));
        assert_eq!(c, vec![0.0; 6]);
        let mut c = vec![7.0f32; 6];
        k::gemm_nn(2, 3, 0, (&[], 0), (&[], 3), (&mut c, 3), true);
        assert_eq!(c, vec![7.0; 6]);
        k::gemm_nn(2, 3, 0, (&[], 0), (&[], 3), (&mut c, 3), false);
        assert_eq!(c, vec![0.0; 6]);
        let mut c: Vec<f32> = vec![];
        k::gemm_nt(0, 5, 4, (&[], 4), (&[0.0; 20], 4), (&mut c, 5));
    }
    isa::set(isa::detected()).unwrap();
}

#[test]
fn f16_decode_is_exact_on_every_isa() {
    let src: Vec<u16> = (0..=u16::MAX).collect();
    let _g = lock();
    for isa in isa::available() {
        isa::set(isa).unwrap();
        for off in [0usize, 3] {
            let s = &src[off..];
            let mut out = vec![0f32; s.len()];
            k::f16::f16_decode(s, &mut out);
            for (&h, &o) in s.iter().zip(&out) {
                let w = k::f16::f16_to_f32(h);
                assert!(
                    o.to_bits() == w.to_bits() || (o.is_nan() && w.is_nan()),
                    "{:?} {:#x}: {} vs {}",
                    isa,
                    h,
                    o,
                    w
                );
            }
        }
    }
    isa::set(isa::detected()).unwrap();
    // Spot values: 1, −2, the smallest subnormal, the largest finite, +∞.
    let want = [1.0f32, -2.0, 5.960_464_5e-8, 65504.0, f32::INFINITY];
    let got: Vec<f32> = [0x3c00u16, 0xc000, 0x0001, 0x7bff, 0x7c00]
        .iter()
        .map(|&h| k::f16::f16_to_f32(h))
        .collect();
    assert_eq!(got, want);
}

#[test]
fn kernel_table_matches_free_functions() {
    let mut rng = Rng::new(77);
    let _g = lock();
    for isa in isa::available() {
        isa::set(isa).unwrap();
        let kt = k::kernels();
        assert_eq!(kt.isa(), isa);
        for n in [0usize, 1, 5, 17, 63, 768, 1031] {
            let (a, b) = (rng.vec(n), rng.vec(n));
            assert_eq!(kt.dot(&a, &b).to_bits(), k::dot(&a, &b).to_bits());
            let (t, f) = (kt.dot_norms(&a, &b), k::dot_norms(&a, &b));
            assert_eq!(
                (t.0.to_bits(), t.1.to_bits(), t.2.to_bits()),
                (f.0.to_bits(), f.1.to_bits(), f.2.to_bits())
            );
            assert_eq!(kt.l2sq(&a, &b).to_bits(), k::l2sq(&a, &b).to_bits());
            assert_eq!(kt.sumsq(&a).to_bits(), k::sumsq(&a).to_bits());
            assert_eq!(kt.max(&a).to_bits(), k::max(&a).to_bits());
            let (mut y1, mut y2) = (a.clone(), a.clone());
            kt.axpy(&mut y1, 0.3, &b);
            k::axpy(&mut y2, 0.3, &b);
            kt.scale(&mut y1, -1.7);
            k::scale(&mut y2, -1.7);
            let (s1, s2) = (
                kt.exp_shift_sum(&mut y1, 0.5),
                k::exp_shift_sum(&mut y2, 0.5),
            );
            assert_eq!(s1.to_bits(), s2.to_bits());
            assert!(y1.iter().zip(&y2).all(|(u, v)| u.to_bits() == v.to_bits()));
        }
    }
    isa::set(isa::detected()).unwrap();
}

/// Row i of a row-major matrix with `cols` values per row.
fn row(m: &[f32], i: usize, cols: usize) -> &[f32] {
    &m[i * cols..(i + 1) * cols]
}

#[test]
fn row_kernels_equal_the_per_row_kernels_on_every_isa() {
    let mut rng = Rng::new(78);
    let _g = lock();
    let mut cols_list: Vec<usize> = (0..=35).collect();
    cols_list.extend_from_slice(&[63, 65, 768, 1031]);
    for isa in isa::available() {
        isa::set(isa).unwrap();
        let kt = k::kernels();
        for &cols in &cols_list {
            for &(rows, off) in &[(0usize, 0usize), (1, 1), (7, 3)] {
                let (a, b) = (rng.vec(rows * cols + off), rng.vec(rows * cols + off));
                let (a, b) = (&a[off..], &b[off..]);
                let what = format!("{} rows={rows} cols={cols} off={off}", isa.name());
                let mut out = vec![f32::NAN; rows];
                kt.dot_rows(a, b, cols, &mut out);
                let want: Vec<f32> = (0..rows)
                    .map(|i| k::dot(row(a, i, cols), row(b, i, cols)))
                    .collect();
                assert!(same_bits(&out, &want), "dot_rows {what}");
                kt.l2sq_rows(a, b, cols, &mut out);
                let want: Vec<f32> = (0..rows)
                    .map(|i| k::l2sq(row(a, i, cols), row(b, i, cols)))
                    .collect();
                assert!(same_bits(&out, &want), "l2sq_rows {what}");
                kt.sumsq_rows(a, cols, &mut out);
                let want: Vec<f32> = (0..rows).map(|i| k::sumsq(row(a, i, cols))).collect();
                assert!(same_bits(&out, &want), "sumsq_rows {what}");
                let mut dn = vec![(f32::NAN, f32::NAN, f32::NAN); rows];
                kt.dot_norms_rows(a, b, cols, &mut dn);
                for (i, got) in dn.iter().enumerate() {
                    let w = k::dot_norms(row(a, i, cols), row(b, i, cols));
                    assert!(
                        same_bits(&[got.0, got.1, got.2], &[w.0, w.1, w.2]),
                        "dot_norms_rows {what} row {i}"
                    );
                }
                let s = rng.vec(rows);
                let mut got = a.to_vec();
                kt.scale_rows(&mut got, cols, &s);
                let mut want = a.to_vec();
                for (i, &si) in s.iter().enumerate() {
                    k::scale(&mut want[i * cols..(i + 1) * cols], si);
                }
                assert!(same_bits(&got, &want), "scale_rows {what}");
            }
        }
    }
    isa::set(isa::detected()).unwrap();
}

#[test]
fn row_kernels_match_scalar() {
    let mut rng = Rng::new(79);
    let scalar = {
        let _g = lock();
        isa::set(Isa::Scalar).unwrap();
        let kt = k::kernels();
        isa::set(isa::detected()).unwrap();
        kt
    };
    for_each_simd(|isa| {
        let kt = k::kernels();
        for cols in [1usize, 5, 17, 31, 33, 67, 768, 1031] {
            let rows = 5;
            let (a, b) = (rng.vec(rows * cols), rng.vec(rows * cols));
            let what = |f: &str| format!("{} {f} cols={cols}", isa.name());
            let (mut got, mut want) = (vec![0f32; rows], vec![0f32; rows]);
            let abs = |i: usize, f: fn(f32, f32) -> f64| -> f64 {
                row(&a, i, cols)
                    .iter()
                    .zip(row(&b, i, cols))
                    .map(|(x, y)| f(*x, *y).abs())
                    .sum()
            };
            kt.dot_rows(&a, &b, cols, &mut got);
            scalar.dot_rows(&a, &b, cols, &mut want);
            for i in 0..rows {
                let ab = abs(i, |x, y| x as f64 * y as f64);
                close(got[i], want[i] as f64, cols, ab, &what("dot_rows"));
            }
            kt.l2sq_rows(&a, &b, cols, &mut got);
            scalar.l2sq_rows(&a, &b, cols, &mut want);
            for i in 0..rows {
                let d2 = abs(i, |x, y| (x as f64 - y as f64).powi(2));
                close(got[i], want[i] as f64, cols, d2, &what("l2sq_rows"));
            }
            kt.sumsq_rows(&a, cols, &mut got);
            scalar.sumsq_rows(&a, cols, &mut want);
            for i in 0..rows {
                let aa = abs(i, |x, _| x as f64 * x as f64);
                close(got[i], want[i] as f64, cols, aa, &what("sumsq_rows"));
            }
            let mut dn = vec![(0f32, 0f32, 0f32); rows];
            let mut dn_want = dn.clone();
            kt.dot_norms_rows(&a, &b, cols, &mut dn);
            scalar.dot_norms_rows(&a, &b, cols, &mut dn_want);
            for i in 0..rows {
                let (g, w) = (dn[i], dn_want[i]);
                let ab = abs(i, |x, y| x as f64 * y as f64);
                close(g.0, w.0 as f64, cols, ab, &what("dot_norms_rows.ab"));
                close(
                    g.1,
                    w.1 as f64,
                    cols,
                    w.1 as f64,
                    &what("dot_norms_rows.aa"),
                );
                close(
                    g.2,
                    w.2 as f64,
                    cols,
                    w.2 as f64,
                    &what("dot_norms_rows.bb"),
                );
            }
            let s = rng.vec(rows);
            let (mut x, mut y) = (a.clone(), a.clone());
            kt.scale_rows(&mut x, cols, &s);
            scalar.scale_rows(&mut y, cols, &s);
            assert!(same_bits(&x, &y), "{}", what("scale_rows"));
        }
    });
}

#[test]
fn row_kernels_reject_mismatched_shapes() {
    let kt = k::kernels();
    let (a, b) = (vec![0f32; 6], vec![0f32; 5]);
    let mut out = vec![0f32; 2];
    type Run<'a> = &'a dyn Fn(&mut [f32]);
    let runs: [Run; 4] = [
        &|o| kt.dot_rows(&a, &b, 3, o),
        &|o| kt.l2sq_rows(&a, &a, 2, o),
        &|o| kt.sumsq_rows(&b, 3, o),
        &|o| kt.scale_rows(&mut a.clone(), 3, &o[..1]),
    ];
    for (i, run) in runs.iter().enumerate() {
        let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| run(&mut out)));
        assert!(r.is_err(), "case {i} must panic");
    }
    // The right shapes run.
    kt.dot_rows(&a, &a, 3, &mut out);
    assert_eq!(out, [0.0, 0.0]);
}

/// Aᵀ·B from a transposed A (`GemmRef::tn`) is the plain product on the explicitly
/// transposed A, bit for bit, on every ISA, written and accumulated.
#[test]
fn gemm_tn_equals_nn_on_the_transposed_copy() {
    let mut rng = Rng::new(12);
    let _g = lock();
    for isa in isa::available() {
        isa::set(isa).unwrap();
        for &(m, n, kd) in &common::tn_shapes() {
            let case = Case::random(&mut rng, false, (m, n, kd), (3, 5));
            let (at, ld) = case.a_transposed(2);
            for acc in [false, true] {
                let start: Vec<f32> = (0..m * n).map(|_| rng.f()).collect();
                let (mut c1, mut c2) = (start.clone(), start);
                k::gemm(case.op((&mut c1, n)).accumulate(acc));
                k::gemm(
                    GemmRef::tn(m, n, kd, (&at, ld), (&case.b, case.ldb), (&mut c2, n))
                        .accumulate(acc),
                );
                assert!(
                    same_bits(&c1, &c2),
                    "{} tn {m}x{n}x{kd} acc={acc}",
                    isa.name()
                );
            }
        }
    }
    isa::set(isa::detected()).unwrap();
}
