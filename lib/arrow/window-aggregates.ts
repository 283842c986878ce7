/**
 * A window's aggregates across all its part files: which parts hold a device, what an unreadable part means for
 * it under the window's layout, and its rows (see device-rows.ts).
 */
import type { AggregatesLayout } from '../shared/names';
import type { Window } from '../shared/window';
import { InvalidAggregates } from '../shared/errors';
import { DEVICE_COLUMN, type AggregatesPart } from './aggregates-part';
import { gatherDeviceRows, type DeviceRows, type MissingValues, type RowsArena } from './device-rows';
import { finerUnit, MILLISECONDS_UTC, type TimestampType } from './timestamps';

/**
 * The parts holding each device, for the window whose parts were indexed last on this thread: every shard of a run
 * builds its own WindowAggregates over the same parsed parts, and finding a device's parts by asking each part cost
 * a 100,000-device window (50 parts) 5 million lookups a run, where the index is built once per thread. It keeps
 * that window's parsed parts alive until another window is indexed, even after the parts cache has let them go: at
 * most one window per thread beyond the cache's budget.
 */
let lastIndex: { parts: readonly AggregatesPart[]; byDevice: Map<string, AggregatesPart[]> } | undefined;

/**
 * A window's aggregates, ready to hand each device its rows. Built by `AggregatesCache.window` (or directly from
 * parsed parts in tests and tools).
 */
export class WindowAggregates {
  constructor(
    readonly window: Window,
    /** The parts that were read and hold at least one wanted device. */
    readonly parts: readonly AggregatesPart[],
    /** Parts that failed as a whole; the devices they may have held fail naming the first of them. */
    readonly failedParts: readonly InvalidAggregates[] = [],
    /** Where a device's rows may be, which decides the devices an unreadable part fails. */
    readonly layout: AggregatesLayout = 'any',
  ) {}

  private byDevice: Map<string, AggregatesPart[]> | undefined;

  /**
   * The timestamp type the window's predictions are written with: the finest unit of the readable parts (a
   * coarser time converts to it exactly) and their time zone (UTC when they disagree; milliseconds in UTC when no
   * part is readable). A window's shards all compute the same, so its prediction files share one schema.
   */
  get tsType(): TimestampType {
    const [first, ...rest] = this.parts;
    if (!first) return MILLISECONDS_UTC;
    let { unit, timezone } = first.tsType;
    for (const p of rest) {
      unit = finerUnit(unit, p.tsType.unit);
      if (p.tsType.timezone !== timezone) timezone = 'UTC';
    }
    return { unit, timezone };
  }

  /** The distinct device ids across the readable parts. Untrusted data: validate before use. */
  devices(): string[] {
    const all = new Set<string>();
    for (const p of this.parts) for (const d of p.devices) all.add(d);
    return [...all];
  }

  /**
   * `device`'s rows of the window with the columns `features` (a model's feature list), or `undefined` when
   * no part holds a row of it (no data; `rows` is 0 when it only has rows outside the window). Throws
   * `InvalidAggregates` naming file, device and field for a device-level problem, and for a device whose rows
   * an unreadable part may hold: every device under the layout `any`, under `device-partitioned` a device no
   * readable part holds. With `arena`, the rows are views into its buffers (a shard's devices share one).
   * `missing` says what a NaN or null feature value does (fail the device, by default).
   */
  device(
    device: string,
    features: readonly string[],
    arena?: RowsArena,
    missing?: MissingValues,
  ): DeviceRows | undefined {
    const holders = this.holdersOf(device);
    if (holders.length === 0) return undefined;
    return gatherDeviceRows(holders, device, features, this.window, arena, missing);
  }

  /** Device id to the parts that hold its rows, in the order of {@link parts} (shared with an equal window). */
  private index(): Map<string, AggregatesPart[]> {
    if (this.byDevice) return this.byDevice;
    const last = lastIndex;
    if (last && last.parts.length === this.parts.length && last.parts.every((p, i) => p === this.parts[i])) {
      return (this.byDevice = last.byDevice);
    }
    const byDevice = new Map<string, AggregatesPart[]>();
    for (const p of this.parts) {
      for (const d of p.devices) {
        const holders = byDevice.get(d);
        if (holders) holders.push(p);
        else byDevice.set(d, [p]);
      }
    }
    lastIndex = { parts: this.parts, byDevice };
    return (this.byDevice = byDevice);
  }

  /** The readable parts with rows of `device`; throws when the layout says its rows may be elsewhere too. */
  private holdersOf(device: string): readonly AggregatesPart[] {
    const holders: readonly AggregatesPart[] = this.index().get(device) ?? [];
    const failed = this.failedParts[0];
    if (failed && (this.layout === 'any' || holders.length === 0)) {
      const others = this.failedParts.length > 1 ? ` (and ${this.failedParts.length - 1} more unreadable parts)` : '';
      const where =
        this.layout === 'any'
          ? 'so the rows of this device may be missing'
          : 'and no readable part holds rows of this device, so they may be in it';
      throw new InvalidAggregates(
        `cannot be read as a whole${others}, ${where}: ${failed.message}`,
        { file: failed.file, device, field: failed.field },
        { cause: failed },
      );
    }
    if (holders.length > 1 && this.layout === 'device-partitioned') {
      const [a, b] = holders as [AggregatesPart, AggregatesPart];
      throw new InvalidAggregates(
        `rows of this device are also in ${a.file}, but the window's aggregates layout is device-partitioned ` +
          `(all rows of a device in one part)`,
        { file: b.file, device, field: DEVICE_COLUMN },
      );
    }
    return holders;
  }
}
