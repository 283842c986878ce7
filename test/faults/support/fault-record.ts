/**
 * What a fault test measures and records: the rows a run committed, their comparison with what the run must have
 * committed, and the figures of each injected fault, written for the suite's reporter to print as one table.
 */
import { mkdir, writeFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import type { Manifest } from '../../../lib/scoring/manifest';

/** Where each fault test records its figures; the reporter prints them as one table. */
export const FAULT_RESULTS_DIR = join(resolve(__dirname, '../../..'), '.fleetscore', 'fault-results');

/** One committed prediction, reduced to what must be identical between runs. */
export type RowValue = string;

/** What a run committed, keyed by `device@ts`, with how often each key occurred. */
export interface CommittedRows {
  manifest: Manifest;
  rows: Map<string, RowValue>;
  occurrences: Map<string, number>;
}

/** The outcome of comparing a run's commit with the fault-free reference. */
export interface Comparison {
  lost: number;
  duplicated: number;
  unexpected: number;
  changed: number;
  outcomesDiffer: number;
}

/** The figures of one injected fault, printed by the suite's reporter. */
export interface FaultRecord {
  fault: string;
  point: string;
  injected: number;
  runsCompleted: number;
  runs: number;
  lost: number;
  duplicated: number;
  seconds: number;
}

/** What a commit must equal the reference by: nothing lost, duplicated, unexpected, changed or decided otherwise. */
export const CLEAN: Comparison = { lost: 0, duplicated: 0, unexpected: 0, changed: 0, outcomesDiffer: 0 };

/**
 * Compares a commit with what it must hold, row for row, and (unless `outcomes` is false: windows of other
 * lengths) device outcome for device outcome.
 */
export function compareRows(
  reference: CommittedRows,
  actual: CommittedRows,
  { outcomes = true }: { outcomes?: boolean } = {},
): Comparison {
  let lost = 0;
  let changed = 0;
  for (const [key, value] of reference.rows) {
    const got = actual.rows.get(key);
    if (got === undefined) lost++;
    else if (got !== value) changed++;
  }
  let duplicated = 0;
  for (const n of actual.occurrences.values()) duplicated += n - 1;
  const unexpected = [...actual.rows.keys()].filter((k) => !reference.rows.has(k)).length;
  if (!outcomes) return { lost, duplicated, unexpected, changed, outcomesDiffer: 0 };
  const outcome = (m: Manifest, d: string) => JSON.stringify(m.devices[d] ?? null);
  const devices = new Set([...Object.keys(reference.manifest.devices), ...Object.keys(actual.manifest.devices)]);
  const outcomesDiffer = [...devices].filter(
    (d) => outcome(reference.manifest, d) !== outcome(actual.manifest, d),
  ).length;
  return { lost, duplicated, unexpected, changed, outcomesDiffer };
}

/** Appends one fault's figures to the results folder the reporter reads. */
export async function recordFault(record: FaultRecord): Promise<void> {
  await mkdir(FAULT_RESULTS_DIR, { recursive: true });
  const name = `${record.fault}-${record.point}`.replace(/[^A-Za-z0-9_-]+/g, '_');
  await writeFile(join(FAULT_RESULTS_DIR, `${name}.json`), JSON.stringify(record));
}
