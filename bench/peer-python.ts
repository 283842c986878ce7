/**
 * The Python the peer benchmark runs with: a project-local venv (.tools/py-bench, git-ignored) with pinned
 * scikit-learn, numpy, pyarrow and onnx, created on first use from PyPI.
 */
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { promisify } from 'node:util';

const exec = promisify(execFile);
const VENV = resolve(__dirname, '..', '.tools', 'py-bench');
const PACKAGES = ['scikit-learn==1.9.1', 'numpy==2.4.6', 'pyarrow==21.0.0', 'onnx==1.23.2'];

/** The venv's python, created and filled if missing. */
export async function ensurePeerPython(): Promise<string> {
  const python = join(VENV, 'bin', 'python');
  if (!existsSync(python)) {
    process.stderr.write(`bench: creating ${VENV} with ${PACKAGES.join(' ')}\n`);
    await exec('python3', ['-m', 'venv', VENV]);
    await exec(python, ['-m', 'pip', 'install', '--quiet', ...PACKAGES], { maxBuffer: 1 << 24 });
  }
  return python;
}
