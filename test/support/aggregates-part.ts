/** Arrow aggregates parts written by tests, row by row. */
import { Bool, Float32, Table, tableToIPC, TimestampMillisecond, Utf8, vectorFromArray } from 'apache-arrow';
import type { Window } from '../../lib/shared/window';

/** One device's rows: the minutes of the window they fall on, and any column values given (else made up). */
export type PartRows = { device: string; minutes: number[]; values?: Record<string, (number | null)[]> }[];

/**
 * An Arrow aggregates part with `device_id`, `ts` and the given columns, one row per listed minute of the window;
 * a column a device gives no values for gets small made-up ones.
 */
export function aggregatesPart(window: Window, rows: PartRows, columns: Record<string, 'float' | 'bool'>): Uint8Array {
  const device: string[] = [];
  const ts: number[] = [];
  const values: Record<string, (number | null)[]> = Object.fromEntries(Object.keys(columns).map((c) => [c, []]));
  for (const r of rows) {
    r.minutes.forEach((m, i) => {
      device.push(r.device);
      ts.push(window.startMs + m * 60_000);
      for (const c of Object.keys(columns)) {
        const given = r.values?.[c];
        values[c]!.push(given ? given[i]! : 40 + ((i * 7) % 5));
      }
    });
  }
  const features = Object.entries(columns).map(([c, t]) => [
    c,
    t === 'bool'
      ? vectorFromArray(
          values[c]!.map((v) => v !== 0),
          new Bool(),
        )
      : vectorFromArray(values[c]!, new Float32()),
  ]);
  return tableToIPC(
    new Table({
      device_id: vectorFromArray(device, new Utf8()),
      ts: vectorFromArray(ts, new TimestampMillisecond()),
      ...Object.fromEntries(features),
    }),
    'file',
  );
}
