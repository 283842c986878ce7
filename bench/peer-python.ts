/**
 * The Python the peer benchmark runs with: a project-local venv (.tools/py-bench, git-ignored) with pinned
 * scikit-learn, numpy, pyarrow and onnx, created on first use from PyPI.
 */
import { ensurePythonVenv } from '../test/support/python-venv';

const PACKAGES = ['scikit-learn==1.9.1', 'numpy==2.4.6', 'pyarrow==21.0.0', 'onnx==1.23.2'];

/** The venv's python, created and filled if missing. */
export function ensurePeerPython(): Promise<string> {
  return ensurePythonVenv('py-bench', PACKAGES);
}
