/** Which objects under a window's aggregates prefix are its part files: one rule for planning, commit and tools. */
import { keys } from '../keys';
import type { ObjectStore } from '../store/object-store';

/** The part files of the window `windowId`, sorted by key. */
export async function listAggregateParts(store: ObjectStore, windowId: string): Promise<string[]> {
  return (await store.list(keys.aggregatesPrefix(windowId))).filter((k) => k.endsWith('.arrow'));
}
