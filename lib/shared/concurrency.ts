/**
 * Runs `work` on every item, at most `limit` at once, each worker taking the next item when it finishes one, so
 * items start in order. Rejects with the first failure.
 */
export async function forEachLimited<T>(
  items: readonly T[],
  limit: number,
  work: (item: T, index: number) => Promise<void>,
): Promise<void> {
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < items.length) {
      const i = next++;
      await work(items[i] as T, i);
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
}

/** Work that runs one at a time, in the order it was handed in (a FIFO lock for async work). */
export class Turns {
  private last: Promise<unknown> = Promise.resolve();

  /**
   * Runs `work` once every earlier `run`'s work has settled; resolves or rejects as `work` does. Aborted by `signal`
   * before its turn, it rejects at once with the signal's reason, and `work` never runs (its turn passes on); once
   * `work` has started, it settles as `work` does.
   */
  run<T>(work: () => Promise<T>, signal?: AbortSignal): Promise<T> {
    let started = false;
    const turn = this.last.then(() => {
      signal?.throwIfAborted();
      started = true;
      return work();
    });
    this.last = turn.catch(() => undefined);
    if (!signal) return turn;
    return new Promise<T>((resolve, reject) => {
      const onAbort = () => {
        if (!started) reject(signal.reason as Error);
      };
      signal.addEventListener('abort', onAbort, { once: true });
      if (signal.aborted) onAbort();
      turn.then(resolve, reject).finally(() => signal.removeEventListener('abort', onAbort));
    });
  }
}
