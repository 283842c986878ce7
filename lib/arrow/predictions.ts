/**
 * The scorer's output: one file per shard, Arrow IPC or Parquet (the run's `predictionsFormat`), with the columns
 * `device_id` (Utf8), `ts` (Timestamp in the unit and time zone of the window's input, so a prediction joins back
 * to its row exactly), `score` (Float32), `is_anomaly` (Bool) and `model_version` (Utf8), all non-null.
 *
 * `score` is Float32 because the models compute it in float32 (their input and output tensors are float32):
 * Float64 would double the column without adding a digit of information, and the threshold is compared with
 * exactly the value that is stored.
 *
 * Rows are columnar typed arrays plus device runs (device, model version, row count), so a shard of 100k
 * devices x 60 rows is written without a JS object or string per row. The rooms: predictions-columns.ts (the
 * shape), predictions-builder.ts, predictions-encode.ts, predictions-decode.ts, and parquet.ts for Parquet.
 */
export { PredictionsBuilder } from './predictions-builder';
export { InvalidPredictions } from '../shared/errors';
export {
  PREDICTION_COLUMNS,
  predictionRows,
  type PredictionColumns,
  type PredictionRow,
  type PredictionRun,
  type PredictionsFormat,
} from './predictions-columns';
export { decodePredictions, readPredictions } from './predictions-decode';
export { encodePredictions, encodePredictionsAs } from './predictions-encode';
