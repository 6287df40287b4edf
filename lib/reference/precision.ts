/**
 * The bf16 compute precision of the reference backend: inputs rounded to bfloat16 exactly as
 * the native GEMMs round them (round to nearest, ties to even; a float32 subnormal becomes a
 * zero of its sign; NaN stays a quiet NaN of its sign; ±∞ stay; values past the largest bf16
 * become ±∞), then the float64 computation of the f32 precision on the rounded values.
 */
import type { Matrix } from '../matrix';

/** The bf16 value (as float32) that a bf16-precision product uses for each element of `src`. */
export function bf16Array(src: Float32Array): Float32Array {
  const out = new Float32Array(src);
  const u = new Uint32Array(out.buffer, out.byteOffset, out.length);
  for (let i = 0; i < u.length; i++) {
    const x = u[i];
    if ((x & 0x7f800000) === 0) u[i] = x & 0x80000000;
    else if ((x & 0x7fffffff) > 0x7f800000) u[i] = (x & 0xffff0000) | 0x00400000;
    else u[i] = (x + 0x7fff + ((x >>> 16) & 1)) & 0xffff0000;
  }
  return out;
}

/** The bf16 values ({@link bf16Array}) of float64 values, each first rounded to float32. */
export function bf16F64(src: Float64Array): Float64Array {
  return Float64Array.from(bf16Array(Float32Array.from(src)));
}

/** A Matrix of the bf16 values of `m` ({@link bf16Array}). */
export function bf16Matrix(m: Matrix): Matrix {
  return { data: bf16Array(m.data), rows: m.rows, cols: m.cols };
}
