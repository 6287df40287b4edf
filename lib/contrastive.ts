/**
 * Chapter 3 — contrastive learning: softmax over similarities, InfoNCE (with positives, the
 * sampled-softmax logQ correction and optional normalization inside), SimCLR's NT-Xent, the
 * mismatch score of two views and temperature schedules.
 *
 * Energy E(x, y) = −x·y and p(y_j | x) = softmax_j(x·y_j / τ). Losses are means and return
 * their gradients; inputs are scanned for NaN/±∞ (E_NON_FINITE).
 *
 * On the native backend InfoNCE and NT-Xent hold the B × K logit matrix when it fits the
 * `scratchBytes` budget (default 256 MiB: three GEMMs, NT-Xent half the forward by symmetry);
 * larger batches are tiled over keys with an online log-sum-exp, in O((B + K)·d) extra memory.
 */
import * as v from './contract/validate';
import { snap, snapOpts } from './contract/validate';
import { PRECISION_NAMES } from './cuda';
import { type Matrix, shapedLike } from './matrix';
import * as contract from './contract/contrastive';
import * as ref from './reference/contrastive';
import { type NativeResult, op, runAsync, runSync } from './run';

type NativeStats = { meanEntropy: number; meanPositiveProbability: number; meanMaxNegativeProbability: number; effectiveNegatives: number };

function statsOf(s: NativeStats): NativeStats {
  return {
    meanEntropy: s.meanEntropy,
    meanPositiveProbability: s.meanPositiveProbability,
    meanMaxNegativeProbability: s.meanMaxNegativeProbability,
    effectiveNegatives: s.effectiveNegatives,
  };
}

const SOFTMAX = op({
  name: 'softmaxProbabilities',
  reference: ref.softmaxProbabilities,
  snap: (fn, x, ys, temperature) => [x, snap(fn, 'ys', ys), temperature],
  check: contract.checkSoftmax,
  call: (n, how, _, x, ys, temperature) => n.softmaxProbabilities({ x, ys, temperature }, how),
});

const INFO_NCE = op({
  name: 'infoNCE',
  reference: ref.infoNCE,
  snap: contract.snapInfoNCE,
  check: contract.checkInfoNCE,
  call: (n, how, p, q, keys) => {
    const o = { q, keys, temperature: p.temperature, normalize: p.normalize, gemm: { precision: PRECISION_NAMES[p.precision], scratchBytes: p.scratchBytes } };
    return n.infoNCE({ ...o, positives: p.positives ?? undefined, logQ: p.logQ ?? undefined, keyIds: p.keyIds ?? undefined }, how);
  },
  out: (r: NativeResult<'infoNCE'>, _, q, keys): contract.InfoNCEResult => {
    const gradQ = shapedLike(r.gradQ, q);
    return { loss: r.loss, gradQ, gradKeys: shapedLike(r.gradKeys, keys), gradTemperature: r.gradTemperature, stats: statsOf(r.stats) };
  },
  gpu: true,
});

const NT_XENT = op({
  name: 'ntXent',
  reference: ref.ntXent,
  snap: contract.snapNtXent,
  check: (fn, a, b, options): [number, number] => [contract.checkNtXent(fn, a, b, options), v.precisionOf(fn, options)],
  call: (n, how, [temperature, precision], a, b, options) =>
    n.ntXent({ a, b, temperature, gemm: { precision: PRECISION_NAMES[precision], scratchBytes: contract.ntXentScratch(options) } }, how),
  out: (r: NativeResult<'ntXent'>, _, a, b): contract.NtXentResult => {
    return { loss: r.loss, gradA: shapedLike(r.gradA, a), gradB: shapedLike(r.gradB, b), gradTemperature: r.gradTemperature, stats: statsOf(r.stats) };
  },
  gpu: true,
});

const MISMATCH = op({
  name: 'mismatchScore',
  reference: ref.mismatchScore,
  snap: (fn, a, b, options) => [snap(fn, 'a', a), snap(fn, 'b', b), snapOpts(fn, options, ['withinView'])],
  check: contract.checkMismatch,
  call: (n, how, withinView, a, b) => n.mismatchScore({ a, b, withinView }, how),
  out: (r: NativeResult<'mismatchScore'>) => ({ muP: r.muP, muQ: r.muQ, M: r.M }),
});

/** p(y_j | x) = softmax_j(x·y_j / τ) over the rows of `ys` (Float32Array of length ys.rows). */
export function softmaxProbabilities(x: Float32Array, ys: Matrix, temperature: number): Float32Array {
  return runSync(SOFTMAX, [x, ys, temperature]);
}

/**
 * InfoNCE: loss = mean over queries of −log p(positive | query), logits q·k/τ − logQ_k.
 * `positives[i]` is the key index of query i's positive (default i). With `normalize: true` rows
 * are L2-normalized inside and the gradients flow through it. `keyIds` removes accidental hits
 * (keys j ≠ p_i with the positive's id get logit −∞). Returns
 * `{ loss, gradQ, gradKeys, gradTemperature, stats }`: ∂loss/∂q and ∂loss/∂keys in the shapes
 * of q and keys, ∂loss/∂τ, and the diagnostics of p(·|q) averaged over queries (computed in the
 * same fused pass).
 *
 * @example
 * const { loss, gradQ } = infoNCE(q, keys, { temperature: 0.07, normalize: true });
 */
export function infoNCE(q: Matrix, keys: Matrix, options: contract.InfoNCEOptions): contract.InfoNCEResult {
  return runSync(INFO_NCE, [q, keys, options]);
}

/** Async twin of {@link infoNCE}: runs off the event loop (arguments read and copied at call time). */
export function infoNCEAsync(q: Matrix, keys: Matrix, options: contract.InfoNCEOptions): Promise<contract.InfoNCEResult> {
  return runAsync(INFO_NCE, [q, keys, options]);
}

/**
 * NT-Xent, SimCLR's symmetric loss over two views a, b (N × d): rows are L2-normalized inside,
 * similarities are cosines / τ, each of the 2N views has its partner as positive and the other
 * 2N − 2 as negatives; loss = mean over the 2N anchors. Returns
 * `{ loss, gradA, gradB, gradTemperature, stats }` (∂loss/∂τ and the diagnostics averaged over
 * the 2N anchors).
 */
export function ntXent(a: Matrix, b: Matrix, options: contract.NtXentOptions): contract.NtXentResult {
  return runSync(NT_XENT, [a, b, options]);
}

/** Async twin of {@link ntXent} (arguments read and copied at call time). */
export function ntXentAsync(a: Matrix, b: Matrix, options: contract.NtXentOptions): Promise<contract.NtXentResult> {
  return runAsync(NT_XENT, [a, b, options]);
}

/**
 * How well two views align: muP = mean cos(a_i, b_i), muQ = mean cos(a_i, b_j) over i ≠ j,
 * M = muP − muQ. With `withinView: true` muQ also counts the within-view pairs (a_i, a_j) and
 * (b_i, b_j), i < j (the mean over all 2n(n − 1) non-matching pairs of the 2n views). Needs
 * n ≥ 2 rows; zero rows have cosine 0. O(n·d).
 */
export function mismatchScore(a: Matrix, b: Matrix, options?: contract.MismatchOptions): contract.MismatchResult {
  return runSync(MISMATCH, [a, b, options]);
}

/**
 * A temperature schedule: returns t → τ with t clamped to [0, steps] and r = t/steps:
 * 'linear' start + (end − start)·r, 'cosine' (default) end + (start − end)·(1 + cos πr)/2,
 * 'exponential' start·(end/start)^r. The same TypeScript code on every backend.
 */
export function temperatureSchedule(options: contract.ScheduleOptions): (t: number) => number {
  return ref.temperatureSchedule(options);
}
