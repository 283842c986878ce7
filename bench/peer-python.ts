/**
 * The Python the peer benchmark, the bench's fleet generator and the sklearn fixtures run with: a project-local
 * venv (.cache/py-bench, git-ignored) with pinned scikit-learn, skl2onnx, onnxruntime, numpy, pyarrow, onnx and
 * pandas (a fixture's pipeline is fitted on a DataFrame),
 * created on first use from PyPI and made again when the pins change.
 */
import { resolve } from 'node:path';
import { ensurePythonVenv } from '../test/support/python-venv';

const VENV = resolve(__dirname, '..', '.cache', 'py-bench');
/** The versions the sklearn fixtures were made with (scripts/make-sklearn-fixtures.py). */
export const PEER_PACKAGES = [
  'scikit-learn==1.9.1',
  'skl2onnx==1.20.0',
  'onnxruntime==1.31.1',
  'numpy==2.4.6',
  'pyarrow==21.0.0',
  'onnx==1.23.2',
  'pandas==3.1.1',
];

/** The venv's python, created and filled if missing or made with other pins. */
export function ensurePeerPython(): Promise<string> {
  return ensurePythonVenv(VENV, PEER_PACKAGES);
}
