//! Tests of the emulator itself: the execution model (tests/kernels/selftest.cu), memory
//! checks, SGEMM, launch validation, and the similarity kernels of densevec-cuda on
//! hand-made inputs.

#![cfg(target_os = "linux")]

use densevec_core::similarity::Metric;
use densevec_cuda::dev::{gemm_rm, Arg, Buf, DevPtr, Device, Launch, Rm, Sgemm};
use densevec_cuda_emu::{Emu, DEFAULT_BUDGET};

fn geom(grid: [u32; 3], block: [u32; 3]) -> Launch {
    Launch { grid, block }
}

/// Deterministic pseudo-random numbers (xorshift64*).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    /// Uniform in [-1, 1).
    fn f32(&mut self) -> f32 {
        (self.next() >> 40) as f32 / (1u64 << 23) as f32 - 1.0
    }
    /// Integer in [lo, hi].
    fn int(&mut self, lo: i64, hi: i64) -> i64 {
        lo + (self.next() % (hi - lo + 1) as u64) as i64
    }
}

fn err_of(r: Result<(), String>) -> String {
    r.expect_err("expected an error")
}

// ----- execution model ------------------------------------------------------------------------

#[test]
fn block_reduction_through_shared_memory_on_1d_2d_3d_grids() {
    let d = Emu::new();
    for (grid, threads) in [
        ([12, 1, 1], 256),
        ([4, 3, 1], 256),
        ([2, 3, 2], 256),
        ([3, 1, 1], 1024),
        ([5, 1, 1], 32),
    ] {
        let blocks = (grid[0] * grid[1] * grid[2]) as usize;
        let n = blocks * threads as usize - 37; // the last block is partial
        let input: Vec<u32> = (1..=n as u32).collect();
        let din = Buf::from(&d, &input).unwrap();
        let out = Buf::<u64>::zeros(&d, blocks).unwrap();
        d.launch(
            "st_block_sum",
            geom(grid, [threads, 1, 1]),
            &[din.arg(0), Arg::I32(n as i32), out.arg(0)],
        )
        .unwrap();
        let sums = out.to_vec().unwrap();
        for (b, &s) in sums.iter().enumerate() {
            let lo = (b * threads as usize) as u64;
            let hi = (((b + 1) * threads as usize).min(n)) as u64;
            let want: u64 = (lo + 1..=hi).sum();
            assert_eq!(s, want, "grid {grid:?} block {b}");
        }
        let n = n as u64;
        assert_eq!(sums.iter().sum::<u64>(), n * (n + 1) / 2, "grid {grid:?}");
    }
    assert_eq!(d.live_allocations(), 0);
    d.sync().unwrap();
}

#[test]
fn warp_shuffles_down_xor_up_idx_and_ballot() {
    let d = Emu::new();
    let (blocks, threads) = (2u32, 64u32);
    let n = (blocks * threads) as usize;
    let mut rng = Rng(7);
    let input: Vec<i32> = (0..n).map(|_| rng.int(-1000, 1000) as i32).collect();
    let din = Buf::from(&d, &input).unwrap();
    let down = Buf::<i32>::zeros(&d, n / 32).unwrap();
    let xall = Buf::<i32>::zeros(&d, n).unwrap();
    let scan = Buf::<i32>::zeros(&d, n).unwrap();
    let bcast = Buf::<i32>::zeros(&d, n).unwrap();
    let ballot = Buf::<u32>::zeros(&d, n / 32).unwrap();
    let vote = Buf::<i32>::zeros(&d, n / 32).unwrap();
    for src in [5, 37] {
        d.launch(
            "st_warp",
            Launch::blocks(blocks, threads),
            &[
                din.arg(0),
                down.arg(0),
                xall.arg(0),
                scan.arg(0),
                bcast.arg(0),
                ballot.arg(0),
                vote.arg(0),
                Arg::I32(src),
            ],
        )
        .unwrap();
        let (down, xall, scan, bcast, ballot, vote) = (
            down.to_vec().unwrap(),
            xall.to_vec().unwrap(),
            scan.to_vec().unwrap(),
            bcast.to_vec().unwrap(),
            ballot.to_vec().unwrap(),
            vote.to_vec().unwrap(),
        );
        for w in 0..n / 32 {
            let lanes = &input[w * 32..(w + 1) * 32];
            let total: i32 = lanes.iter().sum();
            assert_eq!(down[w], total, "warp {w}");
            let bits = lanes
                .iter()
                .enumerate()
                .fold(0u32, |b, (l, v)| b | (((v & 1) as u32) << l));
            assert_eq!(ballot[w], bits, "warp {w}");
            let any = lanes.iter().any(|&v| v > 900) as i32;
            let all = lanes.iter().all(|&v| v > -900) as i32;
            assert_eq!(vote[w], any | all << 1, "warp {w}");
            let mut prefix = 0;
            for (l, v) in lanes.iter().enumerate() {
                prefix += v;
                let t = w * 32 + l;
                assert_eq!(xall[t], total, "thread {t}");
                assert_eq!(scan[t], prefix, "thread {t}");
                // srcLane is taken modulo the width (32).
                assert_eq!(bcast[t], lanes[(src % 32) as usize], "thread {t}");
            }
        }
    }
}

#[test]
fn segmented_shuffles_with_width_and_64_bit_values() {
    let d = Emu::new();
    let n = 64usize;
    let input: Vec<f64> = (0..n).map(|i| 0.25 * i as f64 + 1e-9).collect();
    let din = Buf::from(&d, &input).unwrap();
    let out = Buf::<f64>::zeros(&d, n).unwrap();
    let seg = Buf::<i64>::zeros(&d, n).unwrap();
    let up = Buf::<i64>::zeros(&d, n).unwrap();
    for width in [1usize, 2, 4, 8, 16, 32] {
        let (src, delta) = (3 % width as i32 + width as i32, 1 + width as i32 / 4);
        d.launch(
            "st_width",
            Launch::blocks(1, n as u32),
            &[
                din.arg(0),
                Arg::I32(width as i32),
                Arg::I32(src),
                Arg::I32(delta),
                out.arg(0),
                seg.arg(0),
                up.arg(0),
            ],
        )
        .unwrap();
        let (out, seg, up) = (
            out.to_vec().unwrap(),
            seg.to_vec().unwrap(),
            up.to_vec().unwrap(),
        );
        let id = |t: usize| 1_000_000_000_000i64 + t as i64;
        for t in 0..n {
            let first = t / width * width;
            let sum: f64 = input[first..first + width].iter().sum();
            assert!((out[t] - sum).abs() < 1e-9, "width {width} thread {t}");
            assert_eq!(
                seg[t],
                id(first + (src as usize % width)),
                "width {width} thread {t}"
            );
            let want = if t - first >= delta as usize {
                id(t - delta as usize)
            } else {
                id(t)
            };
            assert_eq!(up[t], want, "width {width} thread {t}");
        }
    }
}

#[test]
fn blocks_below_one_warp_shuffle_among_their_own_lanes() {
    let d = Emu::new();
    for threads in [1u32, 2, 8, 16] {
        let out = Buf::<i32>::zeros(&d, 3 * threads as usize).unwrap();
        d.launch("st_small_block", Launch::blocks(3, threads), &[out.arg(0)])
            .unwrap();
        let total = (threads * (threads + 1) / 2) as i32;
        assert!(
            out.to_vec().unwrap().iter().all(|&v| v == total),
            "{threads}"
        );
    }
}

#[test]
fn divergent_halves_of_a_warp_with_their_own_masks() {
    let d = Emu::new();
    let out = Buf::<i32>::zeros(&d, 64).unwrap();
    d.launch("st_split_masks", Launch::blocks(1, 64), &[out.arg(0)])
        .unwrap();
    let out = out.to_vec().unwrap();
    // Host model of the shuffle-down reduction over segments of 16 lanes.
    for w in 0..2 {
        let mut v: Vec<i32> = (0..32).collect();
        for o in [8, 4, 2, 1] {
            let old = v.clone();
            for l in 0..32 {
                // A source beyond the segment gives the lane its own value.
                v[l] += if l % 16 + o < 16 { old[l + o] } else { old[l] };
            }
        }
        assert_eq!(&out[w * 32..(w + 1) * 32], &v[..]);
        assert_eq!(v[0], (0..16).sum::<i32>());
        assert_eq!(v[16], (16..32).sum::<i32>());
    }
}

#[test]
fn shared_memory_in_device_helpers_and_templates() {
    let d = Emu::new();
    let blocks = 3usize;
    let input: Vec<f32> = (0..blocks * 128).map(|i| (i % 17) as f32 - 8.0).collect();
    let din = Buf::from(&d, &input).unwrap();
    let out = Buf::<f32>::zeros(&d, 2 * blocks).unwrap();
    d.launch(
        "st_helpers",
        Launch::blocks(blocks as u32, 128),
        &[din.arg(0), out.arg(0)],
    )
    .unwrap();
    let out = out.to_vec().unwrap();
    for b in 0..blocks {
        let t: f32 = input[b * 128..(b + 1) * 128].iter().sum();
        assert_eq!((out[2 * b], out[2 * b + 1]), (t, 2.0 * t), "block {b}");
    }
}

#[test]
fn atomics_across_blocks() {
    let d = Emu::new();
    let (blocks, threads) = (10u32, 128u32);
    let n = (blocks * threads) as u64;
    let f = Buf::<f32>::zeros(&d, 1).unwrap();
    let dd = Buf::<f64>::zeros(&d, 1).unwrap();
    let u = Buf::<u32>::zeros(&d, 1).unwrap();
    let ull = Buf::<u64>::zeros(&d, 1).unwrap();
    let imax = Buf::<i32>::from(&d, &[-1]).unwrap();
    let imin = Buf::<i32>::zeros(&d, 1).unwrap();
    let umax = Buf::<u32>::zeros(&d, 1).unwrap();
    let cas = Buf::<u64>::zeros(&d, 1).unwrap();
    let last = Buf::<i32>::from(&d, &[-1]).unwrap();
    d.launch(
        "st_atomics",
        Launch::blocks(blocks, threads),
        &[
            f.arg(0),
            dd.arg(0),
            u.arg(0),
            ull.arg(0),
            imax.arg(0),
            imin.arg(0),
            umax.arg(0),
            cas.arg(0),
            last.arg(0),
        ],
    )
    .unwrap();
    assert_eq!(f.to_vec().unwrap()[0], n as f32);
    assert_eq!(dd.to_vec().unwrap()[0], n as f64 * 0.5);
    assert_eq!(u.to_vec().unwrap()[0], n as u32);
    assert_eq!(ull.to_vec().unwrap()[0], n * (n - 1) / 2);
    assert_eq!(imax.to_vec().unwrap()[0], n as i32 - 1);
    assert_eq!(imin.to_vec().unwrap()[0], -(n as i32 - 1));
    assert_eq!(umax.to_vec().unwrap()[0], (n as u32 - 1) * 3);
    assert_eq!(cas.to_vec().unwrap()[0], n);
    assert!((0..n as i32).contains(&last.to_vec().unwrap()[0]));
}

#[test]
fn threads_that_return_early_leave_the_block_barrier() {
    let d = Emu::new();
    for active in [1, 5, 32, 100, 255, 256] {
        let out = Buf::<i32>::zeros(&d, 3).unwrap();
        d.launch(
            "st_early_exit",
            Launch::blocks(3, 256),
            &[Arg::I32(active), out.arg(0)],
        )
        .unwrap();
        let want = active * (active + 1) / 2;
        assert_eq!(out.to_vec().unwrap(), vec![want; 3], "active {active}");
    }
}

#[test]
fn block_and_thread_indices_of_3d_launches() {
    let d = Emu::new();
    for (grid, block) in [
        ([3u32, 2, 2], [8u32, 4, 2]),
        ([1, 1, 3], [32, 1, 1]),
        ([2, 5, 1], [4, 4, 4]),
        ([1, 1, 1], [1, 1, 1]),
    ] {
        let nb = (grid[0] * grid[1] * grid[2]) as usize;
        let nt = (block[0] * block[1] * block[2]) as usize;
        let out = Buf::<u64>::zeros(&d, nb * nt).unwrap();
        let dims = Buf::<u32>::zeros(&d, 6).unwrap();
        d.launch("st_index", geom(grid, block), &[out.arg(0), dims.arg(0)])
            .unwrap();
        let out = out.to_vec().unwrap();
        let mut i = 0;
        for bz in 0..grid[2] as u64 {
            for by in 0..grid[1] as u64 {
                for bx in 0..grid[0] as u64 {
                    for tz in 0..block[2] as u64 {
                        for ty in 0..block[1] as u64 {
                            for tx in 0..block[0] as u64 {
                                let want = bx << 48 | by << 32 | bz << 24 | tx << 12 | ty << 6 | tz;
                                assert_eq!(out[i], want, "grid {grid:?} block {block:?} #{i}");
                                i += 1;
                            }
                        }
                    }
                }
            }
        }
        let mut want_dims = grid.to_vec();
        want_dims.extend(block);
        assert_eq!(dims.to_vec().unwrap(), want_dims);
    }
}

#[test]
fn syncthreads_count_and_or() {
    let d = Emu::new();
    let out = Buf::<i32>::zeros(&d, 3).unwrap();
    for (m, want) in [(3, [86, 0, 1]), (1, [256, 1, 1]), (300, [1, 0, 1])] {
        d.launch(
            "st_sync_count",
            Launch::blocks(2, 256),
            &[Arg::I32(m), out.arg(0)],
        )
        .unwrap();
        assert_eq!(out.to_vec().unwrap(), want, "mod {m}");
    }
}

#[test]
fn unwritten_shared_memory_reads_as_poison_not_as_the_last_block() {
    let d = Emu::new();
    let out = Buf::<f32>::zeros(&d, 2).unwrap();
    d.launch("st_shared_unwritten", Launch::blocks(2, 32), &[out.arg(0)])
        .unwrap();
    let out = out.to_vec().unwrap();
    assert_eq!(out[0], 1.0);
    assert!(out[1].is_nan(), "{}", out[1]);
}

#[test]
fn math_intrinsics() {
    let d = Emu::new();
    let (fo, dout, io) = (
        Buf::<f32>::zeros(&d, 10).unwrap(),
        Buf::<f64>::zeros(&d, 4).unwrap(),
        Buf::<i32>::zeros(&d, 8).unwrap(),
    );
    d.launch(
        "st_math",
        Launch::blocks(1, 1),
        &[
            Arg::F32(2.25),
            Arg::F64(0.5),
            fo.arg(0),
            dout.arg(0),
            io.arg(0),
        ],
    )
    .unwrap();
    let f = fo.to_vec().unwrap();
    assert_eq!(f[0], 1.0 / 1.5);
    assert_eq!(f[1], 0.0);
    assert_eq!(f[2], 2.25); // fminf ignores NaN
    assert_eq!(f[3], 2.0);
    assert_eq!(f[4], 7.0);
    assert_eq!(f[5], 1.125);
    assert_eq!(f[6], 2.25);
    assert_eq!(f[7], 2.25f32.mul_add(2.25, 1.0));
    assert_eq!(f[8], 1.5);
    assert_eq!(f[9], 1.0);
    let x = dout.to_vec().unwrap();
    assert_eq!(x, vec![0.5, 0.5f64.ln_1p(), 1.5, 0.5f64.atan2(1.0)]);
    assert_eq!(io.to_vec().unwrap(), vec![1, 3, 4, 2, 8, 4, 31, 8]);
}

#[test]
fn launches_from_parallel_threads_are_serialised() {
    // Each thread drives its own device; the launches share the process-wide statics.
    let handles: Vec<_> = (0..4u32)
        .map(|t| {
            std::thread::spawn(move || {
                let d = Emu::new();
                for _ in 0..3 {
                    let n = 1000 + 100 * t as usize;
                    let input: Vec<u32> = (1..=n as u32).collect();
                    let din = Buf::from(&d, &input).unwrap();
                    let blocks = n.div_ceil(128);
                    let out = Buf::<u64>::zeros(&d, blocks).unwrap();
                    d.launch(
                        "st_block_sum",
                        Launch::blocks(blocks as u32, 128),
                        &[din.arg(0), Arg::I32(n as i32), out.arg(0)],
                    )
                    .unwrap();
                    let n = n as u64;
                    assert_eq!(out.to_vec().unwrap().iter().sum::<u64>(), n * (n + 1) / 2);
                }
            })
        })
        .collect();
    for h in handles {
        h.join().unwrap();
    }
}

// ----- errors inside kernels ------------------------------------------------------------------

#[test]
fn a_deadlock_is_reported_not_hung() {
    let d = Emu::new();
    let p = Buf::<i32>::zeros(&d, 32).unwrap();
    let e = err_of(d.launch("st_deadlock", Launch::blocks(1, 32), &[p.arg(0)]));
    assert!(e.contains("st_deadlock") && e.contains("deadlock"), "{e}");
    // The device stays usable.
    let out = Buf::<i32>::zeros(&d, 3).unwrap();
    d.launch(
        "st_early_exit",
        Launch::blocks(3, 64),
        &[Arg::I32(4), out.arg(0)],
    )
    .unwrap();
    assert_eq!(out.to_vec().unwrap(), vec![10; 3]);
}

#[test]
fn a_shuffle_from_a_returned_lane_is_an_error() {
    let d = Emu::new();
    let p = Buf::<i32>::zeros(&d, 32).unwrap();
    let e = err_of(d.launch("st_shfl_exited", Launch::blocks(1, 32), &[p.arg(0)]));
    assert!(
        e.contains("reads lane 1") && e.contains("not taking part"),
        "{e}"
    );
}

#[test]
fn assert_and_trap_fail_the_launch_not_the_process() {
    let d = Emu::new();
    d.launch("st_assert", Launch::blocks(2, 64), &[Arg::I32(42)])
        .unwrap();
    let e = err_of(d.launch("st_assert", Launch::blocks(2, 64), &[Arg::I32(1)]));
    assert!(e.contains("assertion `v == 42` failed"), "{e}");
    let e = err_of(d.launch("st_trap", Launch::blocks(3, 32), &[]));
    assert!(e.contains("__trap()") && e.contains("block (0,0,0)"), "{e}");
}

#[test]
fn a_write_past_an_allocation_is_caught_by_the_guard_zones() {
    let d = Emu::new();
    let p = Buf::<f32>::zeros(&d, 10).unwrap();
    let other = Buf::<f32>::zeros(&d, 10).unwrap();
    // In bounds: fine.
    d.launch(
        "st_write",
        Launch::blocks(1, 32),
        &[p.arg(0), Arg::I32(9), Arg::F32(1.0)],
    )
    .unwrap();
    // One element past the end: the launch reports it, and so does every later sync/dtoh.
    let e = err_of(d.launch(
        "st_write",
        Launch::blocks(1, 32),
        &[p.arg(0), Arg::I32(10), Arg::F32(0.0)],
    ));
    assert!(
        e.contains("st_write")
            && e.contains("device memory corrupted: write past allocation of 40 bytes")
            && e.contains("+0..+4 after its end"),
        "{e}"
    );
    assert!(err_of(d.sync()).contains("write past allocation of 40 bytes"));
    assert!(other
        .to_vec()
        .unwrap_err()
        .contains("device memory corrupted"));
    // Freed, the corrupted allocation is reported once more by the next sync, then forgotten.
    drop(p);
    let e = err_of(d.sync());
    assert!(e.contains("found when it was freed"), "{e}");
    d.sync().unwrap();
    assert_eq!(other.to_vec().unwrap(), vec![0.0; 10]);

    // Before the start.
    let q = Buf::<f32>::zeros(&d, 4).unwrap();
    let e = err_of(d.launch(
        "st_write",
        Launch::blocks(1, 32),
        &[q.arg(0), Arg::I32(-2), Arg::F32(3.0)],
    ));
    assert!(
        e.contains("write before allocation of 16 bytes") && e.contains("-8..-4 before its start"),
        "{e}"
    );
}

// ----- launches -------------------------------------------------------------------------------

#[test]
fn launch_configurations_are_validated_like_the_driver() {
    let d = Emu::new();
    let p = Buf::<i32>::zeros(&d, 32).unwrap();
    let bad = [
        (geom([1, 1, 1], [1025, 1, 1]), "1024"),
        (geom([1, 1, 1], [32, 32, 2]), "more than 1024 threads"),
        (geom([1, 1, 1], [1, 1, 65]), "block.z"),
        (geom([1, 1, 1], [0, 1, 1]), "block dimension is 0"),
        (geom([0, 1, 1], [32, 1, 1]), "grid dimension is 0"),
        (geom([1, 65536, 1], [32, 1, 1]), "grid.y and grid.z"),
        (geom([1, 1, 65536], [32, 1, 1]), "grid.y and grid.z"),
        (geom([1 << 31, 1, 1], [32, 1, 1]), "grid.x"),
        (geom([1, 1, 1], [48, 1, 1]), "whole warps"),
        (geom([1, 1, 1], [8, 5, 1]), "whole warps"),
    ];
    for (l, why) in bad {
        let e = err_of(d.launch("st_bounds_first", l, &[p.arg(0)]));
        assert!(
            e.starts_with("invalid launch configuration") && e.contains(why),
            "{l:?}: {e}"
        );
    }
    // Legal shapes just below the limits.
    d.launch("st_bounds_first", geom([1, 1, 1], [16, 2, 32]), &[p.arg(0)])
        .unwrap();
    d.launch("st_bounds_first", geom([1, 1, 1], [20, 1, 1]), &[p.arg(0)])
        .unwrap();
}

#[test]
fn kernel_names_and_arguments_are_checked() {
    let d = Emu::new();
    let p = Buf::<i32>::zeros(&d, 64).unwrap();
    let e = err_of(d.launch("no_such_kernel", Launch::blocks(1, 32), &[]));
    assert!(e.contains("unknown kernel no_such_kernel"), "{e}");
    let e = err_of(d.launch("st_bounds", Launch::blocks(1, 64), &[]));
    assert!(e.contains("takes 1 arguments, got 0"), "{e}");
    let e = err_of(d.launch("st_bounds", Launch::blocks(1, 64), &[Arg::I64(0)]));
    assert!(
        e.contains("argument 0 is I64(0) but parameter 0 is a pointer"),
        "{e}"
    );
    let e = err_of(d.launch(
        "st_early_exit",
        Launch::blocks(1, 64),
        &[Arg::U32(1), p.arg(0)],
    ));
    assert!(
        e.contains("parameter 0 is a 32-bit signed integer (int)"),
        "{e}"
    );
    let e = err_of(d.launch(
        "st_write",
        Launch::blocks(1, 32),
        &[p.arg(0), Arg::I32(0), Arg::F64(1.0)],
    ));
    assert!(e.contains("parameter 2 is a float"), "{e}");
    // A pointer that is not into a live allocation (here: freed).
    let gone = d.alloc(64).unwrap();
    d.free(gone);
    let e = err_of(d.launch("st_bounds", Launch::blocks(1, 64), &[Arg::Ptr(gone)]));
    assert!(
        e.contains("argument 0") && e.contains("does not point into any live"),
        "{e}"
    );
    // Launch bounds across lines, before or after `void`: both kernels exist and run.
    d.launch("st_bounds", Launch::blocks(1, 64), &[p.arg(0)])
        .unwrap();
    assert_eq!(p.to_vec().unwrap(), vec![7; 64]);
    d.launch("st_bounds_first", Launch::blocks(1, 32), &[p.arg(0)])
        .unwrap();
    assert_eq!(p.to_vec().unwrap()[..32], [8; 32]);
}

#[test]
fn every_kernel_of_the_sources_is_compiled_in() {
    let ks = Emu::kernels();
    let has = |f: &str, k: &str| ks.iter().any(|(ff, kk)| ff == f && *kk == k);
    for k in [
        "dv_row_aux",
        "dv_finish",
        "dv_l2_direct",
        "dv_sgemm",
        "dv_topk_merge",
        "dv_topk_part",
        "dv_topk_merge_parts",
        "dv_split_tf32",
    ] {
        assert!(has("kernels/similarity.cu", k), "{k}: {ks:?}");
    }
    for k in ["dv_ce_rows", "dv_margin_rows"] {
        assert!(has("kernels/contrastive.cu", k), "{k}: {ks:?}");
    }
    for k in [
        "dv_pair_keys",
        "dv_bitonic_step",
        "dv_bitonic_tile",
        "dv_w_coef",
    ] {
        assert!(has("kernels/wasserstein.cu", k), "{k}: {ks:?}");
    }
    // every kernel the host code launches is there
    for k in densevec_cuda::KERNEL_NAMES {
        assert!(
            ks.iter().any(|(_, kk)| kk == k),
            "{k} is launched but not compiled"
        );
    }
    assert!(has("tests/selftest.cu", "st_bounds"));
    assert!(has("tests/selftest.cu", "st_bounds_first"));
    assert!(!ks.iter().any(|(_, k)| k.starts_with("st_commented_out")));
    // Every .cu file of densevec-cuda/kernels is there.
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../densevec-cuda/kernels");
    for e in std::fs::read_dir(dir).unwrap() {
        let name = e.unwrap().file_name().into_string().unwrap();
        if name.ends_with(".cu") {
            let f = format!("kernels/{name}");
            assert!(ks.iter().any(|(ff, _)| *ff == f), "{f} not compiled");
        }
    }
}

// ----- memory ---------------------------------------------------------------------------------

#[test]
fn allocations_are_zeroed_aligned_and_counted() {
    let d = Emu::new();
    assert_eq!(d.budget(), DEFAULT_BUDGET);
    assert_eq!(Emu::with_budget(12345).budget(), 12345);
    let a = Buf::<f32>::zeros(&d, 1000).unwrap();
    let b = Buf::<u8>::zeros(&d, 3).unwrap();
    assert_eq!(a.ptr % 256, 0);
    assert_eq!(b.ptr % 256, 0);
    assert!(a.to_vec().unwrap().iter().all(|&v| v == 0.0));
    assert_eq!((d.live_allocations(), d.live_bytes()), (2, 4003));
    drop(a);
    assert_eq!((d.live_allocations(), d.live_bytes()), (1, 3));
    drop(b);
    assert_eq!(
        (d.live_allocations(), d.live_bytes(), d.peak_bytes()),
        (0, 0, 4003)
    );
    assert!(d.alloc(0).unwrap_err().contains("0 bytes"));
}

#[test]
fn copies_must_stay_inside_one_allocation() {
    let d = Emu::new();
    let a = Buf::<f32>::zeros(&d, 8).unwrap();
    let b = Buf::<f32>::zeros(&d, 8).unwrap();
    a.write(0, &[1.0; 8]).unwrap();
    let mut host = [0u8; 36];
    // Past the end (by 4 bytes), from the middle, into the guard zone, unknown pointers.
    let e = err_of(d.dtoh(a.ptr, &mut host));
    assert!(
        e.contains("dtoh") && e.contains("run past the allocation") && e.contains("by 4 bytes"),
        "{e}"
    );
    let e = err_of(d.htod(&host[..8], a.at(7)));
    assert!(e.contains("htod") && e.contains("run past"), "{e}");
    let e = err_of(d.htod(&host[..4], a.ptr + 32));
    assert!(e.contains("not inside any live allocation"), "{e}");
    let e = err_of(d.zero(a.at(4), 17));
    assert!(e.contains("zero") && e.contains("run past"), "{e}");
    let e = err_of(d.dtoh(16, &mut host[..4]));
    assert!(e.contains("not inside any live allocation"), "{e}");
    // Exactly the allocation, or a part of it: fine.
    d.dtoh(a.at(2), &mut host[..24]).unwrap();
    d.zero(a.at(4), 16).unwrap();
    assert_eq!(
        a.to_vec().unwrap(),
        [1.0, 1.0, 1.0, 1.0, 0.0, 0.0, 0.0, 0.0]
    );
    assert_eq!(b.to_vec().unwrap(), [0.0; 8]);
    // Empty copies are no-ops, wherever they point (as on CUDA).
    d.htod(&[], 16).unwrap();
}

#[test]
fn bad_frees_are_reported_by_the_next_sync() {
    let d = Emu::new();
    let p = d.alloc(100).unwrap();
    d.free(p + 4);
    d.free(p);
    d.free(p);
    let e = err_of(d.sync());
    assert!(e.contains(&format!("free of 0x{:x}", p + 4)), "{e}");
    assert!(
        e.contains(&format!("free of 0x{p:x}")) && e.contains("freed twice"),
        "{e}"
    );
    d.sync().unwrap();
    // dtoh reports them too (it synchronises).
    let q = Buf::<u8>::zeros(&d, 4).unwrap();
    d.free(12345);
    assert!(q.to_vec().unwrap_err().contains("free of 0x3039"));
}

// ----- SGEMM ----------------------------------------------------------------------------------

/// Column-major reference of the call `g` (its device pointers unused) on host operands:
/// C = alpha·op(A)·op(B) + beta·C in f64 (C not read when beta = 0).
fn sgemm_ref(g: &Sgemm, a: &[f32], b: &[f32], c: &mut [f32]) {
    let u = |v: i32| v as usize;
    let (m, n, k) = (u(g.m), u(g.n), u(g.k));
    let (lda, ldb, ldc) = (u(g.lda), u(g.ldb), u(g.ldc));
    for j in 0..n {
        for i in 0..m {
            let mut s = 0f64;
            for l in 0..k {
                let x = if g.transa {
                    a[l + i * lda]
                } else {
                    a[i + l * lda]
                };
                let y = if g.transb {
                    b[j + l * ldb]
                } else {
                    b[l + j * ldb]
                };
                s += x as f64 * y as f64;
            }
            let old = if g.beta == 0.0 {
                0.0
            } else {
                g.beta as f64 * c[i + j * ldc] as f64
            };
            c[i + j * ldc] = (g.alpha as f64 * s + old) as f32;
        }
    }
}

/// Column-major operands of an SGEMM test: op(A) m × k and op(B) k × n stored with leading
/// dimensions padded by `pads` (lda, ldb) and C m × n with ldc = m + `pads.2`, random in [-1, 1).
fn sgemm_operands(
    rng: &mut Rng,
    (ta, tb): (bool, bool),
    (m, n, k): (usize, usize, usize),
    pads: (usize, usize, usize),
) -> (Vec<f32>, Vec<f32>, (usize, usize, usize)) {
    let (ar, ac) = if ta { (k, m) } else { (m, k) };
    let (br, bc) = if tb { (n, k) } else { (k, n) };
    let lds = (ar + pads.0, br + pads.1, m + pads.2);
    let a: Vec<f32> = (0..lds.0 * ac).map(|_| rng.f32()).collect();
    let b: Vec<f32> = (0..lds.1 * bc).map(|_| rng.f32()).collect();
    (a, b, lds)
}

/// The [`Sgemm`] of operands at `ptrs` (A, B, C).
fn sgemm_of(
    (ta, tb): (bool, bool),
    (m, n, k): (usize, usize, usize),
    (lda, ldb, ldc): (usize, usize, usize),
    (alpha, beta): (f32, f32),
    (a, b, c): (DevPtr, DevPtr, DevPtr),
) -> Sgemm {
    let i = |v: usize| v as i32;
    Sgemm {
        transa: ta,
        transb: tb,
        m: i(m),
        n: i(n),
        k: i(k),
        alpha,
        a,
        lda: i(lda),
        b,
        ldb: i(ldb),
        beta,
        c,
        ldc: i(ldc),
        tf32: false,
    }
}

/// Runs the call `g` on the emulator with host operands (A, B, C) uploaded in place of its
/// device pointers; returns C.
fn run_sgemm(d: &Emu, g: Sgemm, (a, b, c): (&[f32], &[f32], &[f32])) -> Vec<f32> {
    let (da, db, dc) = (
        Buf::from(d, a).unwrap(),
        Buf::from(d, b).unwrap(),
        Buf::from(d, c).unwrap(),
    );
    d.sgemm(&Sgemm {
        a: da.ptr,
        b: db.ptr,
        c: dc.ptr,
        ..g
    })
    .unwrap();
    dc.to_vec().unwrap()
}

#[test]
fn sgemm_all_transpose_combinations_with_padded_leading_dimensions() {
    let d = Emu::new();
    let mut rng = Rng(42);
    let (m, n, k) = (37, 29, 23);
    for (ta, tb) in [(false, false), (true, false), (false, true), (true, true)] {
        let (a, b, (lda, ldb, ldc)) = sgemm_operands(&mut rng, (ta, tb), (m, n, k), (3, 5, 2));
        let c: Vec<f32> = (0..ldc * n).map(|_| rng.f32()).collect();
        for (alpha, beta) in [(1.0, 0.0), (0.75, -0.5), (-2.0, 1.0)] {
            let call = sgemm_of(
                (ta, tb),
                (m, n, k),
                (lda, ldb, ldc),
                (alpha, beta),
                (0, 0, 0),
            );
            let got = run_sgemm(&d, call, (&a, &b, &c));
            let mut want = c.clone();
            sgemm_ref(&call, &a, &b, &mut want);
            for (i, (g, w)) in got.iter().zip(&want).enumerate() {
                assert!(
                    (g - w).abs() <= 1e-6 * w.abs().max(1.0),
                    "{ta} {tb} #{i}: {g} vs {w}"
                );
            }
            // The padding rows of C (m .. ldc) are not touched.
            for j in 0..n {
                assert_eq!(
                    got[j * ldc + m..(j + 1) * ldc],
                    c[j * ldc + m..(j + 1) * ldc]
                );
            }
        }
    }
    assert_eq!(d.live_allocations(), 0);
}

#[test]
fn sgemm_beta_zero_does_not_read_c_and_alpha_zero_does_not_read_a_b() {
    let d = Emu::new();
    let a = [1.0f32, 2.0, 3.0, 4.0];
    let b = [1.0f32, 0.0, 0.0, 1.0];
    let got = run_sgemm(
        &d,
        sgemm_of((false, false), (2, 2, 2), (2, 2, 2), (1.0, 0.0), (0, 0, 0)),
        (&a, &b, &[f32::NAN; 4]),
    );
    assert_eq!(got, a);
    let got = run_sgemm(
        &d,
        sgemm_of((false, false), (2, 2, 2), (2, 2, 2), (0.0, 2.0), (0, 0, 0)),
        (&[f32::NAN; 4], &b, &a),
    );
    assert_eq!(got, [2.0, 4.0, 6.0, 8.0]);
    // k = 0: C = beta·C.
    let got = run_sgemm(
        &d,
        sgemm_of((false, false), (2, 2, 0), (2, 1, 2), (1.0, 0.5), (0, 0, 0)),
        (&[0.0], &[0.0], &a),
    );
    assert_eq!(got, [0.5, 1.0, 1.5, 2.0]);
}

#[test]
fn sgemm_validates_like_cublas_and_checks_operand_ranges() {
    let d = Emu::new();
    let a = Buf::<f32>::zeros(&d, 6 * 4).unwrap();
    let b = Buf::<f32>::zeros(&d, 4 * 5).unwrap();
    let c = Buf::<f32>::zeros(&d, 6 * 5).unwrap();
    let ok = Sgemm {
        transa: false,
        transb: false,
        m: 6,
        n: 5,
        k: 4,
        alpha: 1.0,
        a: a.ptr,
        lda: 6,
        b: b.ptr,
        ldb: 4,
        beta: 0.0,
        c: c.ptr,
        ldc: 6,
        tf32: false,
    };
    d.sgemm(&ok).unwrap();
    let cases: Vec<(Sgemm, &str)> = vec![
        (Sgemm { m: -1, ..ok }, "m = -1 < 0"),
        (Sgemm { k: -2, ..ok }, "k = -2 < 0"),
        (Sgemm { lda: 5, ..ok }, "lda = 5 < max(1, m = 6)"),
        (
            Sgemm {
                transa: true,
                lda: 3,
                ..ok
            },
            "lda = 3 < max(1, k, A transposed = 4)",
        ),
        (Sgemm { ldb: 3, ..ok }, "ldb = 3 < max(1, k = 4)"),
        (
            Sgemm {
                transb: true,
                ldb: 4,
                ..ok
            },
            "ldb = 4 < max(1, n, B transposed = 5)",
        ),
        (Sgemm { ldc: 5, ..ok }, "ldc = 5 < max(1, m = 6)"),
        (Sgemm { m: 0, lda: 0, ..ok }, "lda = 0 < max(1, m = 0)"),
        (Sgemm { lda: 7, ..ok }, "operand A"),
        (Sgemm { ldb: 5, ..ok }, "operand B"),
        (Sgemm { ldc: 7, ..ok }, "operand C"),
        (
            Sgemm {
                b: c.ptr + 48,
                ..ok
            },
            "operand B",
        ),
        (Sgemm { c: c.ptr + 4, ..ok }, "operand C"),
        (Sgemm { a: a.ptr + 2, ..ok }, "A (0x"),
    ];
    for (g, want) in cases {
        let e = err_of(d.sgemm(&g));
        assert!(e.contains(want), "{g:?}: {e}");
        if want.contains('<') {
            assert!(e.contains("CUBLAS_STATUS_INVALID_VALUE"), "{e}");
        }
    }
    // m = 0 or n = 0 touches nothing, even through bad pointers.
    d.sgemm(&Sgemm { n: 0, c: 8, ..ok }).unwrap();
}

#[test]
fn row_major_gemm_helper_runs_on_the_column_major_sgemm() {
    // gemm_rm of densevec-cuda (the orientation trick the algorithms use) on the emulator.
    let d = Emu::new();
    let mut rng = Rng(3);
    let (m, n, k) = (13, 17, 9);
    for (ta, tb) in [(false, false), (true, false), (false, true), (true, true)] {
        // Row-major A: m × k (k × m if ta), B: k × n (n × k if tb), with padded row strides.
        let (ar, ac) = if ta { (k, m) } else { (m, k) };
        let (br, bc) = if tb { (n, k) } else { (k, n) };
        let (lda, ldb, ldc) = (ac + 2, bc + 1, n + 4);
        let a: Vec<f32> = (0..ar * lda).map(|_| rng.f32()).collect();
        let b: Vec<f32> = (0..br * ldb).map(|_| rng.f32()).collect();
        let (da, db) = (Buf::from(&d, &a).unwrap(), Buf::from(&d, &b).unwrap());
        let dc = Buf::<f32>::zeros(&d, m * ldc).unwrap();
        let ra = Rm {
            t: ta,
            ..Rm::n(da.ptr, lda)
        };
        let rb = Rm {
            t: tb,
            ..Rm::n(db.ptr, ldb)
        };
        gemm_rm(&d, [m, n, k], 1.0, ra, rb, 0.0, Rm::n(dc.ptr, ldc)).unwrap();
        let c = dc.to_vec().unwrap();
        for i in 0..m {
            for j in 0..n {
                let want: f64 = (0..k)
                    .map(|l| {
                        let x = if ta { a[l * lda + i] } else { a[i * lda + l] };
                        let y = if tb { b[j * ldb + l] } else { b[l * ldb + j] };
                        x as f64 * y as f64
                    })
                    .sum();
                assert!(
                    (c[i * ldc + j] as f64 - want).abs() < 1e-5,
                    "{ta} {tb} ({i},{j})"
                );
            }
        }
    }
}

// ----- the similarity kernels of densevec-cuda ------------------------------------------------

#[test]
fn dv_row_aux_one_warp_per_row() {
    let d = Emu::new();
    let mut rng = Rng(11);
    for (rows, cols) in [(37usize, 70usize), (8, 32), (1, 1), (9, 0), (300, 5)] {
        let mut x: Vec<f32> = (0..rows * cols).map(|_| rng.f32()).collect();
        if rows > 2 && cols > 0 {
            x[cols..2 * cols].fill(0.0); // a zero row: cosine's auxiliary is 0
        }
        let dx = Buf::from(&d, &x).unwrap();
        for metric in [1, 2] {
            let out = Buf::<f32>::from(&d, &vec![f32::NAN; rows]).unwrap();
            let warps_per_block = 256 / 32;
            let blocks = rows.div_ceil(warps_per_block) as u32;
            d.launch(
                "dv_row_aux",
                Launch::blocks(blocks, 256),
                &[
                    dx.arg(0),
                    Arg::I32(rows as i32),
                    Arg::I32(cols as i32),
                    Arg::I32(metric),
                    out.arg(0),
                ],
            )
            .unwrap();
            let got = out.to_vec().unwrap();
            for r in 0..rows {
                let ss: f64 = x[r * cols..(r + 1) * cols]
                    .iter()
                    .map(|&v| v as f64 * v as f64)
                    .sum();
                let want = match metric {
                    1 if ss == 0.0 => 0.0,
                    1 => 1.0 / ss.sqrt(),
                    _ => ss,
                };
                assert!(
                    (got[r] as f64 - want).abs() <= 1e-5 * want.max(1.0),
                    "{rows}x{cols} metric {metric} row {r}: {} vs {want}",
                    got[r]
                );
            }
        }
    }
}

/// Launches dv_finish on `tile` (m × n, leading dimension ld) with the given auxiliaries and,
/// for l2sq, dv_l2_direct with the rows (d values each; `lo` 0 = plain).
/// The rows of both sides of a finish: (hi, lo) device addresses each.
type SideRows = ((u64, u64), (u64, u64));

fn finish_on(
    d: &Emu,
    tile: &Buf<f32>,
    [m, n, ld, cols]: [usize; 4],
    (qa, ca): (&Buf<f32>, &Buf<f32>),
    (q, c): SideRows,
    metric: i32,
) {
    d.launch(
        "dv_finish",
        geom([n.div_ceil(256) as u32, m as u32, 1], [256, 1, 1]),
        &[
            tile.arg(0),
            Arg::I32(m as i32),
            Arg::I32(n as i32),
            Arg::I64(ld as i64),
            qa.arg(0),
            ca.arg(0),
            Arg::I32(metric),
        ],
    )
    .unwrap();
    if metric != 2 {
        return;
    }
    d.launch(
        "dv_l2_direct",
        geom(
            [n.div_ceil(64) as u32, m.div_ceil(64) as u32, 1],
            [256, 1, 1],
        ),
        &[
            tile.arg(0),
            Arg::I32(m as i32),
            Arg::I32(n as i32),
            Arg::I64(ld as i64),
            qa.arg(0),
            ca.arg(0),
            Arg::Ptr(q.0),
            Arg::Ptr(q.1),
            Arg::Ptr(c.0),
            Arg::Ptr(c.1),
            Arg::I32(cols as i32),
            Arg::F32(densevec_core::similarity::l2_recompute_threshold(cols)),
        ],
    )
    .unwrap();
}

#[test]
fn dv_finish_epilogue() {
    let d = Emu::new();
    // Finish: m = 3 rows, n = 2 columns, ld = 5; metric 1 scales, metric 2 forms distances
    // (none of these cancels, so the rows are not read: null pointers).
    let (m, n, ld) = (3usize, 2usize, 5usize);
    let tile: Vec<f32> = (0..m * ld).map(|i| i as f32).collect();
    let qa = [1.0f32, 200.0, 300.0];
    let ca = [1000.0f32, 50.0];
    for metric in [1, 2] {
        let t = Buf::from(&d, &tile).unwrap();
        let (dq, dc) = (Buf::from(&d, &qa).unwrap(), Buf::from(&d, &ca).unwrap());
        finish_on(&d, &t, [m, n, ld, 4], (&dq, &dc), ((0, 0), (0, 0)), metric);
        let got = t.to_vec().unwrap();
        for i in 0..m {
            for j in 0..ld {
                let v = tile[i * ld + j];
                let want = if j >= n {
                    v
                } else if metric == 1 {
                    v * (qa[i] * ca[j])
                } else {
                    (qa[i] + ca[j] - 2.0 * v).max(0.0)
                };
                assert_eq!(got[i * ld + j], want, "metric {metric} ({i},{j})");
            }
        }
    }
}

#[test]
fn dv_finish_recomputes_cancelled_l2sq_from_plain_and_split_rows() {
    // Rows with a large common offset: the expansion ‖q‖² + ‖c‖² − 2q·c loses every digit
    // of the small distances; the kernel recomputes those pairs from the rows, stored plain
    // or split into hi + lo (the 3xTF32 layout).
    // 70 × 67 pairs span four 64 × 64 tiles; corpus rows from 40 on have no offset, so their
    // pairs do not cancel and keep the expansion (the tile kernel writes only the pairs it
    // must redo); the tile of rows ≥ 64 × columns ≥ 64 holds no cancelling pair at all.
    let d = Emu::new();
    let (m, n, cols) = (70usize, 67usize, 33usize);
    let mut rng = Rng(21);
    let q: Vec<f32> = (0..m * cols)
        .map(|i| if i / cols < 64 { 1000.0 } else { 0.0 } + rng.f32())
        .collect();
    let mut c: Vec<f32> = (0..n * cols)
        .map(|i| if i / cols < 40 { 1000.0 } else { 0.0 } + rng.f32())
        .collect();
    c[..cols].copy_from_slice(&q[..cols]); // an exact duplicate: distance 0
    let sumsq = |x: &[f32]| x.iter().map(|&v| v * v).sum::<f32>();
    let qa: Vec<f32> = q.chunks(cols).map(sumsq).collect();
    let ca: Vec<f32> = c.chunks(cols).map(sumsq).collect();
    let dot = |a: &[f32], b: &[f32]| a.iter().zip(b).map(|(x, y)| x * y).sum::<f32>();
    let raw: Vec<f32> = (0..m * n)
        .map(|k| dot(&q[k / n * cols..][..cols], &c[k % n * cols..][..cols]))
        .collect();
    let want: Vec<f64> = (0..m * n)
        .map(|k| {
            let (a, b) = (&q[k / n * cols..][..cols], &c[k % n * cols..][..cols]);
            a.iter()
                .zip(b)
                .map(|(&x, &y)| (x as f64 - y as f64).powi(2))
                .sum()
        })
        .collect();
    let split = |x: &[f32]| -> (Vec<f32>, Vec<f32>) {
        let hi: Vec<f32> = x
            .iter()
            .map(|&v| f32::from_bits((v.to_bits() + 0x1000) & 0xffff_e000))
            .collect();
        let lo = x.iter().zip(&hi).map(|(&v, &h)| v - h).collect();
        (hi, lo)
    };
    let (dqa, dca) = (Buf::from(&d, &qa).unwrap(), Buf::from(&d, &ca).unwrap());
    for stored_split in [false, true] {
        let (qh, ql) = if stored_split {
            split(&q)
        } else {
            (q.clone(), vec![0.0; q.len()])
        };
        let (ch, cl) = if stored_split {
            split(&c)
        } else {
            (c.clone(), vec![0.0; c.len()])
        };
        let bufs = [&qh, &ql, &ch, &cl].map(|v| Buf::from(&d, v).unwrap());
        let lo = |b: &Buf<f32>| if stored_split { b.at(0) } else { 0 };
        let t = Buf::from(&d, &raw).unwrap();
        let sides = ((bufs[0].at(0), lo(&bufs[1])), (bufs[2].at(0), lo(&bufs[3])));
        finish_on(&d, &t, [m, n, n, cols], (&dqa, &dca), sides, 2);
        let got = t.to_vec().unwrap();
        assert_eq!(got[0], 0.0, "the duplicate pair (split {stored_split})");
        let tau = densevec_core::similarity::l2_recompute_threshold(cols);
        for k in 0..m * n {
            let (i, j) = (k / n, k % n);
            let expansion = (qa[i] + ca[j] - 2.0 * raw[k]).max(0.0);
            if expansion >= tau * (qa[i] + ca[j]) {
                assert_eq!(got[k], expansion, "pair ({i},{j}) keeps the expansion");
                assert!(i >= 64 || j >= 40, "pair ({i},{j}) should cancel");
            } else {
                let err = (got[k] as f64 - want[k]).abs();
                assert!(
                    err <= 1e-6 * want[k] + 1e-30,
                    "pair ({i},{j}) (split {stored_split}): {} vs {}",
                    got[k],
                    want[k]
                );
            }
        }
    }
}

#[test]
fn dv_sgemm_kernel_has_the_semantics_of_cublas() {
    // densevec's own SGEMM kernel (used when libcublas is missing) against the emulated
    // cuBLAS, for every transpose combination, padded leading dimensions, alpha/beta ≠ 1, and
    // beta = 0 over NaN (C not read); shapes cross the 64 × 64 tiles and the 16-deep k slices.
    let d = Emu::new();
    let mut rng = Rng(5);
    let (m, n, k) = (70usize, 130usize, 37usize);
    for (ta, tb) in [(false, false), (false, true), (true, false), (true, true)] {
        for (alpha, beta) in [(1.0f32, 0.0f32), (0.5, -2.0)] {
            let (a, b, lds) = sgemm_operands(&mut rng, (ta, tb), (m, n, k), (3, 1, 5));
            let ldc = lds.2;
            let c0: Vec<f32> = (0..ldc * n)
                .map(|i| {
                    if beta == 0.0 && i % 7 == 0 {
                        f32::NAN
                    } else {
                        rng.f32()
                    }
                })
                .collect();
            let (da, db) = (Buf::from(&d, &a).unwrap(), Buf::from(&d, &b).unwrap());
            let (c1, c2) = (Buf::from(&d, &c0).unwrap(), Buf::from(&d, &c0).unwrap());
            let g = |c: &Buf<f32>| {
                let ptrs = (da.ptr, db.ptr, c.ptr);
                sgemm_of((ta, tb), (m, n, k), lds, (alpha, beta), ptrs)
            };
            d.sgemm(&g(&c1)).unwrap();
            densevec_cuda::dev::sgemm_by_kernel(&d, &g(&c2)).unwrap();
            let (want, got) = (c1.to_vec().unwrap(), c2.to_vec().unwrap());
            for j in 0..n {
                for i in 0..ldc {
                    let (w, x) = (want[j * ldc + i], got[j * ldc + i]);
                    if i < m {
                        assert!(
                            (w - x).abs() < 1e-5,
                            "ta={ta} tb={tb} ({i},{j}): {x} vs {w}"
                        );
                    } else {
                        // padding rows of C are untouched
                        assert!(
                            x.to_bits() == c0[j * ldc + i].to_bits(),
                            "padding ({i},{j})"
                        );
                    }
                }
            }
        }
    }
    assert_eq!(d.live_allocations(), 0);
}

/// Reference top-k of one row of scores, in the CPU core's order: larger key first (key = -s
/// for l2sq, -inf for NaN), then a number before NaN, then lower index.
fn topk_by_sort(scores: &[f32], k: usize, metric: i32) -> Vec<(u32, f32)> {
    let key = |s: f32| {
        if s.is_nan() {
            f32::NEG_INFINITY
        } else if metric == 2 {
            -s
        } else {
            s
        }
    };
    let mut v: Vec<(u32, f32)> = scores
        .iter()
        .enumerate()
        .map(|(i, &s)| (i as u32, s))
        .collect();
    v.sort_by(|x, y| {
        let (kx, ky) = (key(x.1), key(y.1));
        ky.partial_cmp(&kx)
            .expect("keys are never NaN")
            .then(x.1.is_nan().cmp(&y.1.is_nan()))
            .then(x.0.cmp(&y.0))
    });
    v.truncate(k);
    v
}

/// Streams the q × c score table through dv_topk_merge in corpus chunks of `chunk` rows, as
/// the GPU top-k does (with `slices` > 1: dv_topk_part over that many slices of each chunk,
/// then dv_topk_merge_parts); returns (indices, scores), q × k.
fn topk_on_emu(
    d: &Emu,
    table: &[f32],
    [q, c, k]: [usize; 3],
    (chunk, slices): (usize, usize),
    metric: i32,
) -> (Vec<u32>, Vec<f32>) {
    let bi = Buf::<u32>::zeros(d, q * k).unwrap();
    let bs = Buf::<f32>::zeros(d, q * k).unwrap();
    let pi = Buf::<u32>::zeros(d, q * slices * k).unwrap();
    let ps = Buf::<f32>::zeros(d, q * slices * k).unwrap();
    let ld = chunk + 3; // padded rows
    let tile = Buf::<f32>::zeros(d, q * ld).unwrap();
    let mut j0 = 0;
    while j0 < c {
        let n = chunk.min(c - j0);
        let mut t = vec![f32::NAN; q * ld];
        for i in 0..q {
            t[i * ld..i * ld + n].copy_from_slice(&table[i * c + j0..i * c + j0 + n]);
        }
        tile.write(0, &t).unwrap();
        let have = Arg::I32(if j0 == 0 { 0 } else { k as i32 });
        if slices > 1 {
            d.launch(
                "dv_topk_part",
                geom([q as u32, slices as u32, 1], [256, 1, 1]),
                &[
                    tile.arg(0),
                    Arg::I32(n as i32),
                    Arg::I64(ld as i64),
                    Arg::U32(j0 as u32),
                    Arg::I32(k as i32),
                    Arg::I32(metric),
                    Arg::I32(slices as i32),
                    pi.arg(0),
                    ps.arg(0),
                ],
            )
            .unwrap();
            d.launch(
                "dv_topk_merge_parts",
                Launch::blocks(q as u32, 256),
                &[
                    pi.arg(0),
                    ps.arg(0),
                    Arg::I32((slices * k) as i32),
                    Arg::I32(k as i32),
                    have,
                    Arg::I32(metric),
                    bi.arg(0),
                    bs.arg(0),
                ],
            )
            .unwrap();
        } else {
            d.launch(
                "dv_topk_merge",
                Launch::blocks(q as u32, 256),
                &[
                    tile.arg(0),
                    Arg::I32(n as i32),
                    Arg::I64(ld as i64),
                    Arg::U32(j0 as u32),
                    Arg::I32(k as i32),
                    have,
                    Arg::I32(metric),
                    bi.arg(0),
                    bs.arg(0),
                ],
            )
            .unwrap();
        }
        j0 += n;
    }
    (bi.to_vec().unwrap(), bs.to_vec().unwrap())
}

#[test]
fn dv_topk_merge_matches_a_sort_and_the_cpu_top_k() {
    let d = Emu::new();
    let mut rng = Rng(99);
    // Small integer vectors: every score is exact, and there are many ties.
    let (q, c, cols) = (5usize, 300usize, 6usize);
    let qm: Vec<f32> = (0..q * cols).map(|_| rng.int(-2, 2) as f32).collect();
    let cm: Vec<f32> = (0..c * cols).map(|_| rng.int(-2, 2) as f32).collect();
    let dot = |i: usize, j: usize| -> f32 {
        (0..cols).map(|l| qm[i * cols + l] * cm[j * cols + l]).sum()
    };
    let sq = |v: &[f32]| -> f32 { v.iter().map(|x| x * x).sum() };
    for (metric, m) in [(0, Metric::Dot), (2, Metric::L2sq)] {
        let table: Vec<f32> = (0..q * c)
            .map(|t| {
                let (i, j) = (t / c, t % c);
                if metric == 0 {
                    dot(i, j)
                } else {
                    let d2 = sq(&qm[i * cols..(i + 1) * cols]) + sq(&cm[j * cols..(j + 1) * cols])
                        - 2.0 * dot(i, j);
                    d2.max(0.0)
                }
            })
            .collect();
        for (k, chunk, slices) in [
            (1, 300, 1),
            (10, 128, 1),
            (17, 60, 1),
            (1, 300, 7),
            (10, 128, 5),
            (17, 60, 4),
        ] {
            let (idx, sc) = topk_on_emu(&d, &table, [q, c, k], (chunk, slices), metric);
            let cpu = densevec_core::topk::top_k(&qm, q, &cm, c, cols, k, m).unwrap();
            let what = format!("metric {metric} k {k} chunk {chunk} slices {slices}");
            assert_eq!(idx, cpu.indices, "{what}");
            assert_eq!(sc, cpu.scores, "{what}");
            for i in 0..q {
                let want = topk_by_sort(&table[i * c..(i + 1) * c], k, metric);
                let got: Vec<(u32, f32)> =
                    (0..k).map(|r| (idx[i * k + r], sc[i * k + r])).collect();
                assert_eq!(got, want, "metric {metric} k {k} query {i}");
            }
        }
    }
    assert_eq!(d.live_allocations(), 0);
}

#[test]
fn dv_topk_merge_ranks_nan_last_and_handles_k_max() {
    let d = Emu::new();
    let mut rng = Rng(1234);
    let (q, c) = (2usize, 200usize);
    // NaN, ties, and ±∞ (whose keys tie with NaN's -∞: the number ranks first), ±0.
    let table: Vec<f32> = (0..q * c)
        .map(|_| match rng.int(0, 12) {
            0 => f32::NAN,
            1 => 0.5, // ties
            2 => f32::NEG_INFINITY,
            3 => f32::INFINITY,
            4 => -0.0,
            _ => rng.f32(),
        })
        .collect();
    // Slices shorter than k (chunk 50 in 3 slices, k = 7 and 128) are padded.
    for (k, chunk, slices) in [
        (128usize, 128usize, 1usize),
        (7, 50, 1),
        (128, 128, 2),
        (7, 50, 3),
    ] {
        for metric in [0, 2] {
            let (idx, sc) = topk_on_emu(&d, &table, [q, c, k], (chunk, slices), metric);
            for i in 0..q {
                let want = topk_by_sort(&table[i * c..(i + 1) * c], k, metric);
                for (r, (wi, ws)) in want.iter().enumerate() {
                    assert_eq!(
                        idx[i * k + r],
                        *wi,
                        "k {k} metric {metric} query {i} rank {r}"
                    );
                    let s = sc[i * k + r];
                    assert!(
                        s == *ws || (s.is_nan() && ws.is_nan()),
                        "rank {r}: {s} vs {ws}"
                    );
                }
            }
        }
    }
}

/// A DevPtr is plain data: the checks above would catch any pointer arithmetic slip.
#[test]
fn devptr_is_a_host_address() {
    let d = Emu::new();
    let b = Buf::<u32>::from(&d, &[1, 2, 3]).unwrap();
    let p: DevPtr = b.at(1);
    // SAFETY: the emulator's device addresses are host addresses of live allocations.
    assert_eq!(unsafe { *(p as *const u32) }, 2);
}

#[test]
fn gemm_x_cuts_long_split_reductions_into_pieces() {
    // 3xTF32 products over a reduction longer than TF32_K run piecewise through C (β = 1 after
    // the first piece): every orientation must still give α·op(A)·op(B) + β·C.
    use densevec_cuda::ops::{gemm_x, TF32_K, X};
    let d = Emu::new();
    let (m, n, k) = (3usize, 5usize, 2 * TF32_K + 37);
    let mut rng = Rng(31);
    let split = |x: &[f32]| -> (Vec<f32>, Vec<f32>) {
        let hi: Vec<f32> = x
            .iter()
            .map(|&v| f32::from_bits((v.to_bits() + 0x1000) & 0xffff_e000))
            .collect();
        let lo = x.iter().zip(&hi).map(|(&v, &h)| v - h).collect();
        (hi, lo)
    };
    for (ta, tb) in [(false, false), (false, true), (true, false), (true, true)] {
        let a: Vec<f32> = (0..m * k).map(|_| rng.f32()).collect();
        let b: Vec<f32> = (0..k * n).map(|_| rng.f32()).collect();
        let c0: Vec<f32> = (0..m * n).map(|_| rng.f32()).collect();
        // Element (i, kk) of op(A) and (kk, j) of op(B) in their stored layouts.
        let ea = |i: usize, kk: usize| if ta { a[kk * m + i] } else { a[i * k + kk] };
        let eb = |kk: usize, j: usize| if tb { b[j * k + kk] } else { b[kk * n + j] };
        let (ah, al) = split(&a);
        let (bh, bl) = split(&b);
        let bufs = [&ah, &al, &bh, &bl].map(|v| Buf::from(&d, v).unwrap());
        let dc = Buf::from(&d, &c0).unwrap();
        let op = |p: DevPtr, ld: usize, t: bool| if t { Rm::t(p, ld) } else { Rm::n(p, ld) };
        let xa = X {
            hi: op(bufs[0].ptr, if ta { m } else { k }, ta).tf32(),
            lo: Some(bufs[1].ptr),
        };
        let xb = X {
            hi: op(bufs[2].ptr, if tb { k } else { n }, tb).tf32(),
            lo: Some(bufs[3].ptr),
        };
        gemm_x(&d, "test", [m, n, k], 0.75, (xa, xb), 0.5, Rm::n(dc.ptr, n)).unwrap();
        let got = dc.to_vec().unwrap();
        for i in 0..m {
            for j in 0..n {
                let dot: f64 = (0..k).map(|kk| ea(i, kk) as f64 * eb(kk, j) as f64).sum();
                let want = 0.75 * dot + 0.5 * c0[i * n + j] as f64;
                let err = (got[i * n + j] as f64 - want).abs();
                assert!(
                    err <= 1e-4 * (1.0 + want.abs()),
                    "ta {ta} tb {tb} ({i},{j}): {} vs {want}",
                    got[i * n + j]
                );
            }
        }
    }
}
