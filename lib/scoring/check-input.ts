import { listWindowInput } from '../arrow/window-input';
import type { InputCheck, InputCheckRequest } from '../shared/run-types';
import { parseWindow } from '../shared/window';
import type { ObjectStore } from '../store/object-store';

/**
 * Whether a window's input has arrived: every hourly folder it spans holds at least one part, or, when the run asks
 * for it, the producer's completion marker. Lists the folders only; the workflow waits between looks on a durable
 * timer, so no worker slot is held while the input is late.
 */
export async function checkInput(store: ObjectStore, req: InputCheckRequest): Promise<InputCheck> {
  const input = await listWindowInput(store, parseWindow(req.window));
  const root = store.uri.endsWith('/') ? store.uri : `${store.uri}/`;
  const missing = input.hours
    .filter((h) => (req.marker ? h.marker === undefined : h.parts.length === 0))
    .map((h) => `${root}${h.prefix}`);
  return { ready: missing.length === 0, parts: input.parts.length, missing };
}
