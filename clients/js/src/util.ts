// Small helpers: a sleep that can be aborted, and a typed event emitter.

import { abortError } from "./errors.js";

/** Resolves after `ms`; rejects with an `aborted` LinkdropError when `signal` aborts first. */
export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) return reject(abortError(signal));
    const timer = setTimeout(() => {
      signal?.removeEventListener("abort", onAbort);
      resolve();
    }, ms);
    const onAbort = () => {
      clearTimeout(timer);
      reject(abortError(signal!));
    };
    signal?.addEventListener("abort", onAbort, { once: true });
  });
}

type Listener<T> = (value: T) => void;

/** A small typed event emitter; a throwing listener does not stop the others. */
export class Emitter<M> {
  private listeners = new Map<keyof M, Set<Listener<any>>>();

  on<K extends keyof M>(type: K, listener: Listener<M[K]>): () => void {
    let set = this.listeners.get(type);
    if (!set) this.listeners.set(type, (set = new Set()));
    set.add(listener);
    return () => this.off(type, listener);
  }

  off<K extends keyof M>(type: K, listener: Listener<M[K]>): void {
    this.listeners.get(type)?.delete(listener);
  }

  emit<K extends keyof M>(type: K, value: M[K]): void {
    const set = this.listeners.get(type);
    if (!set) return;
    for (const listener of [...set]) {
      try {
        listener(value);
      } catch (e) {
        setTimeout(() => {
          throw e;
        });
      }
    }
  }
}
