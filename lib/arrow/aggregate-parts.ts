/**
 * Which objects under a window's aggregates prefix are its part files, one rule for planning, commit and tools.
 * Every object is a part except those whose name, or a folder on the way to it, starts with `.` or `_` (the
 * convention pyarrow datasets, Spark and Hive share for markers such as `_SUCCESS` and temporary folders such as
 * `_temporary/`). A part is read when its name ends in `.arrow`, `.arrows`, `.feather`, `.ipc` or `.parquet` (any
 * case; the bytes decide between Arrow IPC file, stream and Parquet, not the name); any other part is refused by
 * name, so its devices fail naming it instead of silently becoming "no data".
 */

/** The file name endings of parts: Arrow IPC (file or stream format; Feather v2 is the IPC file format), Parquet. */
export const PART_EXTENSIONS = ['.arrow', '.arrows', '.feather', '.ipc', '.parquet'] as const;

/**
 * Whether `key`, listed under the input folder `prefix`, is an aggregates part: neither its name nor a folder on
 * the way to it starts with `.` or `_`.
 */
export function isAggregatesPart(prefix: string, key: string): boolean {
  return key
    .slice(prefix.length)
    .split('/')
    .every((segment) => !segment.startsWith('.') && !segment.startsWith('_'));
}

/**
 * Why a listed part cannot be read, judged by its name alone (before its bytes are fetched); `undefined` for a
 * name that says Arrow IPC.
 */
export function refusedPartName(key: string): string | undefined {
  const lower = key.toLowerCase();
  if (PART_EXTENSIONS.some((ext) => lower.endsWith(ext))) return undefined;
  return (
    `is not named as an Arrow IPC or Parquet part (${PART_EXTENSIONS.join(', ')}), so the rows of its devices ` +
    `cannot be read: write it as Arrow IPC, Feather v2 or Parquet, rename it if it is one, or move it out of the ` +
    `window (names starting with _ or . are ignored)`
  );
}
