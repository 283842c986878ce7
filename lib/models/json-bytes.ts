/** Parsing the JSON documents of the model registry (model.json, index.json) from stored bytes. */

/** Parses UTF-8 JSON bytes; on failure throws what `fail` makes of the message, so each caller names its file. */
export function parseJsonBytes(bytes: Uint8Array, fail: (message: string, cause: unknown) => Error): unknown {
  try {
    return JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(bytes));
  } catch (err) {
    throw fail(`invalid JSON: ${(err as Error).message}`, err);
  }
}
