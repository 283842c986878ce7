/**
 * Which objects under a window's aggregates prefix are its part files, one rule for planning, commit and tools.
 * Every object is a part except those whose name, or a folder on the way to it, starts with `.` or `_` (the
 * convention pyarrow datasets, Spark and Hive share for markers such as `_SUCCESS` and temporary folders such as
 * `_temporary/`). A part is read when its name ends in `.arrow`, `.arrows`, `.feather` or `.ipc` (any case: Arrow
 * IPC file or stream format, the format decides, not the name); any other part is refused by name, so its devices
 * fail naming it instead of silently becoming "no data".
 */

/** The file name endings of Arrow IPC parts (file or stream format; Feather v2 is the IPC file format). */
export const IPC_PART_EXTENSIONS = ['.arrow', '.arrows', '.feather', '.ipc'] as const;

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
  if (IPC_PART_EXTENSIONS.some((ext) => lower.endsWith(ext))) return undefined;
  const read = IPC_PART_EXTENSIONS.join(', ');
  const known = lower.endsWith('.parquet')
    ? 'is Parquet; fleetscore reads Arrow IPC aggregates'
    : 'is not named as an Arrow IPC part';
  return (
    `${known} (${read}), so the rows of its devices cannot be read: write it as Arrow IPC or Feather v2, ` +
    `rename it if it is one, or move it out of the window (names starting with _ or . are ignored)`
  );
}
