//! Eligibility filters of top-k (`skip` per query, `mask` per corpus row): the filtered result
//! equals the unfiltered top-k over the eligible rows only, with the original indices.

#![allow(clippy::needless_range_loop)]

use densevec_core::quantized::{Corpus, I8Scale};
use densevec_core::similarity::{Batch, Metric};
use densevec_core::topk::{top_k, top_k_filtered, Select, SKIP_NONE};
use densevec_core::Code;

fn lcg(seed: &mut u64) -> f32 {
    *seed = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    ((*seed >> 33) as f32 / (1u64 << 31) as f32) * 2.0 - 1.0
}

fn data(n: usize, seed: u64) -> Vec<f32> {
    let mut s = seed;
    (0..n).map(|_| lcg(&mut s)).collect()
}

/// Top-k of query `i` by brute force over the admitted rows, via the unfiltered function on the
/// compacted corpus.
fn oracle(
    q: &[f32],
    c: &[f32],
    cols: usize,
    kk: usize,
    metric: Metric,
    qi: usize,
    ok: impl Fn(usize) -> bool,
) -> (Vec<u32>, Vec<f32>) {
    let rows: Vec<usize> = (0..c.len() / cols).filter(|&j| ok(j)).collect();
    let mut sub = Vec::new();
    for &j in &rows {
        sub.extend_from_slice(&c[j * cols..(j + 1) * cols]);
    }
    let r = top_k(
        &q[qi * cols..(qi + 1) * cols],
        1,
        &sub,
        rows.len(),
        cols,
        kk,
        metric,
    )
    .unwrap();
    (
        r.indices.iter().map(|&x| rows[x as usize] as u32).collect(),
        r.scores,
    )
}

#[test]
fn skip_and_mask_match_the_compacted_corpus() {
    let (qr, cr, d, kk) = (7, 3000, 19, 5);
    let q = data(qr * d, 1);
    let mut c = data(cr * d, 2);
    // Duplicate rows make ties that the filter must not disturb.
    let (a, b) = c.split_at_mut(100 * d);
    b[..d].copy_from_slice(&a[..d]);
    let mask: Vec<u8> = (0..cr).map(|j| u8::from(j % 3 != 1)).collect();
    let mut skip: Vec<u32> = (0..qr as u32).map(|i| i * 2).collect();
    skip[3] = SKIP_NONE;
    for metric in [Metric::Dot, Metric::Cosine, Metric::L2sq] {
        let r = top_k_filtered(
            Batch::new(&q, qr, Corpus::F32(&c), cr, d, metric),
            kk,
            Select {
                skip: Some(&skip),
                mask: Some(&mask),
            },
        )
        .unwrap();
        for i in 0..qr {
            let (idx, sc) = oracle(&q, &c, d, kk, metric, i, |j| {
                mask[j] != 0 && j as u32 != skip[i]
            });
            assert_eq!(
                &r.indices[i * kk..(i + 1) * kk],
                &idx[..],
                "{metric:?} query {i}"
            );
            assert_eq!(&r.scores[i * kk..(i + 1) * kk], &sc[..]);
        }
    }
}

#[test]
fn self_search_skips_the_query_row() {
    let (n, d, kk) = (50, 8, 3);
    let c = data(n * d, 3);
    let skip: Vec<u32> = (0..n as u32).collect();
    let r = top_k_filtered(
        Batch::new(&c, n, Corpus::F32(&c), n, d, Metric::Cosine),
        kk,
        Select {
            skip: Some(&skip),
            mask: None,
        },
    )
    .unwrap();
    for i in 0..n {
        assert!(!r.indices[i * kk..(i + 1) * kk].contains(&(i as u32)));
    }
    // Without the skip every row finds itself first.
    let plain = top_k(&c, n, &c, n, d, kk, Metric::Cosine).unwrap();
    for i in 0..n {
        assert_eq!(plain.indices[i * kk], i as u32);
    }
}

#[test]
fn compact_corpus_is_filtered_too() {
    let (qr, cr, d, kk) = (3, 300, 16, 4);
    let q = data(qr * d, 4);
    let int8: Vec<i8> = data(cr * d, 5).iter().map(|x| (x * 100.0) as i8).collect();
    let mask: Vec<u8> = (0..cr).map(|j| u8::from(j % 2 == 0)).collect();
    let c = Corpus::I8 {
        data: &int8,
        scale: I8Scale::Global(0.01),
    };
    let r = top_k_filtered(
        Batch::new(&q, qr, c, cr, d, Metric::Dot),
        kk,
        Select {
            skip: None,
            mask: Some(&mask),
        },
    )
    .unwrap();
    assert!(r.indices.iter().all(|&j| j % 2 == 0));
    let dec: Vec<f32> = int8.iter().map(|&v| v as f32 * 0.01).collect();
    for i in 0..qr {
        let (idx, _) = oracle(&q, &dec, d, kk, Metric::Dot, i, |j| j % 2 == 0);
        assert_eq!(&r.indices[i * kk..(i + 1) * kk], &idx[..]);
    }
}

#[test]
fn errors() {
    let (qr, cr, d) = (2, 5, 3);
    let q = data(qr * d, 6);
    let c = data(cr * d, 7);
    let run = |kk: usize, skip: Option<&[u32]>, mask: Option<&[u8]>| {
        top_k_filtered(
            Batch::new(&q, qr, Corpus::F32(&c), cr, d, Metric::Dot),
            kk,
            Select { skip, mask },
        )
        .unwrap_err()
    };
    assert_eq!(run(1, Some(&[0]), None).code, Code::Shape);
    assert_eq!(run(1, None, Some(&[1, 1])).code, Code::Shape);
    assert_eq!(run(1, Some(&[0, 5]), None).code, Code::Arg);
    // 5 rows, one masked, one skipped: 3 eligible for query 0, 4 for query 1 (its skip is masked).
    let e = run(4, Some(&[0, 1]), Some(&[1, 0, 1, 1, 1]));
    assert_eq!(e.code, Code::Arg);
    assert!(e.msg.contains("query 0 has 3 eligible"), "{}", e.msg);
    assert!(top_k_filtered(
        Batch::new(&q, qr, Corpus::F32(&c), cr, d, Metric::Dot),
        3,
        Select {
            skip: Some(&[0, 1]),
            mask: Some(&[1, 0, 1, 1, 1])
        }
    )
    .is_ok());
}
