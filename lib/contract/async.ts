/**
 * The calling-thread half of every …Async twin, shared by both backends.
 */
import { fromNative } from '../errors';

/**
 * Runs `f` (which validates its arguments and starts the work) and turns a thrown error into a
 * rejected promise, always a DensevecError: an async twin never throws synchronously.
 */
export function later<T>(f: () => T | Promise<T>): Promise<T> {
  try {
    return Promise.resolve(f());
  } catch (e) {
    return Promise.reject(fromNative(e));
  }
}
