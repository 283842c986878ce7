/**
 * Starts a real S3-compatible server (MinIO) for integration tests: its own port, data folder and random
 * credentials, so tests exercise the same SDK calls, signatures and error codes as production.
 */
import { loadConfig } from '../../lib/config';
import { CreateBucketCommand, ListBucketsCommand, S3Client } from '@aws-sdk/client-s3';
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, rmSync } from 'node:fs';
import { mkdir, mkdtemp, rename, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { freePort } from './free-port';
import { withLock } from './tools-lock';

/** The MinIO module and the exact version built when no binary is present (pinned: `@latest` moves). */
export const MINIO_MODULE = 'github.com/minio/minio';
/** Pinned MinIO version, as `go version -m` reports it for the binary the tests were written against. */
export const MINIO_VERSION = 'v0.0.0-20260212201848-7aac2a2c5b7c';

const TOOLS = resolve(__dirname, '../../.tools');
const REGION = 'us-east-1';

/** A running test server and everything a store or a child process needs to reach it. */
export interface S3TestServer {
  /** `http://127.0.0.1:<port>` */
  endpoint: string;
  /** A fresh, empty bucket. */
  bucket: string;
  /** The server's data folder: a bucket's objects are under `<dataDir>/<bucket>/<key>/`. */
  dataDir: string;
  accessKeyId: string;
  secretAccessKey: string;
  /** `s3://<bucket>?endpoint=…&forcePathStyle=true&region=…`: opens the bucket once credentials are in the environment. */
  storeUri: string;
  /** Credentials, region and endpoint as environment variables, for `process.env` or a spawned CLI. */
  env: Record<string, string>;
  /** Kills the server and deletes its data folder. Safe to call twice. */
  stop(): Promise<void>;
  /** Kills the server process (SIGKILL, as an outage would) but keeps its data folder, port and credentials. */
  kill(): Promise<void>;
  /** Starts the server again on the same port and data folder after `kill`, and waits until it answers. */
  restart(): Promise<void>;
}

/**
 * Starts MinIO on 127.0.0.1 with a temporary data folder, waits until it answers S3 requests and creates a
 * bucket. The binary comes from `FLEETSCORE_S3_SERVER`, else `.tools/bin/minio`, which is built on first use.
 */
export async function startS3Server(): Promise<S3TestServer> {
  const bin = await ensureMinio();
  for (let attempt = 1; ; attempt++) {
    try {
      return await startOnce(bin);
    } catch (err) {
      // A free port can be taken between probing it and MinIO binding it (parallel jest workers): retry.
      if (!(err instanceof ServerExited) || attempt === 3) throw err;
    }
  }
}

class ServerExited extends Error {}

async function startOnce(bin: string): Promise<S3TestServer> {
  const dir = await mkdtemp(join(tmpdir(), 'fleetscore-s3-'));
  const port = await freePort();
  const endpoint = `http://127.0.0.1:${port}`;
  const accessKeyId = `fs${randomBytes(8).toString('hex')}`;
  const secretAccessKey = randomBytes(24).toString('base64url');
  const bucket = `fleetscore-test-${randomBytes(4).toString('hex')}`;

  let output = '';
  const collect = (chunk: Buffer): void => {
    output = (output + chunk.toString()).slice(-4000);
  };
  const launch = (): { child: ChildProcess; exited: Promise<void> } => {
    const child = spawn(
      bin,
      ['server', '--quiet', '--address', `127.0.0.1:${port}`, '--certs-dir', join(dir, 'certs'), join(dir, 'data')],
      {
        env: {
          ...process.env,
          MINIO_ROOT_USER: accessKeyId,
          MINIO_ROOT_PASSWORD: secretAccessKey,
          MINIO_BROWSER: 'off',
          MINIO_UPDATE: 'off',
        },
        // Own process group, so stop() can signal the server and anything it starts.
        detached: true,
        stdio: ['ignore', 'pipe', 'pipe'],
      },
    );
    child.stdout?.on('data', collect);
    child.stderr?.on('data', collect);
    return { child, exited: new Promise<void>((done) => child.once('exit', () => done())) };
  };
  let { child, exited } = launch();
  // A process that exits before stop() is done (jest's forced exit, a bench stopped by a signal) leaves neither
  // the server nor its data behind.
  const killOnExit = (): void => {
    killGroup(child, 'SIGKILL');
    rmSync(dir, { recursive: true, force: true, maxRetries: 5 });
  };
  process.once('exit', killOnExit);

  let stopped = false;
  const stop = async (): Promise<void> => {
    if (stopped) return;
    stopped = true;
    if (isRunning(child)) {
      killGroup(child, 'SIGTERM');
      const timer = setTimeout(() => killGroup(child, 'SIGKILL'), 10_000);
      await exited;
      clearTimeout(timer);
    }
    // Only now: a process that exits while the server still stops (a bench stopped by a signal) kills it on exit.
    process.off('exit', killOnExit);
    await rm(dir, { recursive: true, force: true });
  };

  const client = new S3Client({
    endpoint,
    region: REGION,
    forcePathStyle: true,
    credentials: { accessKeyId, secretAccessKey },
    maxAttempts: 1,
  });
  const ready = async (): Promise<void> => {
    const deadline = Date.now() + 60_000;
    for (;;) {
      if (!isRunning(child)) throw new ServerExited(`MinIO exited during start-up:\n${output}`);
      try {
        await client.send(new ListBucketsCommand({}));
        return;
      } catch (err) {
        if (Date.now() > deadline) throw new Error(`MinIO did not become ready in 60 s:\n${output}`, { cause: err });
        await sleep(200);
      }
    }
  };
  try {
    await ready();
    await client.send(new CreateBucketCommand({ Bucket: bucket }));
  } catch (err) {
    client.destroy();
    await stop();
    throw err;
  }
  const kill = async (): Promise<void> => {
    if (!isRunning(child)) return;
    killGroup(child, 'SIGKILL');
    await exited;
  };
  const restart = async (): Promise<void> => {
    if (stopped) throw new Error('the S3 test server was stopped for good');
    await kill();
    ({ child, exited } = launch());
    await ready();
  };

  return {
    endpoint,
    bucket,
    dataDir: join(dir, 'data'),
    accessKeyId,
    secretAccessKey,
    storeUri: `s3://${bucket}?endpoint=${endpoint}&forcePathStyle=true&region=${REGION}`,
    env: {
      AWS_ACCESS_KEY_ID: accessKeyId,
      AWS_SECRET_ACCESS_KEY: secretAccessKey,
      AWS_REGION: REGION,
      FLEETSCORE_S3_ENDPOINT: endpoint,
      FLEETSCORE_S3_FORCE_PATH_STYLE: 'true',
    },
    async stop() {
      client.destroy();
      await stop();
    },
    kill,
    restart,
  };
}

/**
 * One S3 test server for the calling test file: started before its tests (building MinIO on the first run) with
 * its credentials and endpoint in `process.env`, as a deployed worker's environment has them; stopped, and the
 * environment restored, after them. Returns the running server.
 */
export function useS3Server(): () => S3TestServer {
  let server: S3TestServer | undefined;
  const saved: Record<string, string | undefined> = {};
  beforeAll(async () => {
    server = await startS3Server();
    for (const [name, value] of Object.entries(server.env)) {
      saved[name] = process.env[name];
      process.env[name] = value;
    }
  }, 15 * 60_000);
  afterAll(async () => {
    for (const [name, value] of Object.entries(saved)) {
      if (value === undefined) delete process.env[name];
      else process.env[name] = value;
    }
    await server?.stop();
  });
  return () => {
    if (!server) throw new Error('the S3 test server is not running (useS3Server starts it before the tests)');
    return server;
  };
}

/** The MinIO binary: the one `FLEETSCORE_S3_SERVER` names, else `.tools/bin/minio`, built once under a lock. */
async function ensureMinio(): Promise<string> {
  const fromEnv = loadConfig().s3Server;
  if (fromEnv) {
    if (!existsSync(fromEnv)) throw new Error(`FLEETSCORE_S3_SERVER=${fromEnv}: no such file`);
    return fromEnv;
  }
  const bin = join(TOOLS, 'bin', 'minio');
  if (existsSync(bin)) return bin;
  await withLock(join(TOOLS, 'minio-build.lock'), async () => {
    if (!existsSync(bin)) await buildMinio(bin); // another worker may have built it while we waited
  });
  return bin;
}

async function buildMinio(bin: string): Promise<void> {
  process.stderr.write(
    `fleetscore tests: building MinIO ${MINIO_VERSION} into .tools/bin with go install (first run only, takes a few minutes)\n`,
  );
  // Build into a private folder and rename, so nobody ever runs a half-written binary.
  const gobin = await mkdtemp(join(TOOLS, 'build-'));
  try {
    const child = spawn('go', ['install', `${MINIO_MODULE}@${MINIO_VERSION}`], {
      env: { ...process.env, GOBIN: gobin },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let output = '';
    const collect = (chunk: Buffer): void => {
      output = (output + chunk.toString()).slice(-4000);
    };
    child.stdout.on('data', collect);
    child.stderr.on('data', collect);
    const code = await new Promise<number | null>((done, fail) => {
      child.once('error', fail);
      child.once('close', done);
    }).catch((err: NodeJS.ErrnoException) => {
      if (err.code === 'ENOENT') {
        throw new Error(
          'building MinIO for the S3 tests needs Go on PATH; or set FLEETSCORE_S3_SERVER to a minio binary',
        );
      }
      throw err;
    });
    if (code !== 0) throw new Error(`go install ${MINIO_MODULE}@${MINIO_VERSION} failed (exit ${code}):\n${output}`);
    await mkdir(join(TOOLS, 'bin'), { recursive: true });
    await rename(join(gobin, 'minio'), bin);
  } finally {
    await rm(gobin, { recursive: true, force: true });
  }
}

function isRunning(child: ChildProcess): boolean {
  return child.exitCode === null && child.signalCode === null;
}

function killGroup(child: ChildProcess, signal: NodeJS.Signals): void {
  if (child.pid === undefined || !isRunning(child)) return;
  try {
    process.kill(-child.pid, signal);
  } catch {
    // already gone
  }
}
