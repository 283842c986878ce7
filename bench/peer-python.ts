/**
 * The Python the benchmark runs with: a project-local venv (.cache/py-bench, git-ignored) with pinned
 * scikit-learn, skl2onnx, onnxruntime, numpy, pyarrow and onnx, created on first use from PyPI. It trains and
 * exports the benchmark's fleets (bench/make_fleet.py), runs the peer loop (bench/peer.py), and the tests that
 * compare the fast path with scikit-learn use it too. A change to the pins makes a new venv.
 */
import { execFile } from 'node:child_process';
import { existsSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { promisify } from 'node:util';

const exec = promisify(execFile);
const VENV = resolve(__dirname, '..', '.cache', 'py-bench');
/** The versions the sklearn fixtures were made with (scripts/make-sklearn-fixtures.py). */
export const PEER_PACKAGES = [
  'scikit-learn==1.9.1',
  'skl2onnx==1.20.0',
  'onnxruntime==1.31.1',
  'numpy==2.4.6',
  'pyarrow==21.0.0',
  'onnx==1.23.2',
];

/** The venv's python, created and filled if missing or made with other pins. */
export async function ensurePeerPython(): Promise<string> {
  const python = join(VENV, 'bin', 'python');
  const stamp = join(VENV, 'fleetscore-packages.txt');
  const wanted = PEER_PACKAGES.join('\n');
  if (existsSync(python) && existsSync(stamp) && readFileSync(stamp, 'utf8') === wanted) return python;
  process.stderr.write(`bench: creating ${VENV} with ${PEER_PACKAGES.join(' ')}\n`);
  rmSync(VENV, { recursive: true, force: true });
  await exec('python3', ['-m', 'venv', VENV]);
  await exec(python, ['-m', 'pip', 'install', '--quiet', ...PEER_PACKAGES], { maxBuffer: 1 << 24 });
  writeFileSync(stamp, wanted);
  return python;
}
