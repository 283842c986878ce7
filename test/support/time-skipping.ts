/**
 * Temporal's time-skipping test server for workflow tests of timer logic (pool wait, input wait): timers and
 * activity timeouts fire as soon as nothing else can happen, so a 45-minute limit takes milliseconds, with mocked
 * activities. The server is the Java test server from Maven Central (`io.temporal:temporal-test-server`, run with
 * the machine's Java), since the SDK's own download of its native build needs GitHub. The launcher comes from
 * `FLEETSCORE_TEST_SERVER`, else `.tools/temporal-test-server/run`, and is built (with `mvn`) on first use.
 */
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { chmod, mkdir, mkdtemp, rename, rm, writeFile } from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';
import { TestWorkflowEnvironment } from '@temporalio/testing';
import { loadConfig } from '../../lib/config';
import { installRuntime } from '../../lib/temporal/runtime';
import { addSearchAttributes } from '../../lib/temporal/search-attributes';
import { withLock } from './tools-lock';

/** The test server's Maven coordinates (pinned). */
export const TEST_SERVER_ARTIFACT = 'io.temporal:temporal-test-server:1.31.0';

const DEFAULT_LAUNCHER = resolve(__dirname, '../../.tools/temporal-test-server/run');

/**
 * Starts a time-skipping test environment on the Java test server (quiet worker runtime, as every test), with
 * fleetscore's search attributes registered: the test server refuses a workflow that sets an unknown one.
 */
export async function startTimeSkipping(): Promise<TestWorkflowEnvironment> {
  installRuntime({ quiet: true });
  const launcher = await ensureTestServer();
  const env = await TestWorkflowEnvironment.createTimeSkipping({
    server: { executable: { type: 'existing-path', path: launcher } },
  });
  await addSearchAttributes(env.connection, env.namespace ?? 'default');
  return env;
}

/** The launcher, built next to where it belongs when it is not there yet. */
async function ensureTestServer(): Promise<string> {
  const launcher = loadConfig().testServer ?? DEFAULT_LAUNCHER;
  if (existsSync(launcher)) return launcher;
  await withLock(`${launcher}.lock`, async () => {
    if (!existsSync(launcher)) await buildTestServer(launcher); // another worker may have built it meanwhile
  });
  return launcher;
}

async function buildTestServer(launcher: string): Promise<void> {
  const home = dirname(launcher);
  process.stderr.write(`fleetscore tests: fetching ${TEST_SERVER_ARTIFACT} with mvn into ${home} (first run only)\n`);
  await mkdir(home, { recursive: true });
  // Into a private folder, renamed into place: nobody ever runs a half-fetched server.
  const build = await mkdtemp(join(home, 'build-'));
  try {
    const [group, artifact, version] = TEST_SERVER_ARTIFACT.split(':');
    await writeFile(
      join(build, 'pom.xml'),
      `<project xmlns="http://maven.apache.org/POM/4.0.0"><modelVersion>4.0.0</modelVersion>` +
        `<groupId>local</groupId><artifactId>fleetscore-test-server</artifactId><version>1</version>` +
        `<dependencies><dependency><groupId>${group}</groupId><artifactId>${artifact}</artifactId>` +
        `<version>${version}</version></dependency></dependencies></project>\n`,
    );
    await run('mvn', ['-q', '-f', join(build, 'pom.xml'), 'dependency:copy-dependencies', '-DoutputDirectory=lib']);
    await rm(join(home, 'lib'), { recursive: true, force: true });
    await rename(join(build, 'lib'), join(home, 'lib'));
    const script = `#!/bin/sh\n# ${TEST_SERVER_ARTIFACT}: TestServer <port>\nexec java -cp "$(dirname "$0")/lib/*" io.temporal.testserver.TestServer "$@"\n`;
    await writeFile(`${launcher}.tmp`, script);
    await chmod(`${launcher}.tmp`, 0o755);
    await rename(`${launcher}.tmp`, launcher);
  } finally {
    await rm(build, { recursive: true, force: true });
  }
}

function run(command: string, args: string[]): Promise<void> {
  return new Promise((done, fail) => {
    const child = spawn(command, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    let output = '';
    const collect = (chunk: Buffer): void => {
      output = (output + chunk.toString()).slice(-4000);
    };
    child.stdout.on('data', collect);
    child.stderr.on('data', collect);
    child.once('error', (err: NodeJS.ErrnoException) =>
      fail(
        err.code === 'ENOENT'
          ? new Error(`the workflow timer tests need ${command} (and Java) on PATH, or FLEETSCORE_TEST_SERVER`)
          : err,
      ),
    );
    child.once('close', (code) =>
      code === 0 ? done() : fail(new Error(`${command} ${args.join(' ')} failed (exit ${code}):\n${output}`)),
    );
  });
}
