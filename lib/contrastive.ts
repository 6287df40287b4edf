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
import { nat, rethrow } from './backend';
import { refAsync } from './refasync';
import * as v from './contract/validate';
import { snap } from './contract/validate';
import { ASYNC, PRECISION_NAMES, SYNC, now, onDevice, soon } from './cuda';
import type { Matrix } from './matrix';
import * as contract from './contract/contrastive';
import * as ref from './reference/contrastive';
import type { InfoNCEOptions, InfoNCEResult, MismatchOptions, MismatchResult, NtXentOptions, NtXentResult, ScheduleOptions } from './contract/contrastive';
import { later } from './contract/async';

export type {
  ContrastiveStats,
  InfoNCEOptions,
  InfoNCEResult,
  MismatchOptions,
  MismatchResult,
  NtXentOptions,
  NtXentResult,
  ScheduleKind,
  ScheduleOptions,
} from './contract/contrastive';

/** The native arguments of infoNCE (absent options stay absent). */
function nceArgs(q: Matrix, keys: Matrix, p: contract.InfoNCEParsed) {
  const o = { q, keys, temperature: p.temperature, normalize: p.normalize, gemm: { precision: PRECISION_NAMES[p.precision], scratchBytes: p.scratchBytes } };
  return { ...o, positives: p.positives ?? undefined, logQ: p.logQ ?? undefined, keyIds: p.keyIds ?? undefined };
}

type NativeStats = { meanEntropy: number; meanPositiveProbability: number; meanMaxNegativeProbability: number; effectiveNegatives: number };

function statsOf(s: NativeStats): NativeStats {
  return {
    meanEntropy: s.meanEntropy,
    meanPositiveProbability: s.meanPositiveProbability,
    meanMaxNegativeProbability: s.meanMaxNegativeProbability,
    effectiveNegatives: s.effectiveNegatives,
  };
}

function nceOut(
  r: { loss: number; gradQ: Float32Array; gradKeys: Float32Array; gradTemperature: number; stats: NativeStats },
  q: Matrix,
  keys: Matrix,
): InfoNCEResult {
  return {
    loss: r.loss,
    gradQ: { data: r.gradQ, rows: q.rows, cols: q.cols },
    gradKeys: { data: r.gradKeys, rows: keys.rows, cols: keys.cols },
    gradTemperature: r.gradTemperature,
    stats: statsOf(r.stats),
  };
}

function ntxOut(
  r: { loss: number; gradA: Float32Array; gradB: Float32Array; gradTemperature: number; stats: NativeStats },
  a: Matrix,
  b: Matrix,
): NtXentResult {
  return {
    loss: r.loss,
    gradA: { data: r.gradA, rows: a.rows, cols: a.cols },
    gradB: { data: r.gradB, rows: b.rows, cols: b.cols },
    gradTemperature: r.gradTemperature,
    stats: statsOf(r.stats),
  };
}

/** p(y_j | x) = softmax_j(x·y_j / τ) over the rows of `ys` (Float32Array of length ys.rows). */
export function softmaxProbabilities(x: Float32Array, ys: Matrix, temperature: number): Float32Array {
  ys = snap('softmaxProbabilities', 'ys', ys);
  const n = nat();
  if (n === null) return ref.softmaxProbabilities(x, ys, temperature);
  contract.checkSoftmax('softmaxProbabilities', x, ys, temperature);
  try {
    return now(n.softmaxProbabilities({ x, ys, temperature }, SYNC));
  } catch (e) {
    rethrow(e);
  }
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
export function infoNCE(q: Matrix, keys: Matrix, options: InfoNCEOptions): InfoNCEResult {
  [q, keys, options] = contract.snapInfoNCE('infoNCE', q, keys, options);
  const n = nat();
  if (n === null) return ref.infoNCE(q, keys, options);
  const p = contract.checkInfoNCE('infoNCE', q, keys, options);
  try {
    const r = now(n.infoNCE(nceArgs(q, keys, p), onDevice()));
    return nceOut(r, q, keys);
  } catch (e) {
    rethrow(e);
  }
}

/** Async twin of {@link infoNCE}: runs off the event loop (arguments read and copied at call time). */
export function infoNCEAsync(q: Matrix, keys: Matrix, options: InfoNCEOptions): Promise<InfoNCEResult> {
  return later(() => {
    const fn = 'infoNCEAsync';
    [q, keys, options] = contract.snapInfoNCE(fn, q, keys, options);
    const p = contract.checkInfoNCE(fn, q, keys, options);
    const n = nat();
    if (n === null) return refAsync<InfoNCEResult>('infoNCE', [q, keys, options]);
    return soon(n.infoNCE(nceArgs(q, keys, p), ASYNC)).then((r) => nceOut(r, q, keys), rethrow);
  });
}

/**
 * NT-Xent, SimCLR's symmetric loss over two views a, b (N × d): rows are L2-normalized inside,
 * similarities are cosines / τ, each of the 2N views has its partner as positive and the other
 * 2N − 2 as negatives; loss = mean over the 2N anchors. Returns
 * `{ loss, gradA, gradB, gradTemperature, stats }` (∂loss/∂τ and the diagnostics averaged over
 * the 2N anchors).
 */
export function ntXent(a: Matrix, b: Matrix, options: NtXentOptions): NtXentResult {
  [a, b, options] = contract.snapNtXent('ntXent', a, b, options);
  const n = nat();
  if (n === null) return ref.ntXent(a, b, options);
  const t = contract.checkNtXent('ntXent', a, b, options);
  const gemm = { precision: PRECISION_NAMES[v.precisionOf('ntXent', options)], scratchBytes: contract.ntXentScratch(options) };
  try {
    const r = now(n.ntXent({ a, b, temperature: t, gemm }, onDevice()));
    return ntxOut(r, a, b);
  } catch (e) {
    rethrow(e);
  }
}

/** Async twin of {@link ntXent} (arguments read and copied at call time). */
export function ntXentAsync(a: Matrix, b: Matrix, options: NtXentOptions): Promise<NtXentResult> {
  return later(() => {
    const fn = 'ntXentAsync';
    [a, b, options] = contract.snapNtXent(fn, a, b, options);
    const t = contract.checkNtXent(fn, a, b, options);
    const precision = PRECISION_NAMES[v.precisionOf(fn, options)];
    const n = nat();
    if (n === null) return refAsync<NtXentResult>('ntXent', [a, b, options]);
    const gemm = { precision, scratchBytes: contract.ntXentScratch(options) };
    return soon(n.ntXent({ a, b, temperature: t, gemm }, ASYNC)).then((r) => ntxOut(r, a, b), rethrow);
  });
}

/**
 * How well two views align: muP = mean cos(a_i, b_i), muQ = mean cos(a_i, b_j) over i ≠ j,
 * M = muP − muQ. With `withinView: true` muQ also counts the within-view pairs (a_i, a_j) and
 * (b_i, b_j), i < j (the mean over all 2n(n − 1) non-matching pairs of the 2n views). Needs
 * n ≥ 2 rows; zero rows have cosine 0. O(n·d).
 */
export function mismatchScore(a: Matrix, b: Matrix, options?: MismatchOptions): MismatchResult {
  a = snap('mismatchScore', 'a', a);
  b = snap('mismatchScore', 'b', b);
  const n = nat();
  if (n === null) return ref.mismatchScore(a, b, options);
  const withinView = contract.checkMismatch('mismatchScore', a, b, options);
  try {
    const r = now(n.mismatchScore({ a, b, withinView }, SYNC));
    return { muP: r.muP, muQ: r.muQ, M: r.M };
  } catch (e) {
    rethrow(e);
  }
}

/**
 * A temperature schedule: returns t → τ with t clamped to [0, steps] and r = t/steps:
 * 'linear' start + (end − start)·r, 'cosine' (default) end + (start − end)·(1 + cos πr)/2,
 * 'exponential' start·(end/start)^r. The same TypeScript code on every backend.
 */
export function temperatureSchedule(options: ScheduleOptions): (t: number) => number {
  return ref.temperatureSchedule(options);
}
