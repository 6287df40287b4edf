/**
 * Property-based contract suite (fast-check) over every export of the package (dist/index.js).
 *
 * For each export, on both backends (native and reference, switched with setBackend):
 *  - valid: generated valid arguments give results that agree within tolerance (or, for the
 *    rare generated case both backends reject, the same DensevecError);
 *  - invalid: the valid arguments broken by one or two MUTATIONS (each with the code it causes
 *    alone, on disjoint arguments) give a DensevecError whose code is the first of those codes in
 *    the order E_TYPE > E_SHAPE > E_ARG > E_NON_FINITE, with the same code AND message on both
 *    backends (and an …Async twin rejects the same way).
 *
 * HOW TO ADD AN EXPORT. The first test fails when dist/index.js exports a name that TABLE lacks,
 * so coverage cannot rot silently. Add one row to TABLE:
 *
 *   myFunction: fn(
 *     fc.tuple(mat(), fc.integer({ min: 1, max: 3 })),   // valid arguments (keep shapes small)
 *     [matMuts(0, { finite: true }), intMuts(1, { tooSmall: 0 })], // mutation groups (optional)
 *     { tol: [1e-4, 1e-4] },                             // optional: tolerance, custom call
 *   ),
 *
 * `mat`, `vec`, `u32`, … below build valid arguments; `matMuts(i, …)`, `pairMuts(…)`, `vecMuts`, `intMuts`,
 * `numMuts`, `optMuts`, … build the mutations of argument i. A row may pass `call` to call the
 * export differently (classes, functions returning functions) and `compare` for results that
 * are not determined to tolerance (e.g. a rotation that is not unique). Exports that are not
 * functions of data (constants, backend controls) use `other(check)`.
 */
import fc from 'fast-check';
import { afterAll, describe, expect, it } from 'vitest';
import { dv } from './helpers';

type Api = typeof dv;
type Code = 'E_TYPE' | 'E_SHAPE' | 'E_ARG' | 'E_NON_FINITE';
const ORDER: Code[] = ['E_TYPE', 'E_SHAPE', 'E_ARG', 'E_NON_FINITE'];
type M = { data: Float32Array; rows: number; cols: number };

/** A way to break valid arguments: touches `args` (their indices) and causes `code` alone. */
interface Mutation {
  name: string;
  code: Code;
  touches: number[];
  /** Breaks `a` in place; `v` is the untouched valid arguments (for bounds such as k ≤ rows). */
  apply: (a: unknown[], v: unknown[]) => void;
}

interface FnRow {
  kind: 'fn';
  args: fc.Arbitrary<unknown[]>;
  muts: Mutation[];
  call?: (api: Api, args: unknown[]) => unknown;
  tol?: [number, number];
  compare?: (n: unknown, r: unknown, args: unknown[]) => void;
}
interface OtherRow {
  kind: 'other';
  check: () => void;
}
type Row = FnRow | OtherRow;

function fn(args: fc.Arbitrary<unknown[]>, groups: Mutation[][] = [], o: Partial<Pick<FnRow, 'call' | 'tol' | 'compare'>> = {}): FnRow {
  return { kind: 'fn', args, muts: groups.flat(), ...o };
}
function other(check: () => void): OtherRow {
  return { kind: 'other', check };
}

// ---------------------------------------------------------------------------------------------
// Valid arguments.

/** A moderate float32 value (no subnormals, |x| ≤ 4; some exact zeros). */
const val = fc.float({ min: -4, max: 4, noNaN: true }).map((x) => (Math.abs(x) < 1e-3 ? 0 : x));

function f32(n: number): fc.Arbitrary<Float32Array> {
  return fc.array(val, { minLength: n, maxLength: n }).map((a) => Float32Array.from(a));
}
/** A rows × cols Matrix with no zero row (so that functions that normalize accept it). */
function matOf(rows: number, cols: number): fc.Arbitrary<M> {
  return f32(rows * cols).map((data) => {
    for (let i = 0; i < rows; i++) {
      let z = true;
      for (let k = 0; k < cols; k++) if (data[i * cols + k] !== 0) z = false;
      if (z) data[i * cols + (i % cols)] = 1 + i;
    }
    return { data, rows, cols };
  });
}
const dim = (min = 1, max = 4) => fc.integer({ min, max });
/** A Matrix of random small shape. */
function mat(minRows = 1, maxRows = 4, minCols = 1, maxCols = 5): fc.Arbitrary<M> {
  return fc.tuple(dim(minRows, maxRows), dim(minCols, maxCols)).chain(([r, c]) => matOf(r, c));
}
/** Small integers as float32 (dot and l2sq exact on both backends, so rankings agree). */
function intMat(rows: number, cols: number): fc.Arbitrary<M> {
  return fc.array(fc.integer({ min: -3, max: 3 }), { minLength: rows * cols, maxLength: rows * cols }).map((a) => ({ data: Float32Array.from(a), rows, cols }));
}
const metric = fc.constantFrom(undefined, 'dot', 'cosine', 'l2sq');

// ---------------------------------------------------------------------------------------------
// Mutations.

function arg<T>(a: unknown[], i: number): T {
  return a[i] as T;
}
function pickIndex(n: number, salt: number): number {
  return n === 0 ? 0 : (salt * 7919) % n;
}

/** Mutations of a Matrix argument i. */
function matMuts(i: number, o: { finite?: boolean; zeroRow?: boolean; opt?: string } = {}): Mutation[] {
  const w = o.opt;
  const get = (a: unknown[]): M => (w ? (a[i] as Record<string, M>)[w] : (a[i] as M));
  const set = (a: unknown[], m: unknown): void => {
    if (w) (a[i] as Record<string, unknown>)[w] = m;
    else a[i] = m;
  };
  const t = [i];
  const ms: Mutation[] = [
    { name: `${i}: data as an Array`, code: 'E_TYPE', touches: t, apply: (a) => set(a, { ...get(a), data: Array.from(get(a).data) }) },
    { name: `${i}: data as a Proxy`, code: 'E_TYPE', touches: t, apply: (a) => set(a, { ...get(a), data: new Proxy(get(a).data, {}) }) },
    { name: `${i}: data as a Float64Array`, code: 'E_TYPE', touches: t, apply: (a) => set(a, { ...get(a), data: Float64Array.from(get(a).data) }) },
    { name: `${i}: rows not an integer`, code: 'E_TYPE', touches: t, apply: (a) => set(a, { ...get(a), rows: get(a).rows + 0.5 }) },
    { name: `${i}: cols a string`, code: 'E_TYPE', touches: t, apply: (a) => set(a, { ...get(a), cols: String(get(a).cols) }) },
    { name: `${i}: null`, code: 'E_TYPE', touches: t, apply: (a) => set(a, null) },
    { name: `${i}: data one too long`, code: 'E_SHAPE', touches: t, apply: (a) => set(a, { ...get(a), data: Float32Array.from([...get(a).data, 1]) }) },
  ];
  if (o.finite) {
    for (const bad of [NaN, Infinity, -Infinity]) {
      ms.push({
        name: `${i}: ${bad} inside`,
        code: 'E_NON_FINITE',
        touches: t,
        apply: (a) => {
          const m = get(a);
          m.data[pickIndex(m.data.length, m.rows + 3 * m.cols)] = bad;
        },
      });
    }
  }
  if (o.zeroRow) {
    ms.push({
      name: `${i}: a zero row`,
      code: 'E_ARG',
      touches: t,
      apply: (a) => {
        const m = get(a);
        const r = m.rows - 1;
        m.data.fill(0, r * m.cols, (r + 1) * m.cols);
      },
    });
  }
  return ms;
}

/** Mutations of a Float32Array argument i. */
function vecMuts(i: number, o: { finite?: boolean; shape?: boolean } = {}): Mutation[] {
  const t = [i];
  const ms: Mutation[] = [
    { name: `${i}: an Array`, code: 'E_TYPE', touches: t, apply: (a) => (a[i] = Array.from(arg<Float32Array>(a, i))) },
    { name: `${i}: a Proxy`, code: 'E_TYPE', touches: t, apply: (a) => (a[i] = new Proxy(arg<Float32Array>(a, i), {})) },
    { name: `${i}: a look-alike`, code: 'E_TYPE', touches: t, apply: (a) => (a[i] = Object.create(Float32Array.prototype)) },
    { name: `${i}: a string`, code: 'E_TYPE', touches: t, apply: (a) => (a[i] = 'x') },
  ];
  if (o.shape !== false) {
    ms.push({ name: `${i}: one longer`, code: 'E_SHAPE', touches: t, apply: (a) => (a[i] = Float32Array.from([...arg<Float32Array>(a, i), 1])) });
  }
  if (o.finite) {
    ms.push({ name: `${i}: NaN inside`, code: 'E_NON_FINITE', touches: t, apply: (a) => (arg<Float32Array>(a, i)[0] = NaN) });
  }
  return ms;
}

/** Mutations of an integer argument i (`tooSmall` / `tooLarge`: values that are E_ARG). */
function intMuts(i: number, o: { tooSmall?: (a: unknown[]) => number; tooLarge?: (a: unknown[]) => number } = {}): Mutation[] {
  const t = [i];
  const ms: Mutation[] = [
    { name: `${i}: a fraction`, code: 'E_TYPE', touches: t, apply: (a) => (a[i] = Math.abs(a[i] as number) < 2 ** 50 ? (a[i] as number) + 0.5 : 0.5) },
    { name: `${i}: a string`, code: 'E_TYPE', touches: t, apply: (a) => (a[i] = String(a[i])) },
    { name: `${i}: a BigInt`, code: 'E_TYPE', touches: t, apply: (a) => (a[i] = 1n) },
  ];
  if (o.tooSmall) ms.push({ name: `${i}: too small`, code: 'E_ARG', touches: t, apply: (a, v) => (a[i] = o.tooSmall!(v)) });
  if (o.tooLarge) ms.push({ name: `${i}: too large`, code: 'E_ARG', touches: t, apply: (a, v) => (a[i] = o.tooLarge!(v)) });
  return ms;
}

/** Mutations of a number argument i (`bad`: values outside its domain, E_ARG). */
function numMuts(i: number, bad: number[] = []): Mutation[] {
  const t = [i];
  const ms: Mutation[] = [
    { name: `${i}: a string`, code: 'E_TYPE', touches: t, apply: (a) => (a[i] = '1') },
    { name: `${i}: a BigInt`, code: 'E_TYPE', touches: t, apply: (a) => (a[i] = 1n) },
    { name: `${i}: null`, code: 'E_TYPE', touches: t, apply: (a) => (a[i] = null) },
  ];
  for (const b of bad) ms.push({ name: `${i}: ${b}`, code: 'E_ARG', touches: t, apply: (a) => (a[i] = b) });
  return ms;
}

/** Mutations of a field of the options bag at argument i. */
function optMuts(i: number, field: string, cases: Array<[unknown, Code]>): Mutation[] {
  return cases.map(([v, code]) => ({
    name: `${i}.${field} = ${typeof v === 'bigint' ? `${v}n` : String(v)}`,
    code,
    touches: [i],
    apply: (a: unknown[]) => {
      a[i] = { ...((a[i] as object) ?? {}), [field]: v };
    },
  }));
}

/** Mutations of a numeric option: a string (E_TYPE) and the out-of-range value `bad` (E_ARG). */
function numOptMuts(i: number, field: string, bad: number): Mutation[] {
  return optMuts(i, field, [
    ['1', 'E_TYPE'],
    [bad, 'E_ARG'],
  ]);
}

/** Options { metric?, precision? }, or undefined when neither is set. */
const simOpts = (m: unknown, p: unknown) =>
  m === undefined && p === undefined ? undefined : { ...(m === undefined ? {} : { metric: m }), ...(p === undefined ? {} : { precision: p }) };
const precision = fc.constantFrom(undefined, 'f32', 'bf16');
const precisionMuts = (i: number) =>
  optMuts(i, 'precision', [
    [16, 'E_TYPE'],
    ['toString', 'E_ARG'],
    ['fp16', 'E_ARG'],
  ]);

/** The options bag at i is not an object. */
function optTypeMuts(i: number): Mutation[] {
  return [{ name: `${i}: options a number`, code: 'E_TYPE', touches: [i], apply: (a) => (a[i] = 5) }];
}

const metricMuts = (i: number) =>
  optMuts(i, 'metric', [
    [5, 'E_TYPE'],
    [1n, 'E_TYPE'],
    ['toString', 'E_ARG'],
    ['__proto__', 'E_ARG'],
    ['cos', 'E_ARG'],
  ]);

/** Mutations of a Uint32Array index argument i whose values must be < bound(args). */
function idxMuts(i: number, bound: (a: unknown[]) => number, o: { shape?: boolean } = {}): Mutation[] {
  const t = [i];
  const ms: Mutation[] = [
    { name: `${i}: an Int32Array`, code: 'E_TYPE', touches: t, apply: (a) => (a[i] = Int32Array.from(arg<Uint32Array>(a, i))) },
    { name: `${i}: a Proxy`, code: 'E_TYPE', touches: t, apply: (a) => (a[i] = new Proxy(arg<Uint32Array>(a, i), {})) },
    { name: `${i}: an index out of range`, code: 'E_ARG', touches: t, apply: (a, v) => (arg<Uint32Array>(a, i)[0] = bound(v)) },
  ];
  if (o.shape !== false)
    ms.push({ name: `${i}: one longer`, code: 'E_SHAPE', touches: t, apply: (a) => (a[i] = Uint32Array.from([...arg<Uint32Array>(a, i), 0])) });
  return ms;
}

/** Mutations that replace argument i with a matrix of another column count (E_SHAPE). */
function colsMut(i: number): Mutation[] {
  return [
    {
      name: `${i}: another column count`,
      code: 'E_SHAPE',
      touches: [i],
      apply: (a) => {
        const m = a[i] as M;
        a[i] = { data: new Float32Array(m.rows * (m.cols + 1)).fill(1), rows: m.rows, cols: m.cols + 1 };
      },
    },
  ];
}

/** The mutations of two matrices that must share cols (arguments 0 and 1, each as {@link matMuts} with `o`). */
function pairMuts(o: Parameters<typeof matMuts>[1] = {}): Mutation[] {
  return [...matMuts(0, o), ...matMuts(1, o), ...colsMut(1)];
}

// ---------------------------------------------------------------------------------------------
// Shared generators.

/** (q, c) with equal column counts. */
const pairQC = fc.tuple(dim(1, 4), dim(1, 4), dim(1, 5)).chain(([a, b, c]) => fc.tuple(matOf(a, c), matOf(b, c)));
const sameShape = (minRows = 1) => fc.tuple(dim(minRows, 4), dim(1, 5)).chain(([r, c]) => fc.tuple(matOf(r, c), matOf(r, c)));
const vecPair = dim(1, 6).chain((n) => fc.tuple(f32(n), f32(n)));

const infoArgs = fc
  .tuple(dim(1, 4), dim(0, 3), dim(1, 4), fc.double({ min: 0.1, max: 2, noNaN: true }), fc.boolean(), fc.boolean(), fc.boolean())
  .chain(([b, extra, d, temperature, normalize, withPos, withLogQ]) =>
    fc
      .tuple(matOf(b, d), matOf(b + extra, d), f32(b + extra), fc.array(fc.integer({ min: 0, max: b + extra - 1 }), { minLength: b, maxLength: b }))
      .map(([q, k, lq, pos]) => {
        const o: Record<string, unknown> = { temperature, normalize };
        if (withPos) o.positives = Uint32Array.from(pos);
        if (withLogQ) o.logQ = lq;
        return [q, k, o];
      }),
  );
const infoMuts = [
  ...pairMuts({ finite: true }),
  ...optTypeMuts(2),
  ...optMuts(2, 'temperature', [
    ['1', 'E_TYPE'],
    [undefined, 'E_TYPE'],
    [0, 'E_ARG'],
    [-1, 'E_ARG'],
    [Infinity, 'E_ARG'],
    [NaN, 'E_ARG'],
  ]),
  ...optMuts(2, 'normalize', [['yes', 'E_TYPE']]),
  ...optMuts(2, 'positives', [
    [new Int32Array(1), 'E_TYPE'],
    [new Uint32Array(9), 'E_SHAPE'],
  ]),
  ...optMuts(2, 'logQ', [
    [[0], 'E_TYPE'],
    [new Float32Array(9), 'E_SHAPE'],
  ]),
  ...precisionMuts(2),
];

const ntArgs = fc.tuple(sameShape(), fc.double({ min: 0.1, max: 2, noNaN: true })).map(([[a, b], t]) => [a, b, { temperature: t }]);
const ntMuts = [...pairMuts({ finite: true, zeroRow: true }), ...optTypeMuts(2), ...numOptMuts(2, 'temperature', 0), ...precisionMuts(2)];

const marginArgs = fc
  .tuple(
    dim(1, 4),
    dim(1, 4),
    dim(1, 4),
    fc.constantFrom('normalized', 'cosface', 'arcface'),
    fc.double({ min: 1, max: 30, noNaN: true }),
    fc.double({ min: 0, max: 0.5, noNaN: true }),
    fc.double({ min: 0, max: 0.9, noNaN: true }),
  )
  .chain(([n, c, d, kind, scale, margin, eps]) =>
    fc
      .tuple(matOf(n, d), matOf(c, d), fc.array(fc.integer({ min: 0, max: c - 1 }), { minLength: n, maxLength: n }))
      .map(([x, w, l]) => [x, w, Uint32Array.from(l), { kind, scale, margin, labelSmoothing: eps }]),
  );
const marginMuts = [
  ...pairMuts({ finite: true, zeroRow: true }),
  ...idxMuts(2, (a) => (a[1] as M).rows),
  ...optTypeMuts(3),
  ...optMuts(3, 'kind', [
    [1, 'E_TYPE'],
    ['constructor', 'E_ARG'],
    ['sphereface', 'E_ARG'],
  ]),
  ...numOptMuts(3, 'scale', 0),
  ...optMuts(3, 'labelSmoothing', [
    [1, 'E_ARG'],
    [1n, 'E_TYPE'],
  ]),
  ...precisionMuts(3),
];

const topKArgs = fc
  .tuple(dim(1, 3), dim(1, 5), dim(1, 4), fc.constantFrom(undefined, 'dot', 'l2sq'), fc.constantFrom(undefined, 'bf16'))
  .chain(([q, c, d, m, p]) => fc.tuple(intMat(q, d), intMat(c, d), fc.integer({ min: 1, max: c })).map(([qq, cc, k]) => [qq, cc, k, simOpts(m, p)]));
const topKMuts = [
  ...pairMuts(),
  ...intMuts(2, { tooSmall: () => 0, tooLarge: (a) => (a[1] as M).rows + 1 }),
  ...optTypeMuts(3),
  ...metricMuts(3),
  ...precisionMuts(3),
];
/** topK: the cosine metric may order near-equal scores differently in float32; compare scores, and indices for exact metrics. */
function compareTopK(n: unknown, r: unknown, args: unknown[]): void {
  const a = n as { indices: Uint32Array; scores: Float32Array };
  const b = r as { indices: Uint32Array; scores: Float32Array };
  closeDeep(a.scores, b.scores, 1e-4, 1e-4, 'scores');
  const m = (args[3] as { metric?: string } | undefined)?.metric;
  if (m === 'dot' || m === 'l2sq') expect(Array.from(a.indices)).toEqual(Array.from(b.indices));
}

const knnArgs = fc
  .tuple(dim(1, 5), dim(1, 3), dim(1, 3), fc.constantFrom('dot', 'l2sq'))
  .chain(([t, q, d, m]) =>
    fc
      .tuple(intMat(t, d), fc.array(fc.integer({ min: 0, max: 2 }), { minLength: t, maxLength: t }), intMat(q, d), fc.integer({ min: 1, max: t }))
      .map(([tr, l, qq, k]) => [tr, Uint32Array.from(l), qq, k, { metric: m }]),
  );
const knnMuts = [
  ...matMuts(0),
  ...idxMuts(1, () => 0, { shape: true }).filter((m) => m.code !== 'E_ARG'),
  ...matMuts(2),
  ...colsMut(2),
  ...intMuts(3, { tooSmall: () => 0, tooLarge: (a) => (a[0] as M).rows + 1 }),
  ...metricMuts(4),
];

const wassArgs = fc.tuple(sameShape(2), fc.constantFrom(undefined, 1, 2)).map(([[a, b], p]) => [a, b, p === undefined ? undefined : { p }]);
const wassMuts = [...pairMuts({ finite: true, zeroRow: true }), ...optTypeMuts(2), ...numOptMuts(2, 'p', 3)];

const statsArgs = fc
  .tuple(mat(2, 4), fc.option(fc.tuple(dim(1, 20), fc.integer({ min: 0, max: 1000 })), { nil: undefined }))
  .map(([m, s]) => [m, s ? { sample: { pairs: s[0], seed: s[1] } } : undefined]);
const statsMuts = [
  ...matMuts(0, { finite: true }),
  ...optTypeMuts(1),
  ...optMuts(1, 'sample', [
    [5, 'E_TYPE'],
    [{ pairs: 1.5, seed: 0 }, 'E_TYPE'],
    [{ pairs: 0, seed: 0 }, 'E_ARG'],
    [{ pairs: 1, seed: -1 }, 'E_ARG'],
  ]),
];

const procArgs = sameShape();
const procMuts = pairMuts({ finite: true });
/** procrustes: the rotation is not unique for rank-deficient xᵀy; the residual is. */
function compareProcrustes(n: unknown, r: unknown): void {
  const a = n as { residual: number; rotation: M };
  const b = r as { residual: number; rotation: M };
  closeDeep(a.residual, b.residual, 1e-3, 1e-3, 'residual');
  expect([a.rotation.rows, a.rotation.cols]).toEqual([b.rotation.rows, b.rotation.cols]);
}

const simArgs = fc.tuple(pairQC, metric, precision).map(([[q, c], m, p]) => [q, c, simOpts(m, p)]);
const simMuts = [...pairMuts(), ...optTypeMuts(2), ...metricMuts(2), ...precisionMuts(2)];

const rowsArgs = sameShape();
const rowsMuts = pairMuts();

/** A matrix of 3–6 rows for the neighbour-graph functions, with k in [1, rows − 1]. */
const graphArgs = (extra: (rows: number) => fc.Arbitrary<Record<string, unknown>>, minRows = 3) =>
  fc
    .tuple(dim(minRows, 6), dim(2, 4))
    .chain(([r, c]) => fc.tuple(matOf(r, c), fc.integer({ min: 1, max: r - 1 }), extra(r)).map(([m, k, o]) => [m, { k, ...o }]));
const graphMuts = [
  ...matMuts(0, { finite: true }),
  ...optTypeMuts(1),
  ...optMuts(1, 'k', [
    ['2', 'E_TYPE'],
    [1.5, 'E_TYPE'],
    [0, 'E_ARG'],
    [99, 'E_ARG'],
  ]),
  ...optMuts(1, 'metric', [
    [1, 'E_TYPE'],
    ['toString', 'E_ARG'],
  ]),
];
const seeded = (count: string) => () => fc.tuple(fc.integer({ min: 1, max: 40 }), fc.integer({ min: 0, max: 1000 })).map(([n, seed]) => ({ [count]: n, seed }));
const hypArgs = graphArgs(seeded('samples'), 4); // quadruples of distinct rows
const triArgs = graphArgs(seeded('triangles'));
const geoArgs = graphArgs(() => fc.constant({}));

/** (x, a): an n × d sample and a d × d map. */
const mapArgs = fc
  .tuple(dim(3, 6), dim(1, 4))
  .chain(([n, d]) => fc.tuple(matOf(n, d), matOf(d, d), fc.integer({ min: 1, max: n - 1 })).map(([x, a, k]) => [x, a, { k }]));
const mapMuts = [...matMuts(0, { finite: true }), ...matMuts(1, { finite: true }), ...optTypeMuts(2), ...numOptMuts(2, 'k', 0)];

/** analogy: a corpus of 6–8 rows, three distinct row indices, k ≤ rows − 3. */
const analogyArgs = fc
  .tuple(dim(6, 8), dim(2, 4), fc.constantFrom(undefined, 'add', 'mul'))
  .chain(([r, c, method]) =>
    fc
      .tuple(matOf(r, c), fc.shuffledSubarray([...Array(r).keys()], { minLength: 3, maxLength: 3 }), fc.integer({ min: 1, max: r - 3 }))
      .map(([m, abc, k]) => [m, abc, k, method === undefined ? undefined : { method }]),
  );
/** analogy: scores of near-equal candidates may order differently in float32; compare scores. */
function compareAnalogy(n: unknown, r: unknown): void {
  closeDeep((n as { scores: Float32Array }).scores, (r as { scores: Float32Array }).scores, 1e-4, 1e-4, 'scores');
}
const analogyMuts = [
  ...matMuts(0, { finite: true }),
  ...intMuts(2, { tooSmall: () => 0, tooLarge: (a) => (a[0] as M).rows }),
  ...optTypeMuts(3),
  ...optMuts(3, 'method', [
    [1, 'E_TYPE'],
    ['toString', 'E_ARG'],
  ]),
];

/** Non-negative weights with at least one positive. */
const weights = fc.array(fc.double({ min: 0, max: 10, noNaN: true }), { minLength: 1, maxLength: 6 }).filter((w) => w.some((x) => x > 0));
/** Mutations of a weights array argument i (`touches`: the arguments they exclude others from). */
const weightMuts = (i: number, touches: number[]): Mutation[] => [
  { name: `${i}: a negative weight`, code: 'E_ARG', touches, apply: (a) => ((a[i] as number[])[0] = -1) },
  { name: `${i}: NaN inside`, code: 'E_NON_FINITE', touches, apply: (a) => ((a[i] as number[])[0] = NaN) },
  { name: `${i}: Infinity inside`, code: 'E_NON_FINITE', touches, apply: (a) => ((a[i] as number[])[0] = Infinity) },
  { name: `${i}: a string`, code: 'E_TYPE', touches, apply: (a) => (a[i] = 'x') },
  { name: `${i}: empty`, code: 'E_SHAPE', touches, apply: (a) => (a[i] = []) },
];
const aliasArgs = fc.tuple(weights, fc.integer({ min: 0, max: 2 ** 40 }), dim(0, 20));
const aliasMuts = [
  // The constructor throws before sample is called: its mutations are not combined.
  [
    ...weightMuts(0, [0, 1, 2]),
    { name: '0: all zero', code: 'E_ARG', touches: [0, 1, 2], apply: (a: unknown[]) => (a[0] = (a[0] as number[]).map(() => 0)) },
    ...intMuts(1, { tooSmall: () => -1, tooLarge: () => 2 ** 53 }).map((m) => ({ ...m, touches: [0, 1, 2] })),
  ] as Mutation[],
  intMuts(2, { tooSmall: () => -1 }),
];
const unigramArgs = fc.tuple(
  fc.array(fc.double({ min: 0, max: 100, noNaN: true }), { minLength: 1, maxLength: 6 }),
  fc.double({ min: 0, max: 2, noNaN: true }),
);
const unigramMuts = [weightMuts(0, [0]), numMuts(1, [-1, NaN])];

/** negativeSamplingLoss: n anchors, k negatives each, d columns; k given or inferred. */
const nsArgs = fc
  .tuple(dim(1, 3), dim(1, 3), dim(1, 4), fc.boolean())
  .chain(([n, k, d, giveK]) => fc.tuple(matOf(n, d), matOf(n, d), matOf(n * k, d)).map(([x, p, g]) => [x, p, g, giveK ? { k } : undefined]));
const nsMuts = [
  matMuts(0, { finite: true }),
  matMuts(1, { finite: true }),
  matMuts(2, { finite: true }),
  optTypeMuts(3),
  optMuts(3, 'k', [
    ['2', 'E_TYPE'],
    [1.5, 'E_TYPE'],
    [0, 'E_ARG'],
  ]),
];

/** marginGeometry: 2–5 prototypes, cosface or arcface with a margin in range. */
const geomArgs = fc
  .tuple(mat(2, 5, 1, 4), fc.constantFrom('cosface', 'arcface'), fc.double({ min: 0, max: 1, noNaN: true }))
  .map(([w, kind, m]) => [w, { kind, margin: kind === 'arcface' ? m * 1.5 : m }]);
const geomMuts = [
  matMuts(0, { finite: true, zeroRow: true }),
  optTypeMuts(1),
  optMuts(1, 'kind', [
    [5, 'E_TYPE'],
    ['toString', 'E_ARG'],
  ]),
  numOptMuts(1, 'margin', 2),
];

const softArgs = fc.tuple(mat(), fc.double({ min: 0, max: 2, noNaN: true }));
const softMuts = [...matMuts(0, { finite: true }), ...numMuts(1, [-1, NaN])];

// ---------------------------------------------------------------------------------------------
// The table: one row per export of dist/index.js.

const TABLE: Record<string, Row> = {
  DensevecError: other(() => {
    const e = new dv.DensevecError('E_ARG', 'm');
    expect(e).toBeInstanceOf(Error);
    expect([e.name, e.code, e.message]).toEqual(['DensevecError', 'E_ARG', 'm']);
  }),
  ARCFACE_SIN_EPS: other(() => expect(dv.ARCFACE_SIN_EPS).toBe(1e-6)),
  backendInfo: other(() => {
    const i = dv.backendInfo();
    expect(['native', 'cuda', 'reference']).toContain(i.backend);
  }),
  availableIsas: other(() => expect(dv.availableIsas()).toContain('scalar')),
  releaseMemory: other(() => {
    expect(dv.releaseMemory()).toBeUndefined();
    const kept = dv.backendInfo().keptMemory;
    if (kept) expect(kept).toEqual({ blocks: 0, bytes: 0 });
  }),
  setBackend: fn(
    fc.constant(['auto']),
    [
      [
        { name: 'a number', code: 'E_TYPE', touches: [0], apply: (a) => (a[0] = 5) },
        { name: 'unknown', code: 'E_ARG', touches: [0], apply: (a) => (a[0] = 'gpu') },
        { name: 'toString', code: 'E_ARG', touches: [0], apply: (a) => (a[0] = 'toString') },
      ],
    ],
    { call: (api, a) => api.setBackend(a[0] as never) },
  ),
  setThreads: fn(fc.constant([dv.backendInfo().threads]), [intMuts(0, { tooSmall: () => 0, tooLarge: () => 5000 })]),
  setIsa: fn(
    fc.constant(['scalar']),
    [
      [
        { name: 'a number', code: 'E_TYPE', touches: [0], apply: (a) => (a[0] = 5) },
        { name: 'unknown', code: 'E_ARG', touches: [0], apply: (a) => (a[0] = 'sse9') },
      ],
    ],
    {
      call: (api, a) => {
        api.setIsa(a[0] as never);
        api.setIsa(dv.availableIsas().at(-1) as never);
      },
    },
  ),

  matrix: fn(
    fc
      .tuple(dim(0, 3), dim(1, 3))
      .chain(([r, c]) => fc.array(fc.array(val, { minLength: c, maxLength: c }), { minLength: r, maxLength: r }).map((rows) => [rows])),
    [
      [
        {
          name: 'an entry a string',
          code: 'E_TYPE',
          touches: [0],
          apply: (a) => {
            const rows = a[0] as unknown[][];
            if (rows.length) rows[0][0] = 'a';
            else a[0] = [['a']];
          },
        },
        { name: 'a ragged row', code: 'E_SHAPE', touches: [0], apply: (a) => (a[0] = [[1, 2], [3]]) },
        { name: 'not an array', code: 'E_TYPE', touches: [0], apply: (a) => (a[0] = 5) },
      ],
      [{ name: 'cols a string', code: 'E_TYPE', touches: [1], apply: (a) => (a[1] = '3') }],
    ],
  ),
  row: fn(
    mat().chain((m) => fc.integer({ min: 0, max: m.rows - 1 }).map((i) => [m, i])),
    [matMuts(0).filter((x) => x.name.indexOf('one too long') < 0), intMuts(1, { tooLarge: (_a) => 99 })],
  ),
  rows: fn(
    mat().map((m) => [m]),
    [matMuts(0)],
  ),
  quantize: fn(
    fc
      .tuple(mat(), fc.constantFrom('f16', 'bf16', 'i8'), fc.constantFrom(undefined, 'row', 'global'))
      .map(([m, t, s]) => (t === 'i8' && s ? [m, t, { scale: s }] : [m, t])),
    [
      matMuts(0),
      [
        { name: 'dtype a number', code: 'E_TYPE', touches: [1], apply: (a) => (a[1] = 5) },
        { name: 'dtype unknown', code: 'E_ARG', touches: [1], apply: (a) => (a[1] = 'f64') },
      ],
      [{ name: 'options a number', code: 'E_TYPE', touches: [2], apply: (a) => (a[2] = 5) }],
    ],
  ),
  dequantize: fn(
    fc.tuple(mat(), fc.constantFrom('f16', 'bf16', 'i8')).map(([m, t]) => [dv.quantize(m, t as 'i8')]),
    [
      [
        {
          name: 'data a Proxy',
          code: 'E_TYPE',
          touches: [0],
          apply: (a) => (a[0] = { ...(a[0] as object), data: new Proxy((a[0] as { data: object }).data, {}) }),
        },
        {
          name: 'data too long',
          code: 'E_SHAPE',
          touches: [0],
          apply: (a) => {
            const c = a[0] as { data: Uint16Array | Int8Array; dtype: string };
            a[0] = { ...c, data: c.dtype === 'i8' ? Int8Array.from([...c.data, 1]) : Uint16Array.from([...c.data, 1]) };
          },
        },
        { name: 'dtype unknown', code: 'E_ARG', touches: [0], apply: (a) => (a[0] = { ...(a[0] as object), dtype: 'u4' }) },
      ],
    ],
  ),
  f16ToNumber: fn(
    fc.integer({ min: 0, max: 0xffff }).map((h) => [h]),
    [intMuts(0, { tooLarge: () => 0x10000, tooSmall: () => -1 })],
  ),
  bf16ToNumber: fn(
    fc.integer({ min: 0, max: 0xffff }).map((h) => [h]),
    [intMuts(0, { tooLarge: () => 0x10000 })],
  ),
  numberToF16: fn(
    fc.double({ min: -7e4, max: 7e4, noNaN: true }).map((x) => [x]),
    [numMuts(0)],
  ),
  numberToBf16: fn(
    fc.double({ min: -1e30, max: 1e30, noNaN: true }).map((x) => [x]),
    [numMuts(0)],
  ),

  dot: fn(vecPair, [vecMuts(0), vecMuts(1, { shape: false })], { tol: [1e-4, 1e-4] }),
  cosine: fn(vecPair, [vecMuts(0), vecMuts(1, { shape: false })], { tol: [1e-4, 1e-5] }),
  l2sq: fn(vecPair, [vecMuts(0), vecMuts(1, { shape: false })], { tol: [1e-4, 1e-4] }),
  norm: fn(
    f32(3).map((a) => [a]),
    [vecMuts(0, { shape: false }).concat([{ name: 'empty', code: 'E_SHAPE', touches: [0], apply: (a) => (a[0] = new Float32Array(0)) }])],
  ),
  normalize: fn(
    f32(4).map((a) => [a]),
    [vecMuts(0, { shape: false })],
  ),
  normalizeInPlace: fn(
    mat().map((m) => [m]),
    [matMuts(0)],
    {
      call: (api, a) => {
        api.normalizeInPlace(a[0] as M);
        return a[0];
      },
    },
  ),
  normalizeRows: fn(
    mat().map((m) => [m]),
    [matMuts(0)],
  ),
  similarityMatrix: fn(simArgs, [simMuts]),
  similarityMatrixAsync: fn(simArgs, [simMuts]),
  topK: fn(topKArgs, [topKMuts], { compare: compareTopK }),
  topKAsync: fn(topKArgs, [topKMuts], { compare: compareTopK }),

  // Pipelines (test/pipelines.test.ts has the exactness, file and input tests).
  SKIP_NONE: other(() => expect(dv.SKIP_NONE).toBe(0xffffffff)),
  CORPUS_MAGIC: other(() => expect(dv.CORPUS_MAGIC).toBe('DVCORPUS')),
  CORPUS_VERSION: other(() => expect(dv.CORPUS_VERSION).toBe(1)),
  CORPUS_HEADER_BYTES: other(() => expect(dv.CORPUS_HEADER_BYTES).toBe(64)),
  // mergeTopK of the two halves of the corpus equals topK on the whole, on both backends
  // (valid inputs only here: its error contract is in test/pipelines.test.ts).
  mergeTopK: fn(topKArgs, [], {
    compare: compareTopK,
    call: (api, a) => {
      const [q, c, k, o] = a as [M, M, number, { metric?: 'dot' | 'l2sq' } | undefined];
      const h = Math.max(1, c.rows >> 1);
      const parts = [
        { data: c.data.subarray(0, h * c.cols), rows: h, cols: c.cols },
        { data: c.data.subarray(h * c.cols), rows: c.rows - h, cols: c.cols },
      ]
        .filter((p) => p.rows > 0)
        .map((p) => api.topK(q, p, Math.min(k, p.rows), o));
      return api.mergeTopK(parts, k, o);
    },
  }),
  topKStream: other(() => {
    const c = { data: Float32Array.from({ length: 40 }, (_, i) => Math.sin(i)), rows: 10, cols: 4 };
    const q = { data: c.data.slice(0, 8), rows: 2, cols: 4 };
    return dv.topKStream(q, dv.corpusChunks(c, 3), 4).then((r) => expect(Array.from(r.indices)).toEqual(Array.from(dv.topK(q, c, 4).indices)));
  }),
  corpusChunks: other(() => {
    const c = { data: new Float32Array(20), rows: 5, cols: 4 };
    expect([...dv.corpusChunks(c, 2)].map((x) => x.rows)).toEqual([2, 2, 1]);
    expect(() => [...dv.corpusChunks(c, 0)]).toThrow(/rows must be a positive integer/);
  }),
  writeCorpus: other(() => expect(() => dv.writeCorpus('/nonexistent-dir/x.dvc', { data: new Float32Array(4), rows: 2, cols: 2 })).toThrow(/cannot open/)),
  openCorpus: other(() => expect(() => dv.openCorpus('/nonexistent-dir/x.dvc')).toThrow(/cannot open/)),
  readCorpusHeader: other(() => expect(() => dv.readCorpusHeader('openCorpus', 'x', new ArrayBuffer(8))).toThrow(/less than the 64-byte header/)),
  matrixFrom: other(() => expect(Array.from(dv.matrixFrom(new Float64Array([1, 2, 3, 4]), 2).data)).toEqual([1, 2, 3, 4])),
  toArrow: other(() => expect((dv.toArrow({ data: new Float32Array(6), rows: 3, cols: 2 }) as { length: number }).length).toBe(3)),

  randomUnitVectors: fn(
    fc.tuple(dim(1, 4), dim(1, 5), fc.integer({ min: 0, max: 2 ** 40 })),
    [intMuts(0, { tooSmall: () => 0 }), intMuts(1, { tooSmall: () => 0 }), intMuts(2, { tooSmall: () => -1, tooLarge: () => 2 ** 53 })],
    { tol: [1e-6, 1e-6] },
  ),
  nullCosine: fn(
    fc.integer({ min: 2, max: 1e6 }).map((d) => [d]),
    [intMuts(0, { tooSmall: () => 1 })],
  ),
  cosinePValue: fn(
    fc.tuple(
      fc.double({ min: -1, max: 1, noNaN: true }),
      fc.oneof(fc.integer({ min: 2, max: 3000 }), fc.integer({ min: 2, max: Number.MAX_SAFE_INTEGER })),
      fc.constantFrom(undefined, { tail: 'greater' }, { tail: 'two-sided' }),
    ),
    [
      numMuts(0, [1.5, -2]).concat([{ name: 's NaN', code: 'E_NON_FINITE', touches: [0], apply: (a) => (a[0] = NaN) }]),
      intMuts(1, { tooSmall: () => 1, tooLarge: () => 2 ** 53 }),
      optTypeMuts(2).concat(
        optMuts(2, 'tail', [
          [1, 'E_TYPE'],
          ['less', 'E_ARG'],
          ['toString', 'E_ARG'],
        ]),
      ),
    ],
    { tol: [1e-9, 1e-12] },
  ),
  similarityStats: fn(statsArgs, [statsMuts], { tol: [1e-4, 1e-4] }),
  similarityStatsAsync: fn(statsArgs, [statsMuts], { tol: [1e-4, 1e-4] }),

  softmaxProbabilities: fn(
    fc
      .tuple(dim(1, 4), dim(1, 4), fc.double({ min: 0.2, max: 3, noNaN: true }))
      .chain(([n, d, t]) => fc.tuple(f32(d), matOf(n, d)).map(([x, ys]) => [x, ys, t])),
    [vecMuts(0, { finite: true }), matMuts(1, { finite: true }), numMuts(2, [0, -1])],
    { tol: [1e-3, 1e-5] },
  ),
  infoNCE: fn(infoArgs, [infoMuts], { tol: [1e-3, 1e-3] }),
  infoNCEAsync: fn(infoArgs, [infoMuts], { tol: [1e-3, 1e-3] }),
  ntXent: fn(ntArgs, [ntMuts], { tol: [1e-3, 1e-3] }),
  ntXentAsync: fn(ntArgs, [ntMuts], { tol: [1e-3, 1e-3] }),
  mismatchScore: fn(sameShape(2), [pairMuts({ finite: true })], { tol: [1e-4, 1e-5] }),
  temperatureSchedule: fn(
    fc
      .tuple(
        fc.double({ min: 0.01, max: 2, noNaN: true }),
        fc.double({ min: 0.01, max: 2, noNaN: true }),
        dim(1, 100),
        fc.constantFrom(undefined, 'linear', 'cosine', 'exponential'),
      )
      .map(([start, end, steps, kind]) => [{ start, end, steps, kind }]),
    [
      optTypeMuts(0),
      optMuts(0, 'steps', [
        [1.5, 'E_TYPE'],
        [0, 'E_ARG'],
      ]),
      numOptMuts(0, 'start', 0),
      optMuts(0, 'kind', [
        [5, 'E_TYPE'],
        ['valueOf', 'E_ARG'],
      ]),
    ]
      .flat()
      .map((m) => [m]),
    {
      call: (api, a) => {
        const f = api.temperatureSchedule(a[0] as never);
        return [0, 0.5, 3, 1e9].map(f);
      },
    },
  ),

  marginSoftmax: fn(marginArgs, [marginMuts], { tol: [1e-3, 1e-3] }),
  marginGeometry: fn(geomArgs, geomMuts, { tol: [1e-3, 1e-3] }),
  negativeSamplingLoss: fn(nsArgs, nsMuts, { tol: [1e-4, 1e-4] }),
  unigramWeights: fn(unigramArgs, unigramMuts, { tol: [1e-12, 0] }),
  AliasSampler: fn(aliasArgs, aliasMuts, {
    call: (api, a) => {
      const s = new api.AliasSampler(a[0] as number[], a[1] as number);
      return [s.sample(a[2] as number), s.probabilities, s.logProb(new Uint32Array([0]))];
    },
    tol: [1e-6, 0],
  }),
  marginSoftmaxAsync: fn(marginArgs, [marginMuts], { tol: [1e-3, 1e-3] }),
  labelSmoothingCrossEntropy: fn(
    fc
      .tuple(dim(1, 4), dim(1, 4), fc.double({ min: 0, max: 0.9, noNaN: true }))
      .chain(([n, c, e]) =>
        fc.tuple(matOf(n, c), fc.array(fc.integer({ min: 0, max: c - 1 }), { minLength: n, maxLength: n })).map(([l, y]) => [l, Uint32Array.from(y), e]),
      ),
    [matMuts(0, { finite: true }), idxMuts(1, (a) => (a[0] as M).cols), numMuts(2, [1, -0.1])],
    { tol: [1e-4, 1e-5] },
  ),
  normPenalty: fn(fc.tuple(mat(), fc.double({ min: 0, max: 3, noNaN: true })), [matMuts(0, { finite: true }), numMuts(1, [-1, Infinity])], {
    tol: [1e-4, 1e-4],
  }),
  l1Penalty: fn(fc.tuple(mat(), fc.double({ min: 0, max: 3, noNaN: true })), [matMuts(0, { finite: true }), numMuts(1, [-1, NaN])], { tol: [1e-4, 1e-4] }),

  GaussianStream: fn(
    fc.integer({ min: 0, max: 2 ** 50 }).map((s) => [s]),
    [intMuts(0, { tooSmall: () => -1, tooLarge: () => 2 ** 53 })],
    {
      call: (api, a) => {
        const g = new api.GaussianStream(a[0] as number);
        return [g.gauss(), g.gauss(), g.uniform()];
      },
      tol: [0, 0],
    },
  ),
  knnClassify: fn(knnArgs, [knnMuts]),
  knnClassifyAsync: fn(knnArgs, [knnMuts]),
  randomOrthogonal: fn(
    fc.tuple(dim(1, 6), fc.integer({ min: 0, max: 2 ** 40 })),
    [intMuts(0, { tooSmall: () => 0, tooLarge: () => 16385 }), intMuts(1, { tooSmall: () => -1 })],
    { tol: [1e-4, 1e-5] },
  ),
  matmul: fn(
    fc.tuple(dim(), dim(), dim()).chain(([m, k, n]) => fc.tuple(matOf(m, k), matOf(k, n))),
    [
      matMuts(0),
      matMuts(1),
      [
        {
          name: 'b.rows ≠ a.cols',
          code: 'E_SHAPE',
          touches: [1],
          apply: (a) => {
            const b = a[1] as M;
            a[1] = { data: new Float32Array((b.rows + 1) * b.cols), rows: b.rows + 1, cols: b.cols };
          },
        },
      ],
    ],
    { tol: [1e-4, 1e-4] },
  ),
  procrustes: fn(procArgs, [procMuts], { compare: compareProcrustes }),
  procrustesAsync: fn(procArgs, [procMuts], { compare: compareProcrustes }),
  sphericalTriangle: fn(
    // Three vertices near three different axes: never zero, never on one great circle.
    dim(3, 4).chain((d) =>
      fc.tuple(f32(d), f32(d), f32(d)).map((vs) => {
        vs.forEach((v, i) => {
          for (let k = 0; k < d; k++) v[k] = v[k] / 4 + (k === i ? 5 : 0);
        });
        return vs;
      }),
    ),
    [
      vecMuts(0, { finite: true }),
      vecMuts(1, { finite: true }),
      vecMuts(2, { finite: true, shape: false }),
      [{ name: 'x zero', code: 'E_ARG', touches: [0], apply: (a) => arg<Float32Array>(a, 0).fill(0) }],
    ],
    { tol: [1e-3, 1e-4] },
  ),

  BatchNorm: fn(
    fc
      .tuple(dim(2, 4), dim(1, 4), fc.double({ min: 0, max: 1, noNaN: true }), fc.double({ min: 1e-6, max: 1, noNaN: true }), fc.boolean())
      .chain(([n, d, momentum, eps, training]) => matOf(n, d).map((m) => [d, { momentum, eps }, m, { training }])),
    [
      // The constructor throws before forward is called: its mutations are not combined.
      [...intMuts(0, { tooSmall: () => 0 }), ...numOptMuts(1, 'eps', -1), ...optMuts(1, 'momentum', [[2, 'E_ARG']])].map((x) => ({
        ...x,
        touches: [0, 1, 2, 3],
      })),
      matMuts(2, { finite: true }),
      optMuts(3, 'training', [['yes', 'E_TYPE']]),
    ],
    {
      call: (api, a) => {
        const l = new api.BatchNorm(a[0] as number, a[1] as never);
        const out = l.forward(a[2] as M, a[3] as never);
        return [out, l.runningMean, l.runningVar];
      },
      tol: [1e-4, 1e-4],
    },
  ),
  embeddingDrift: fn(sameShape(), [pairMuts({ finite: true })], { tol: [1e-4, 1e-4] }),
  sparsity: fn(
    fc
      .tuple(mat(1, 4, 2, 5), fc.option(fc.double({ min: 0, max: 1, noNaN: true }), { nil: undefined }))
      .map(([m, e]) => [m, e === undefined ? undefined : { eps: e }]),
    [matMuts(0, { finite: true }), optTypeMuts(1).concat(numOptMuts(1, 'eps', -1))],
    { tol: [1e-4, 1e-5] },
  ),
  dotRows: fn(rowsArgs, [rowsMuts], { tol: [1e-4, 1e-4] }),
  cosineRows: fn(rowsArgs, [rowsMuts], { tol: [1e-4, 1e-4] }),
  l2sqRows: fn(rowsArgs, [rowsMuts], { tol: [1e-4, 1e-4] }),
  l1Rows: fn(rowsArgs, [rowsMuts], { tol: [1e-4, 1e-4] }),
  graphGeodesics: fn(geoArgs, [graphMuts], { tol: [1e-4, 1e-5] }),
  graphGeodesicsAsync: fn(geoArgs, [graphMuts], { tol: [1e-4, 1e-5] }),
  hyperbolicity: fn(hypArgs, [graphMuts], { tol: [1e-4, 1e-5] }),
  hyperbolicityAsync: fn(hypArgs, [graphMuts], { tol: [1e-4, 1e-5] }),
  triangleCurvature: fn(triArgs, [graphMuts], { tol: [1e-4, 1e-5] }),
  triangleCurvatureAsync: fn(triArgs, [graphMuts], { tol: [1e-4, 1e-5] }),
  mapDistortion: fn(mapArgs, [mapMuts], { tol: [1e-3, 1e-4] }),
  analogy: fn(analogyArgs, [analogyMuts], { compare: compareAnalogy }),
  softThreshold: fn(softArgs, [softMuts]),
  softThresholdInPlace: fn(softArgs, [softMuts], {
    call: (api, a) => {
      api.softThresholdInPlace(a[0] as M, a[1] as number);
      return a[0];
    },
  }),
  batchNormLag: fn(fc.tuple(fc.double({ min: 0.01, max: 1, noNaN: true }), fc.double({ min: -5, max: 5, noNaN: true })), [
    numMuts(0, [0, 2]),
    [...numMuts(1), { name: '1: NaN', code: 'E_NON_FINITE', touches: [1], apply: (a) => (a[1] = NaN) }],
  ]),
  wassersteinRegularizer: fn(wassArgs, [wassMuts], { tol: [1e-3, 1e-4] }),
  wassersteinRegularizerAsync: fn(wassArgs, [wassMuts], { tol: [1e-3, 1e-4] }),
};

// ---------------------------------------------------------------------------------------------
// Machinery.

function closeDeep(a: unknown, b: unknown, rtol: number, atol: number, path = '$'): void {
  if (typeof b === 'number') {
    expect(typeof a, path).toBe('number');
    const x = a as number;
    if (Number.isNaN(b) || Number.isNaN(x)) {
      expect(Number.isNaN(x), `${path}: ${x} vs ${b}`).toBe(Number.isNaN(b));
      return;
    }
    if (x === b) return;
    expect(Math.abs(x - b) <= atol + rtol * Math.abs(b), `${path}: ${x} vs ${b}`).toBe(true);
    return;
  }
  if (ArrayBuffer.isView(b)) {
    const A = a as ArrayLike<number>;
    const B = b as unknown as ArrayLike<number>;
    expect(A.length, `${path}.length`).toBe(B.length);
    const scale = Array.from(B).reduce((m, v) => Math.max(m, Math.abs(v)), 0);
    for (let i = 0; i < B.length; i++) closeDeep(A[i], B[i], rtol, atol * Math.max(1, scale), `${path}[${i}]`);
    return;
  }
  if (Array.isArray(b)) {
    expect(Array.isArray(a), path).toBe(true);
    expect((a as unknown[]).length, path).toBe(b.length);
    b.forEach((v, i) => {
      closeDeep((a as unknown[])[i], v, rtol, atol, `${path}[${i}]`);
    });
    return;
  }
  if (typeof b === 'object' && b !== null) {
    expect(Object.keys(a as object).sort(), path).toEqual(Object.keys(b).sort());
    for (const k of Object.keys(b)) closeDeep((a as Record<string, unknown>)[k], (b as Record<string, unknown>)[k], rtol, atol, `${path}.${k}`);
    return;
  }
  expect(a, path).toEqual(b);
}

type Outcome = { ok: true; value: unknown } | { ok: false; densevec: boolean; code?: string; message: string };

async function run(row: FnRow, name: string, args: unknown[]): Promise<Outcome> {
  try {
    const call = row.call ?? ((api: Api, a: unknown[]) => (api as unknown as Record<string, (...x: unknown[]) => unknown>)[name](...a));
    let v = call(dv, args);
    if (v instanceof Promise) v = await v;
    return { ok: true, value: v };
  } catch (e) {
    return { ok: false, densevec: e instanceof dv.DensevecError, code: (e as { code?: string }).code, message: (e as Error).message };
  }
}

/** Runs on native then reference, each on its own clone of the arguments. */
async function both(row: FnRow, name: string, args: unknown[]): Promise<[Outcome, Outcome]> {
  const out: Outcome[] = [];
  for (const b of ['native', 'reference'] as const) {
    dv.setBackend(b);
    try {
      out.push(await run(row, name, cloneArgs(args)));
    } finally {
      dv.setBackend('auto');
    }
  }
  return [out[0], out[1]];
}

/** A deep copy of arguments that may hold Proxies (kept as they are) and typed arrays. */
function cloneArgs(a: unknown): unknown[] {
  const c = (x: unknown): unknown => {
    if (typeof x !== 'object' || x === null) return x;
    if (ArrayBuffer.isView(x)) {
      try {
        return (x as unknown as { slice(): unknown }).slice();
      } catch {
        return x;
      }
    }
    if (Array.isArray(x)) return x.map(c);
    if (Object.getPrototypeOf(x) !== Object.prototype) return x;
    const o: Record<string, unknown> = {};
    for (const k of Object.keys(x)) o[k] = c((x as Record<string, unknown>)[k]);
    return o;
  };
  return c(a) as unknown[];
}

/** One or two mutations on disjoint arguments. */
function mutationPicks(muts: Mutation[]): fc.Arbitrary<Mutation[]> {
  const one = fc.constantFrom(...muts).map((m) => [m]);
  const pairs: Mutation[][] = [];
  for (const a of muts) for (const b of muts) if (a.touches.every((t) => !b.touches.includes(t))) pairs.push([a, b]);
  if (pairs.length === 0) return one;
  return fc.oneof(one, fc.constantFrom(...pairs));
}

/** Fixed by default so CI is reproducible; DENSEVEC_PROPERTY_SEED=<n> explores other cases. */
const SEED = Number(process.env.DENSEVEC_PROPERTY_SEED ?? 20261129);
const VALID_RUNS = 12;
const INVALID_RUNS = 30;
const successes: Record<string, number> = {};

describe('properties: coverage', () => {
  it('every export of dist/index.js has a row in the table, and every row an export', () => {
    const exported = Object.keys(dv).sort();
    const missing = exported.filter((k) => !(k in TABLE));
    expect(missing, `exports without a row in test/properties.test.ts TABLE: ${missing.join(', ')}`).toEqual([]);
    const stale = Object.keys(TABLE).filter((k) => !(k in dv));
    expect(stale).toEqual([]);
  });
});

describe('properties: valid inputs agree across backends', () => {
  for (const [name, row] of Object.entries(TABLE)) {
    if (row.kind === 'other') {
      it(name, () => row.check());
      continue;
    }
    it(name, async () => {
      successes[name] = 0;
      await fc.assert(
        fc.asyncProperty(row.args, async (args) => {
          const [n, r] = await both(row, name, args);
          if (n.ok && r.ok) {
            successes[name]++;
            if (row.compare) row.compare(n.value, r.value, args);
            else closeDeep(n.value, r.value, row.tol?.[0] ?? 1e-5, row.tol?.[1] ?? 1e-6);
            return;
          }
          // Both may refuse a generated case (e.g. a degenerate triangle), but identically.
          expect({ native: n.ok ? 'ok' : n.message, reference: r.ok ? 'ok' : r.message }).toEqual({
            native: r.ok ? 'ok' : r.message,
            reference: r.ok ? 'ok' : r.message,
          });
          expect(n.ok || n.densevec).toBe(true);
        }),
        { numRuns: VALID_RUNS, seed: SEED, endOnFailure: true },
      );
      expect(successes[name], `${name}: no generated valid case succeeded`).toBeGreaterThan(VALID_RUNS / 2);
    });
  }
});

describe('properties: invalid inputs give the predicted code, identically on both backends', () => {
  for (const [name, row] of Object.entries(TABLE)) {
    if (row.kind === 'other' || row.muts.length === 0) continue;
    it(name, async () => {
      const arb = fc.tuple(row.args, mutationPicks(row.muts));
      await fc.assert(
        fc.asyncProperty(arb, async ([valid, picks]) => {
          const args = cloneArgs(valid);
          for (const m of picks) m.apply(args, valid);
          const want = ORDER[Math.min(...picks.map((m) => ORDER.indexOf(m.code)))];
          const [n, r] = await both(row, name, args);
          const what = picks.map((m) => m.name).join(' + ');
          for (const [b, o] of [
            ['native', n],
            ['reference', r],
          ] as const) {
            expect(o.ok, `${name} (${what}) on ${b} did not throw`).toBe(false);
            if (!o.ok) {
              expect(o.densevec, `${name} (${what}) on ${b}: ${o.message}`).toBe(true);
              expect(o.code, `${name} (${what}) on ${b}: ${o.message}`).toBe(want);
            }
          }
          expect((n as { message: string }).message, `${name} (${what})`).toBe((r as { message: string }).message);
        }),
        { numRuns: INVALID_RUNS, seed: SEED, endOnFailure: true },
      );
    });
  }
});

afterAll(() => dv.setBackend('auto'));
