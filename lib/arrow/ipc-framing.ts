/**
 * The framing checks of a part. apache-arrow's IPC reader is lenient about them: a file-format part must end with the
 * magic (its footer is written last), and a stream-format part must end with the end-of-stream marker, because a
 * stream cut at a message boundary otherwise reads as a shorter, valid stream and rows would vanish silently. A
 * Parquet part must end with its footer's magic, so one cut short is refused as such.
 */
import { InvalidAggregates } from '../shared/errors';
import { isParquet, PARQUET_MAGIC } from './parquet';

const FILE_MAGIC = [0x41, 0x52, 0x52, 0x4f, 0x57, 0x31]; // "ARROW1"
/** Formats that are not Arrow IPC but turn up under its names, each told apart by its first bytes. */
const OTHER_FORMATS: { magic: number[]; what: string }[] = [
  {
    magic: [0x46, 0x45, 0x41, 0x31], // "FEA1"
    what: "Feather v1 (the format before Arrow IPC); write Feather v2 (pyarrow's default) or Arrow IPC",
  },
];

function startsWithMagic(bytes: Uint8Array, at: number, magic: readonly number[] = FILE_MAGIC): boolean {
  if (at < 0 || at + magic.length > bytes.length) return false;
  return magic.every((b, i) => bytes[at + i] === b);
}

/** Whether `bytes` start as an Arrow IPC file does (its magic); a stream starts with a message instead. */
export function isIpcFile(bytes: Uint8Array): boolean {
  return startsWithMagic(bytes, 0);
}

/** Throws `InvalidAggregates` naming `file` when `bytes` are empty, or a truncated IPC file, stream or Parquet file. */
export function checkFraming(file: string, bytes: Uint8Array): void {
  if (bytes.length === 0) throw new InvalidAggregates('is empty, expected an Arrow IPC file or stream', { file });
  const other = OTHER_FORMATS.find((f) => startsWithMagic(bytes, 0, f.magic));
  if (other) throw new InvalidAggregates(`is ${other.what}`, { file });
  if (isParquet(bytes)) {
    if (!startsWithMagic(bytes, bytes.length - PARQUET_MAGIC.length, PARQUET_MAGIC)) {
      throw new InvalidAggregates('is a truncated Parquet file (no footer magic at the end)', { file });
    }
    return;
  }
  if (isIpcFile(bytes)) {
    if (!startsWithMagic(bytes, bytes.length - FILE_MAGIC.length)) {
      throw new InvalidAggregates('is a truncated Arrow IPC file (no footer magic at the end)', { file });
    }
    return;
  }
  const n = bytes.length;
  const u32 = (at: number) =>
    (bytes[at]! | (bytes[at + 1]! << 8) | (bytes[at + 2]! << 16) | (bytes[at + 3]! << 24)) >>> 0;
  const eos = n >= 8 && u32(n - 8) === 0xffffffff && u32(n - 4) === 0;
  const legacyEos = n >= 4 && u32(n - 4) === 0; // pre-0.15 streams end with a bare zero length
  if (!eos && !legacyEos) {
    throw new InvalidAggregates('is not a complete Arrow IPC stream (no end-of-stream marker) or file', { file });
  }
}
