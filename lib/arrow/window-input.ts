/**
 * A window's input as it is in the store now: the aggregates parts of every hourly folder the window spans, with
 * their size and modification time, and the producer's completion markers. What a run waits for (input
 * readiness), what its plan pins and its manifest records (so late data is found), and what a window of N hours
 * reads: all N folders.
 */
import { forEachLimited } from '../shared/concurrency';
import { isAggregatesPart } from './aggregate-parts';
import { keys } from '../shared/keys';
import { hourlyIdsOf, type Window } from '../shared/window';
import type { ObjectStore, StoredObject } from '../store/object-store';

/** One hourly folder of a window's input. */
export interface HourInput {
  hour: string;
  prefix: string;
  /** The parts in it, sorted by key. */
  parts: StoredObject[];
  /** The completion marker, when the producer wrote one. */
  marker?: StoredObject;
}

/** A window's input, hour by hour. */
export interface WindowInput {
  hours: HourInput[];
  /** Every part of every hour, sorted by key. */
  parts: StoredObject[];
}

const LIST_CONCURRENCY = 8;

/** Lists the input folders of every hour of `window`, a few at once. */
export async function listWindowInput(store: ObjectStore, window: Window): Promise<WindowInput> {
  const hours = hourlyIdsOf(window).map((hour): HourInput => ({
    hour,
    prefix: keys.aggregatesPrefix(hour),
    parts: [],
  }));
  await forEachLimited(hours, LIST_CONCURRENCY, async (h) => {
    for (const o of await store.listObjects(h.prefix)) {
      if (isAggregatesPart(h.prefix, o.key)) h.parts.push(o);
      else if (o.key === keys.inputMarker(h.hour)) h.marker = o;
    }
  });
  return { hours, parts: hours.flatMap((h) => h.parts) };
}

/** The part files of `window` (of every hour it spans), sorted by key: for planning, commit and tools. */
export async function listAggregateParts(store: ObjectStore, window: Window): Promise<string[]> {
  return (await listWindowInput(store, window)).parts.map((p) => p.key);
}
