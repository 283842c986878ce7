/**
 * Project-local Pythons for tests and the benchmark: a venv in a git-ignored folder (.tools/, .cache/) with pinned
 * packages from PyPI, created on first use under a lock (parallel jest workers) and reused while its pins are
 * unchanged, so a cached run costs one file read. CI creates it on its first test run.
 */
import { execFile } from 'node:child_process';
import { readFile, rm, writeFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { promisify } from 'node:util';
import { withLock } from './tools-lock';

const exec = promisify(execFile);
/** Where the interoperability tests' venv lives. */
export const INTEROP_VENV = resolve(__dirname, '..', '..', '.tools', 'py-interop');

/** The pins the interoperability tests check fleetscore against: what pyarrow, pandas and DuckDB write and read. */
export const INTEROP_PACKAGES = ['pyarrow==26.0.1', 'pandas==3.1.1', 'numpy==2.4.6', 'duckdb==2.0.1'] as const;

/** The python of the venv at `venv` holding exactly `packages`, created (or recreated) when it does not. */
export async function ensurePythonVenv(venv: string, packages: readonly string[]): Promise<string> {
  const python = join(venv, 'bin', 'python');
  const stamp = join(venv, 'fleetscore-packages.txt');
  const wanted = `${[...packages].sort().join('\n')}\n`;
  const current = () => readFile(stamp, 'utf8').catch(() => '');
  if ((await current()) === wanted) return python;
  await withLock(`${venv}.lock`, async () => {
    if ((await current()) === wanted) return; // another worker made it while we waited
    process.stderr.write(`fleetscore: creating ${venv} with ${packages.join(' ')} (first run only)\n`);
    await rm(venv, { recursive: true, force: true });
    await exec('python3', ['-m', 'venv', venv]);
    await exec(python, ['-m', 'pip', 'install', '--quiet', '--disable-pip-version-check', ...packages], {
      maxBuffer: 1 << 24,
    });
    await writeFile(stamp, wanted);
  });
  return python;
}
