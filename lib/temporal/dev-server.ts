/**
 * Runs the Temporal CLI dev server for the embedded default: one process with a SQLite file and the Web UI,
 * started with fleetscore's search attributes so runs are searchable by window and counts.
 */
import { spawn } from 'node:child_process';
import { mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import { SearchAttributeType } from '@temporalio/common';
import { SEARCH_ATTRIBUTES } from '../shared/names';
import { isReachable, temporalTarget } from './connection';
import { requireTemporalCli } from './temporal-cli';

/** A running dev server. */
export interface DevServer {
  address: string;
  uiUrl: string;
  /** Stops the server (SIGTERM, then SIGKILL after 10 s) and waits for it to exit. */
  stop(): Promise<void>;
  /** Kills the server at once (SIGKILL), as a crash would, and waits for it to exit; the SQLite file stays. */
  kill(): Promise<void>;
}

/** Where and how to run the dev server. */
export interface DevServerOptions {
  dbFile: string;
  port?: number;
  uiPort?: number;
  namespace?: string;
  /**
   * Runs the server in a process group of its own, so a Ctrl-C at the terminal reaches only the caller, which stops
   * the server once its workers have drained (`fleetscore up`). Otherwise the server shares the caller's group and
   * a Ctrl-C stops both at once (tests: an interrupted run leaves no server behind).
   */
  detached?: boolean;
}

/** SQLite settings of the server's database file. */
const SQLITE_PRAGMAS = ['journal_mode=wal', 'synchronous=normal'];

const TYPE_NAMES: Partial<Record<SearchAttributeType, string>> = {
  [SearchAttributeType.KEYWORD]: 'Keyword',
  [SearchAttributeType.INT]: 'Int',
  [SearchAttributeType.DATETIME]: 'Datetime',
};

/** The `--search-attribute Name=Type` flags for fleetscore's custom search attributes. */
export function searchAttributeFlags(): string[] {
  return Object.values(SEARCH_ATTRIBUTES).flatMap((key) => [
    '--search-attribute',
    `${key.name}=${TYPE_NAMES[key.type]}`,
  ]);
}

/** Starts `temporal server start-dev` and resolves once its frontend answers. */
export async function startDevServer(options: DevServerOptions): Promise<DevServer> {
  const port = options.port ?? 7233;
  const uiPort = options.uiPort ?? 8233;
  const namespace = options.namespace ?? 'default';
  mkdirSync(dirname(options.dbFile), { recursive: true });
  const args = ['server', 'start-dev', '--ip', '127.0.0.1', '--port', String(port), '--ui-port', String(uiPort)];
  args.push(
    '--db-filename',
    options.dbFile,
    // A write-ahead log, synced at checkpoints rather than at every transaction: the server used 0.30 to 0.43 s of
    // CPU per warm 10,000-device run instead of 0.55 to 0.71 s (a run is a few hundred small transactions, on the
    // same cores as the worker). A killed server loses nothing; a power cut can lose the last transactions, never
    // the file.
    ...SQLITE_PRAGMAS.flatMap((p) => ['--sqlite-pragma', p]),
    '--namespace',
    namespace,
    '--log-level',
    'error',
    ...searchAttributeFlags(),
  );
  const child = spawn(requireTemporalCli(), args, {
    stdio: ['ignore', 'pipe', 'pipe'],
    detached: options.detached ?? false,
  });
  // Both streams: the CLI says why it could not start (a port in use, a locked database) on either.
  let output = '';
  const keep = (chunk: Buffer) => {
    output = (output + chunk.toString()).slice(-4_000);
  };
  child.stdout.on('data', keep);
  child.stderr.on('data', keep);
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  const address = `127.0.0.1:${port}`;
  const target = temporalTarget({ address, namespace });
  const deadline = Date.now() + 60_000;
  for (;;) {
    if (child.exitCode !== null) {
      throw new Error(`the Temporal dev server exited with code ${child.exitCode}: ${output.trim() || 'no output'}`);
    }
    if (await isReachable(target, 1_000)) break;
    if (Date.now() > deadline) {
      child.kill('SIGKILL');
      throw new Error(`the Temporal dev server did not answer on ${address} within 60 s: ${output.trim()}`);
    }
    await new Promise((r) => setTimeout(r, 250));
  }
  return {
    address,
    uiUrl: `http://localhost:${uiPort}`,
    async stop() {
      if (child.exitCode !== null) return;
      child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), 10_000);
      await exited;
      clearTimeout(timer);
    },
    async kill() {
      if (child.exitCode !== null || child.signalCode !== null) return;
      child.kill('SIGKILL');
      await exited;
    },
  };
}
