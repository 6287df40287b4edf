/**
 * How a native wrapper runs one operation, written once for every operation: its synchronous
 * form ({@link runSync}) and its …Async twin ({@link runAsync}). An operation ({@link Op}) says
 * how its arguments are read, checked and passed to the addon, and how the addon's result
 * becomes the public one; the runners do the rest the same way for all of them:
 *
 * - sync: read the arguments once; on the reference backend call the reference (which checks
 *   them itself); else check, call the addon now (on the device the backend asks for, when the
 *   operation has a GPU form) and turn an addon error into a DensevecError;
 * - async: read and check the arguments on the calling thread (errors reject, never throw),
 *   then run the reference in its worker thread or the addon on the libuv pool.
 */
import { type NativeBinding, nat, rethrow } from './backend';
import { later } from './contract/async';
import { ASYNC, type How, SYNC, now, onDevice, soon } from './cuda';
import { type RefAsyncName, refAsync } from './refasync';

/** One operation of the native wrappers: `A` its arguments, `P` what its check returns, `N` the addon's result, `R` the public result. */
export interface Op<A extends unknown[], P, N, R, K extends string = string> {
  /** The public name: the reference function's and, with "Async", the twin's. */
  name: K;
  /** The reference implementation (it reads and checks its arguments itself). */
  reference: (...args: A) => R;
  /** Reads the arguments once (the snapshot the work sees); absent: they are used as given. */
  snap?: (fn: string, ...args: A) => [...A];
  /** Checks the read arguments and returns what the addon call needs beyond them. */
  check: (fn: string, ...args: A) => P;
  /** Calls the addon (`how`: now or as a Promise, and on which device). */
  call: (n: NativeBinding, how: How, p: P, ...args: A) => N | Promise<N>;
  /** The public result from the addon's (shapes from the check and the arguments); absent: the addon's as is. */
  out?: (r: N, p: P, ...args: A) => R;
  /** Whether the synchronous form runs on the device the backend asks for (the GPU forms). */
  gpu?: boolean;
}

/** The result of the addon's entry point `K` (what an {@link Op}'s `out` receives). */
export type NativeResult<K extends keyof NativeBinding> = NativeBinding[K] extends (...args: never[]) => infer T ? Awaited<T> : never;

/** An {@link Op} (the function only infers its types). */
export function op<A extends unknown[], P, N, R, K extends string>(o: Op<A, P, N, R, K>): Op<A, P, N, R, K> {
  return o;
}

function read<A extends unknown[], P, N, R>(o: Op<A, P, N, R>, fn: string, args: A): A {
  return o.snap ? o.snap(fn, ...args) : args;
}

function result<A extends unknown[], P, N, R>(o: Op<A, P, N, R>, r: N, p: P, args: A): R {
  return o.out ? o.out(r, p, ...args) : (r as unknown as R);
}

/** The synchronous form of `o` on `args`. */
export function runSync<A extends unknown[], P, N, R>(o: Op<A, P, N, R>, args: NoInfer<A>): R {
  const a = read(o, o.name, args);
  const n = nat();
  if (n === null) return o.reference(...a);
  const p = o.check(o.name, ...a);
  try {
    return result(o, now(o.call(n, o.gpu ? onDevice() : SYNC, p, ...a)), p, a);
  } catch (e) {
    rethrow(e);
  }
}

/** The …Async twin of `o` on `args` (arguments read and copied at call time). */
export function runAsync<A extends unknown[], P, N, R>(o: Op<A, P, N, R, RefAsyncName>, args: NoInfer<A>): Promise<R> {
  return later(() => {
    const fn = `${o.name}Async`;
    const a = read(o, fn, args);
    const p = o.check(fn, ...a);
    const n = nat();
    if (n === null) return refAsync<R>(o.name, a);
    return soon(o.call(n, ASYNC, p, ...a)).then((r) => result(o, r, p, a), rethrow);
  });
}
