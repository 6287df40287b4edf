//! The keeping allocator (`densevec_core::keep`) installed as this test binary's global
//! allocator: large blocks are kept and found again, zeroed when asked, capped, returned after
//! the idle time and on `release`; small ones are never kept; reallocation keeps contents.
//! One test function: the allocator's state is process-wide.

use densevec_core::keep::{self, KeepLarge, LARGE};
use std::time::{Duration, Instant};

#[global_allocator]
static ALLOC: KeepLarge = KeepLarge;

const MB: usize = 1 << 20;

fn filled(n: usize, v: f32) -> Vec<f32> {
    let mut x = Vec::new();
    x.try_reserve_exact(n).unwrap();
    x.resize(n, v);
    x
}

/// Waits (up to `limit`) for the held bytes to reach zero.
fn drained_within(limit: Duration) -> bool {
    let t = Instant::now();
    while t.elapsed() < limit {
        if keep::held_now() == (0, 0) {
            return true;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    false
}

#[test]
fn large_blocks_are_kept_reused_capped_and_returned() {
    // Before start: nothing is kept.
    drop(filled(4 * MB / 4, 1.0));
    assert_eq!(keep::held_now(), (0, 0));

    // A long keep time while the counts are checked (a slow machine must not see blocks
    // returned in between), a short one for the return after idleness below.
    keep::start(Duration::from_secs(60), 64 * MB).unwrap();

    // A freed large block is kept and handed out again to the same size class.
    let a = filled(3 * MB / 4 + 5, 7.0);
    let pa = a.as_ptr();
    drop(a);
    let (blocks, bytes) = keep::held_now();
    assert_eq!(blocks, 1);
    assert!((3 * MB..=3 * MB + 3 * MB / 8).contains(&bytes), "{bytes}");
    let b: Vec<f32> = Vec::with_capacity(3 * MB / 4 + 5);
    assert_eq!(b.as_ptr(), pa, "the kept block is reused");
    assert_eq!(keep::held_now(), (0, 0));
    drop(b);

    // A zeroed allocation from a kept block (that held 7.0s) reads zero.
    let z = vec![0f32; 3 * MB / 4 + 5];
    assert_eq!(z.as_ptr(), pa);
    assert!(z.iter().all(|&v| v == 0.0));
    drop(z);

    // Another size class or alignment does not take it.
    let other = filled(6 * MB / 4, 1.0);
    assert_ne!(other.as_ptr(), pa);
    assert_eq!(keep::held_now().0, 1);
    drop(other);
    assert_eq!(keep::held_now().0, 2);
    let layout = std::alloc::Layout::from_size_align(3 * MB + 20, 4096).unwrap();
    // SAFETY: a valid non-zero layout; freed below with the same layout.
    // (black_box: the optimiser may otherwise drop an allocation nobody reads.)
    let p = std::hint::black_box(unsafe { std::alloc::alloc(layout) });
    assert!(!p.is_null() && (p as usize).is_multiple_of(4096));
    assert_eq!(
        keep::held_now().0,
        2,
        "an aligned request does not take an 8-aligned block"
    );
    // SAFETY: allocated above with this layout.
    unsafe { std::alloc::dealloc(std::hint::black_box(p), layout) };
    assert_eq!(keep::held_now().0, 3);

    // Small blocks are never kept.
    keep::release();
    assert_eq!(keep::held_now(), (0, 0));
    drop(filled((LARGE - 64) / 4, 1.0));
    assert_eq!(keep::held_now(), (0, 0));

    // The cap: blocks over it are not kept, and older blocks make room for newer ones.
    drop(filled(80 * MB / 4, 1.0));
    assert_eq!(keep::held_now(), (0, 0));
    let many: Vec<Vec<f32>> = (0..6).map(|i| filled((20 + i) * MB / 4, 1.0)).collect();
    drop(many);
    let (blocks, bytes) = keep::held_now();
    assert!(
        bytes <= 64 * MB && blocks >= 2,
        "{blocks} blocks, {bytes} bytes"
    );
    // The newest (25 MB) is among them.
    let last: Vec<f32> = Vec::with_capacity(25 * MB / 4);
    assert_eq!(keep::held_now().0, blocks - 1);
    drop(last);

    // Reallocation across the threshold and within a class keeps the contents.
    let mut g = filled(1000, 3.0);
    for n in [LARGE / 4, LARGE / 4 + 1, 5 * MB / 4, 40 * MB / 4] {
        g.resize(n, 3.0);
        assert!(g.iter().all(|&v| v == 3.0));
    }
    g.truncate(10);
    g.shrink_to_fit();
    assert_eq!(g, vec![3.0; 10]);

    // A reallocation within one size class keeps the block in place.
    let mut h: Vec<f32> = Vec::with_capacity(2 * MB / 4 + 1);
    h.resize(2 * MB / 4 + 1, 5.0);
    let ph = h.as_ptr();
    // 2 MiB + 4 bytes and 2 MiB + 4,004 bytes are both in the 2.25 MiB class.
    h.reserve_exact(1000);
    assert_eq!(h.as_ptr(), ph, "same class, same block");
    assert!(h.iter().all(|&v| v == 5.0));
    drop(h);

    // Everything is returned after the idle time.
    keep::start(Duration::from_millis(300), 64 * MB).unwrap();
    assert!(keep::held_now().0 > 0);
    assert!(
        drained_within(Duration::from_secs(5)),
        "{:?}",
        keep::held_now()
    );

    // Stopping returns what is held and keeps nothing more.
    drop(filled(2 * MB, 1.0));
    assert!(keep::held_now().0 > 0);
    keep::start(Duration::ZERO, 64 * MB).unwrap();
    assert_eq!(keep::held_now(), (0, 0));
    drop(filled(2 * MB, 1.0));
    assert_eq!(keep::held_now(), (0, 0));

    // Results of the library do not depend on reused blocks: the same call twice, the second
    // on the first's freed blocks, gives the same bits.
    keep::start(Duration::from_secs(5), 256 * MB).unwrap();
    let (b, d) = (600, 96);
    let q: Vec<f32> = (0..b * d)
        .map(|i| ((i * 37 % 101) as f32 - 50.0) / 17.0)
        .collect();
    let k: Vec<f32> = (0..b * d)
        .map(|i| ((i * 53 % 97) as f32 - 48.0) / 13.0)
        .collect();
    let o = densevec_core::contrastive::InfoNceOpts {
        temperature: 0.07,
        positives: None,
        log_q: None,
        normalize: true,
    };
    let run = || {
        let v = densevec_core::contrastive::info_nce(&q, b, &k, b, d, &o).unwrap();
        (v.loss.to_bits(), v.grad_q, v.grad_keys)
    };
    let first = run();
    assert!(keep::held_now().0 > 0, "the call freed a large block");
    let second = run();
    assert_eq!(first.0, second.0);
    assert!(first
        .1
        .iter()
        .zip(&second.1)
        .all(|(x, y)| x.to_bits() == y.to_bits()));
    assert!(first
        .2
        .iter()
        .zip(&second.2)
        .all(|(x, y)| x.to_bits() == y.to_bits()));
    keep::release();
}
