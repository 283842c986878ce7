/**
 * Predictions as Parquet, the format query engines (DuckDB, Spark, Athena, Trino) read without an extension:
 * the same columns and types as the Arrow IPC output, written by the Rust `parquet` crate (Apache Arrow's own
 * implementation, compiled to WebAssembly as the npm package parquet-wasm) with ZSTD pages and column
 * statistics. The WebAssembly module (a few MB) is loaded on first use only, so runs that write Arrow IPC never
 * pay for it.
 */
/** The 4 bytes every Parquet file starts (and ends) with. */
const PARQUET_MAGIC = [0x50, 0x41, 0x52, 0x31]; // "PAR1"

/** Whether `bytes` are a Parquet file (by its leading magic). */
export function isParquet(bytes: Uint8Array): boolean {
  return bytes.length >= 8 && PARQUET_MAGIC.every((b, i) => bytes[i] === b);
}

/** Writes an Arrow IPC stream (see predictions.ts) as Parquet with ZSTD pages; schema and types are kept. */
export async function streamToParquet(stream: Uint8Array): Promise<Uint8Array> {
  const parquet = await import('parquet-wasm');
  const props = new parquet.WriterPropertiesBuilder()
    .setCompression(parquet.Compression.ZSTD)
    .setCreatedBy('fleetscore')
    .build();
  return parquet.writeParquet(parquet.Table.fromIPCStream(stream), props);
}

/** Reads a Parquet file back as Arrow IPC (stream format), with the Arrow schema it was written with. */
export async function parquetToIpc(bytes: Uint8Array): Promise<Uint8Array> {
  const parquet = await import('parquet-wasm');
  return parquet.readParquet(bytes).intoIPCStream();
}
