/** The shape of predictions shared by their encoder, decoder and builder: columns, device runs, rows, errors. */
import type { PredictionsFormat } from '../shared/names';
import type { TimestampType } from './timestamps';

export type { PredictionsFormat };

/** Column names of a predictions file. */
export const PREDICTION_COLUMNS = ['device_id', 'ts', 'score', 'is_anomaly', 'model_version'] as const;

/** Consecutive rows of one device, scored by one model version. */
export interface PredictionRun {
  device: string;
  modelVersion: string;
  rows: number;
}

/** A predictions table as columns; `runs` cover the rows in order and their `rows` sum to the column lengths. */
export interface PredictionColumns {
  runs: PredictionRun[];
  /** Whole epoch milliseconds. */
  ts: Float64Array;
  score: Float32Array;
  /** 1 for an anomalous row, 0 otherwise. */
  isAnomaly: Uint8Array;
  /** Nanoseconds within each row's millisecond; present for a sub-millisecond `tsType` (absent: all 0). */
  tsNanos?: Int32Array;
  /** The `ts` column's unit and time zone; absent means milliseconds in UTC. */
  tsType?: TimestampType;
}

/** One prediction as an object: for printing and tests, not for the hot path. */
export interface PredictionRow {
  device: string;
  modelVersion: string;
  /** Whole epoch milliseconds. */
  ts: number;
  /** Nanoseconds within the millisecond; only for predictions of a sub-millisecond unit. */
  tsNanos?: number;
  score: number;
  isAnomaly: boolean;
}

/** Iterates the rows of `columns` as objects, in order. */
export function* predictionRows(columns: PredictionColumns): Generator<PredictionRow> {
  let row = 0;
  for (const run of columns.runs) {
    for (let j = 0; j < run.rows; j++, row++) {
      yield {
        device: run.device,
        modelVersion: run.modelVersion,
        ts: columns.ts[row]!,
        ...(columns.tsNanos ? { tsNanos: columns.tsNanos[row]! } : {}),
        score: columns.score[row]!,
        isAnomaly: columns.isAnomaly[row] === 1,
      };
    }
  }
}
