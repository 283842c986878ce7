/** Parsing the JSON documents of the model registry (model.json, index.json) from stored bytes. */

/** Decodes UTF-8, refusing malformed bytes; one for every call (a decode without `stream` keeps no state). */
const UTF8 = new TextDecoder('utf-8', { fatal: true });

/** Parses UTF-8 JSON bytes; on failure throws what `fail` makes of the message, so each caller names its file. */
export function parseJsonBytes(bytes: Uint8Array, fail: (message: string, cause: unknown) => Error): unknown {
  try {
    return JSON.parse(UTF8.decode(bytes));
  } catch (err) {
    throw fail(`invalid JSON: ${(err as Error).message}`, err);
  }
}
