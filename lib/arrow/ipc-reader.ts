/**
 * Reading Arrow IPC bytes (file or stream format) into a table, with the compression codecs the Arrow writers use:
 * pyarrow writes Feather v2 LZ4-frame compressed by default, and ZSTD is the other codec the IPC format allows.
 * apache-arrow decodes compressed bodies through codecs registered in its `compressionRegistry`; fleetscore
 * registers pure-JS decoders (lz4js for LZ4 frames, fzstd for ZSTD), so nothing native or downloaded is needed.
 */
import { compressionRegistry, CompressionType, tableFromIPC, type Table } from 'apache-arrow';
import { decompress as zstdDecompress } from 'fzstd';
import { decompress as lz4Decompress } from 'lz4js';

/**
 * A decompressed buffer apache-arrow can view as any type: a 64-bit column needs its bytes at a multiple of 8,
 * and the decoders may return a view into a larger buffer at any offset.
 */
function aligned(bytes: Uint8Array): Uint8Array {
  return bytes.byteOffset % 8 === 0 ? bytes : bytes.slice();
}

let registered = false;

/** Registers the LZ4-frame and ZSTD decoders with apache-arrow (once per process). */
export function registerIpcCodecs(): void {
  if (registered) return;
  compressionRegistry.set(CompressionType.LZ4_FRAME, { decode: (data) => aligned(lz4Decompress(data)) });
  compressionRegistry.set(CompressionType.ZSTD, { decode: (data) => aligned(zstdDecompress(data)) });
  registered = true;
}

/** Decodes Arrow IPC bytes, uncompressed or with LZ4-frame or ZSTD bodies. Throws what apache-arrow throws. */
export function readIpcTable(bytes: Uint8Array): Table {
  registerIpcCodecs();
  return tableFromIPC(bytes);
}
