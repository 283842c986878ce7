/** A demo window's ground truth: which (device, ts) rows were injected as anomalies, stored beside the data. */
import { z } from 'zod';
import { keys } from '../shared/keys';
import type { ObjectStore } from '../store/object-store';

/** The schema tag of a ground-truth file. */
export const TRUTH_SCHEMA = 'fleetscore.demo-truth/v1';

/** One injected anomaly in the ground truth. */
export const demoAnomalySchema = z.object({
  device: z.string(),
  /** Epoch milliseconds of the row. */
  ts: z.number(),
  /** The shifted sensor. */
  sensor: z.string(),
  /** The shift in standard deviations of that sensor (negative for a downward shift). */
  sigmas: z.number(),
});

/** `demo/ground-truth/window=<id>.json`: the anomalous (device, ts) rows of one demo window. */
export const demoTruthSchema = z.object({
  schema: z.literal(TRUTH_SCHEMA),
  window: z.string(),
  seed: z.number(),
  devices: z.number().int(),
  rows: z.number().int(),
  anomalies: z.array(demoAnomalySchema),
});

/** A validated ground-truth file. */
export type DemoGroundTruth = z.infer<typeof demoTruthSchema>;

/** Reads a demo window's ground truth, or `undefined` when the window was not seeded. */
export async function readDemoTruth(store: ObjectStore, windowId: string): Promise<DemoGroundTruth | undefined> {
  const bytes = await store.tryGet(keys.demoTruth(windowId));
  if (bytes === undefined) return undefined;
  return demoTruthSchema.parse(JSON.parse(Buffer.from(bytes).toString('utf8')));
}
