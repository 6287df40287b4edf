/** Stable error codes of densevec (see README, "Errors"). */
export type ErrorCode = 'E_TYPE' | 'E_SHAPE' | 'E_ARG' | 'E_NON_FINITE' | 'E_BACKEND' | 'E_INTERNAL';

/**
 * The only error densevec throws. `code` is stable; `message` names the function, the argument
 * and the offending values, e.g. `cosine: a has length 768 but b has length 767`.
 */
export class DensevecError extends Error {
  /** One of `E_TYPE`, `E_SHAPE`, `E_ARG`, `E_NON_FINITE`, `E_BACKEND` (`E_INTERNAL` for a bug). */
  readonly code: ErrorCode;
  constructor(code: ErrorCode, message: string) {
    super(message);
    this.code = code;
    this.name = 'DensevecError';
  }
}

/** Throws a {@link DensevecError}. */
export function fail(code: ErrorCode, message: string): never {
  throw new DensevecError(code, message);
}

const CODE_RE = /^(E_[A-Z_]+)\|([\s\S]*)$/;

/** Converts an error thrown by the native addon (`CODE|message`) into a DensevecError. */
export function fromNative(e: unknown): unknown {
  if (e instanceof DensevecError) return e;
  const msg = e instanceof Error ? e.message : String(e);
  const m = CODE_RE.exec(msg);
  if (m) return new DensevecError(m[1] as ErrorCode, m[2]);
  return new DensevecError('E_INTERNAL', `native: ${msg}`);
}
