/**
 * The worker thread of the reference backend's …Async twins (see refasync.ts): runs one
 * reference function per message on arguments already validated and copied by the caller, and
 * posts back the result (its buffers transferred) or the error's code and message.
 */
import { parentPort } from 'node:worker_threads';
import { DensevecError } from './errors';
import * as ref from './reference/index';
import { REF_ASYNC_FUNCTIONS } from './refasync';
import { typedArrayKind } from './contract/validate';

const ALLOWED = new Set<string>(REF_ASYNC_FUNCTIONS);

/** Every distinct ArrayBuffer reachable from a result (for the transfer list). */
function buffers(x: unknown, out: Set<ArrayBuffer>, depth = 0): void {
  if (typeof x !== 'object' || x === null || depth > 4) return;
  if (typedArrayKind(x) !== undefined) {
    const b = (x as Float32Array).buffer;
    if (b instanceof ArrayBuffer) out.add(b);
    return;
  }
  for (const v of Object.values(x)) buffers(v, out, depth + 1);
}

const port = parentPort;
if (port) {
  port.on('message', (m: { id: number; name: string; args: unknown[] }) => {
    try {
      if (!ALLOWED.has(m.name)) throw new DensevecError('E_INTERNAL', `reference worker: unknown function ${m.name}`);
      const f = (ref as unknown as Record<string, (...a: unknown[]) => unknown>)[m.name];
      const result = f(...m.args);
      const list = new Set<ArrayBuffer>();
      buffers(result, list);
      port.postMessage({ id: m.id, ok: true, result }, [...list]);
    } catch (e) {
      const code = e instanceof DensevecError ? e.code : 'E_INTERNAL';
      const message = e instanceof Error ? e.message : String(e);
      port.postMessage({ id: m.id, ok: false, code, message });
    }
  });
}
