/**
 * Allocation of the reference backend's buffers with the public error contract: a size the
 * engine refuses (larger than a typed array may be, or more memory than it can get) throws
 * `E_ARG` naming the function, the bytes asked for, what they were for and, where one exists,
 * the way out, as the native backend does, instead of a plain `RangeError`.
 * Shared by both backends (lib/contract/).
 */
import { fail } from '../errors';

/** A typed-array constructor (`Float32Array`, `Float64Array`, `Uint32Array`, …). */
export interface TypedCtor<T> {
  new (length: number): T;
  readonly BYTES_PER_ELEMENT: number;
}

/** Human-readable size: "80.0 GB", "1.5 MB", "12 bytes" (the native messages' format). */
export function humanBytes(bytes: number): string {
  const units: [string, number][] = [
    ['TB', 1e12],
    ['GB', 1e9],
    ['MB', 1e6],
    ['kB', 1e3],
  ];
  for (const [u, s] of units) if (bytes >= s) return `${(bytes / s).toFixed(1)} ${u}`;
  return `${bytes} bytes`;
}

/**
 * `new Ctor(length)`, or `E_ARG` "fn: cannot allocate N bytes (…) for WHAT; HINT" when the
 * engine cannot provide it. `length` is a product of dimensions; one that is not a safe integer
 * (2^53 or more) is refused the same way.
 */
export function alloc<T>(Ctor: TypedCtor<T>, length: number, fn: string, what: string, hint?: string): T {
  if (Number.isSafeInteger(length)) {
    try {
      return new Ctor(length);
    } catch (e) {
      if (!(e instanceof RangeError)) throw e;
    }
  }
  const bytes = length * Ctor.BYTES_PER_ELEMENT;
  const exact = Number.isSafeInteger(bytes) ? String(bytes) : bytes.toExponential(3);
  return fail('E_ARG', `${fn}: cannot allocate ${exact} bytes (${humanBytes(bytes)}) for ${what}${hint ? `; ${hint}` : ''}`);
}
