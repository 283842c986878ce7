/**
 * Lets a schedules module anywhere on disk import fleetscore's public API (`fleetscore/schedules`): when the CLI
 * loads such a module, `fleetscore/...` resolves to the file this checkout's package.json `exports` names for it,
 * whatever folder the module is in. Uses Node's module resolution hooks
 * (`module.registerHooks`, Node 22.15+ and 24); on older Node, a module outside the checkout cannot import
 * fleetscore, and schedule-file.ts says so.
 */
import { readFileSync } from 'node:fs';
import Module from 'node:module';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { REPO_ROOT } from '../lib/temporal/temporal-cli';

type ResolveContext = { parentURL?: string };
type ResolveResult = { url: string; format?: string | null; shortCircuit?: boolean };
type RegisterHooks = (hooks: {
  resolve(
    specifier: string,
    context: ResolveContext,
    next: (specifier: string, context: ResolveContext) => ResolveResult,
  ): ResolveResult;
}) => unknown;

/** The package name schedules modules import fleetscore's API by. */
export const PACKAGE_NAME = 'fleetscore';

let registered = false;

/**
 * Makes `fleetscore/...` resolvable from any module loaded after this call (once per process). Returns false where
 * Node has no resolution hooks (before 22.15).
 */
export function resolveFleetscoreFromAnywhere(): boolean {
  if (registered) return true;
  const registerHooks = (Module as unknown as { registerHooks?: RegisterHooks }).registerHooks;
  if (typeof registerHooks !== 'function') return false;
  const targets = exportedPaths();
  registerHooks.call(Module, {
    resolve(specifier, context, next) {
      const ours = specifier === PACKAGE_NAME || specifier.startsWith(`${PACKAGE_NAME}/`);
      const path = ours ? targets.get(`.${specifier.slice(PACKAGE_NAME.length)}`) : undefined;
      // Anything else, and a part the package does not export, resolves as Node would (and fails by name).
      return path ? { url: pathToFileURL(path).href, shortCircuit: true } : next(specifier, context);
    },
  });
  registered = true;
  return true;
}

/** The package's `exports` (subpath to file), from its package.json: what a module outside may import. */
function exportedPaths(): Map<string, string> {
  const manifest = JSON.parse(readFileSync(join(REPO_ROOT, 'package.json'), 'utf8')) as { exports?: unknown };
  const exports = manifest.exports && typeof manifest.exports === 'object' ? manifest.exports : {};
  return new Map(
    Object.entries(exports)
      .filter((entry): entry is [string, string] => typeof entry[1] === 'string')
      .map(([subpath, target]) => [subpath, join(REPO_ROOT, target)]),
  );
}
