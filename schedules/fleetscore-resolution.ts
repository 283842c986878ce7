/**
 * Lets a schedules module anywhere on disk import fleetscore's public API (`fleetscore/schedules`): when the CLI
 * loads such a module, `fleetscore` and `fleetscore/...` resolve to this checkout through its package.json
 * `exports`, as if the module sat inside it, whatever folder the module is in. Uses Node's module resolution hooks
 * (`module.registerHooks`, Node 22.15+ and 24); on older Node, a module outside the checkout cannot import
 * fleetscore, and schedule-file.ts says so.
 */
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
  // Resolving from the package's own package.json uses Node's self-reference: the `exports` map decides.
  const parentURL = pathToFileURL(join(REPO_ROOT, 'package.json')).href;
  registerHooks.call(Module, {
    resolve(specifier, context, next) {
      const ours = specifier === PACKAGE_NAME || specifier.startsWith(`${PACKAGE_NAME}/`);
      return next(specifier, ours ? { ...context, parentURL } : context);
    },
  });
  registered = true;
  return true;
}
