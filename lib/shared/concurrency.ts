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

  /** Runs `work` once every earlier `run`'s work has settled; resolves or rejects as `work` does. */
  run<T>(work: () => Promise<T>): Promise<T> {
    const turn = this.last.then(work);
    this.last = turn.catch(() => undefined);
    return turn;
  }
}
