/**
 * The Web UI screenshots in docs/images/ (shown in docs/operations.md, "The Web UI"): one scoring run caught while
 * it runs and the same run finished, taken in headless Chromium. `npm run docs:screenshots` starts a dev server of
 * its own (the same code as `npm start`, on free ports, in a temporary folder), seeds a small demo fleet for the
 * docs' window 2026-11-21T12 and starts a run with only the cpu pool: the run scores its cpu shards and then waits
 * for the gpu pool, which is the "running" picture; then a gpu worker starts, the run commits, and the
 * "finished" pictures follow. Holding a pool back, not sleeping, keeps the run running for exactly as long as it
 * takes. playwright-core drives the machine's Chromium (it downloads no browser of its own): Debian's package at
 * /usr/bin/chromium, or `--chromium PATH`.
 */
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, relative, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import type { NativeConnection } from '@temporalio/worker';
import { chromium, type Page } from 'playwright-core';
import { seedDemoFleet } from '../lib/demo/demo-fleet';
import { type RunProgress } from '../lib/shared/names';
import { progressQuery } from '../lib/shared/queries';
import { parseWindow } from '../lib/shared/window';
import { LocalStore } from '../lib/store/local-store';
import { connectClient, connectWorker, temporalTarget } from '../lib/temporal/connection';
import { startDevServer, type DevServer } from '../lib/temporal/dev-server';
import { runUiUrl, startRun } from '../lib/temporal/runs';
import { installRuntime } from '../lib/temporal/runtime';
import { freePort } from '../test/support/free-port';
import { createPoolWorker, type PoolWorker } from '../workers/pool-worker';

/** The window the docs use throughout. */
const WINDOW = '2026-11-21T12';

/** Chromium flags for a machine without a display, GPU or internet (no background connections to refuse). */
const CHROMIUM_ARGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
];

/** The pictures under docs/images, each a tab of the run's page (docs/operations.md says what each shows). */
const SHOTS = {
  running: { file: 'web-ui-run-running.png', tab: 'user-metadata-tab', shows: 'Current Details' },
  finished: { file: 'web-ui-run-finished.png', tab: 'user-metadata-tab', shows: 'Current Details' },
  result: { file: 'web-ui-run-result.png', tab: 'history-tab', shows: '"manifest"' },
  memo: { file: 'web-ui-run-memo.png', tab: 'memo-tab', shows: '"summary"' },
} as const;

type Shot = (typeof SHOTS)[keyof typeof SHOTS];

/** The DOM members the page-side measurements use (this project compiles without the DOM library). */
interface PageElement {
  tagName: string;
  childElementCount: number;
  textContent: string | null;
  getBoundingClientRect(): { left: number; bottom: number; height: number };
  querySelectorAll(selector: string): Iterable<PageElement>;
}

function say(line: string): void {
  process.stderr.write(`docs:screenshots: ${line}\n`);
}

async function run(): Promise<void> {
  const { values } = parseArgs({
    options: {
      chromium: { type: 'string', default: '/usr/bin/chromium' },
      out: { type: 'string', default: join(__dirname, '..', 'docs', 'images') },
    },
  });
  const browserPath = values.chromium;
  if (!existsSync(browserPath)) {
    throw new Error(
      `no Chromium at ${browserPath}: install it (Debian: apt-get install -y chromium) or pass --chromium PATH; ` +
        'the screenshots need a real browser, and playwright-core downloads none',
    );
  }
  const out = resolve(values.out);
  await mkdir(out, { recursive: true });
  installRuntime({ quiet: true });
  const dir = await mkdtemp(join(tmpdir(), 'fleetscore-screenshots-'));
  let server: DevServer | undefined;
  const workers: PoolWorker[] = [];
  const running: Promise<void>[] = [];
  let workerConnection: NativeConnection | undefined;
  let client: Awaited<ReturnType<typeof connectClient>> | undefined;
  const browser = await chromium.launch({ executablePath: browserPath, headless: true, args: CHROMIUM_ARGS });
  try {
    const [port, uiPort] = [await freePort(), await freePort()];
    say(`starting a Temporal dev server on 127.0.0.1:${port}, Web UI on ${uiPort}`);
    server = await startDevServer({ dbFile: join(dir, 'temporal.db'), port, uiPort });
    const target = temporalTarget({ address: server.address }, 'the dev server docs:screenshots started');
    client = await connectClient(target);
    workerConnection = await connectWorker(target);

    const store = join(dir, 'store');
    const window = parseWindow(WINDOW);
    say(`seeding a demo fleet for window ${WINDOW}`);
    await seedDemoFleet(new LocalStore(store), { devices: 60, sensors: 4, hours: 1, endMs: window.endMs });

    const startPool = async (pool: 'cpu' | 'gpu') => {
      const worker = await createPoolWorker({
        pool,
        connection: workerConnection as NativeConnection,
        namespace: target.namespace,
        gpuFallback: 'cpu',
      });
      workers.push(worker);
      running.push(worker.worker.run());
    };
    await startPool('cpu');
    const handle = await startRun(client.client, {
      store,
      window: WINDOW,
      shardSize: 10,
      maxParallelShards: 2,
      // The gpu shards are listed as waiting for their pool after 2 s instead of 5 minutes.
      timeouts: { poolWaitNotice: '2s' },
    });
    const url = runUiUrl(server.uiUrl, target.namespace, handle.workflowId, handle.firstExecutionRunId);
    say(`run ${handle.workflowId} started; waiting until its cpu shards are scored and the gpu shards wait`);
    await waitFor('the cpu shards to be scored and the gpu shards to wait', 60_000, async () => {
      const p: RunProgress = await handle.query(progressQuery);
      const waiting = p.waiting?.length ?? 0;
      return p.phase === 'scoring' && waiting > 0 && p.shardsDone + waiting === p.shardsTotal;
    });

    const page = await browser.newPage({ viewport: { width: 1440, height: 1000 } });
    await page.goto(url);
    await capture(page, SHOTS.running, out);

    say('starting the gpu pool; the run finishes');
    await startPool('gpu');
    await handle.result();
    await page.goto(url);
    for (const shot of [SHOTS.finished, SHOTS.result, SHOTS.memo]) await capture(page, shot, out);
    say(
      `wrote ${Object.values(SHOTS)
        .map((s) => relative(process.cwd(), join(out, s.file)))
        .join(', ')}`,
    );
  } finally {
    await browser.close();
    for (const w of workers) if (w.worker.getState() === 'RUNNING') w.worker.shutdown();
    await Promise.all(running);
    await Promise.all(workers.map((w) => w.close()));
    await workerConnection?.close();
    await client?.connection.close();
    await server?.stop();
    await rm(dir, { recursive: true, force: true });
  }
}

/** Polls `check` until it holds, or fails after `ms`, saying what it waited for. */
async function waitFor(what: string, ms: number, check: () => Promise<boolean>): Promise<void> {
  const deadline = Date.now() + ms;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`gave up after ${ms / 1000} s waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 250));
  }
}

/**
 * One tab of the run's page, from the top of the page to the end of what the tab shows (the Input and Result of
 * the history tab, not the event table under them). Waits for the page to show `shot.shows`: the Web UI loads the
 * run after the page.
 */
async function capture(page: Page, shot: Shot, out: string): Promise<void> {
  await page.locator(`[data-testid="${shot.tab}"]`).click();
  await page.getByText(shot.shows).first().waitFor({ timeout: 30_000 });
  const bottom =
    shot.tab === 'history-tab'
      ? await page
          .locator('[data-testid="input-and-result"]')
          .evaluate((e: PageElement) => e.getBoundingClientRect().bottom)
      : // The lowest line of text (or frame: current details are markdown in a frame) right of the navigation bar,
        // which runs down the whole page.
        await page.locator('main').evaluate((main: PageElement) => {
          const left = main.getBoundingClientRect().left;
          const lines = [...main.querySelectorAll('*')]
            .filter((e) => e.tagName === 'IFRAME' || (e.childElementCount === 0 && e.textContent?.trim()))
            .map((e) => e.getBoundingClientRect())
            .filter((r) => r.height > 0 && r.left >= left);
          return Math.max(...lines.map((r) => r.bottom));
        });
  const { width, height } = page.viewportSize() ?? { width: 1440, height: 1000 };
  await page.screenshot({
    path: join(out, shot.file),
    clip: { x: 0, y: 0, width, height: Math.min(height, bottom + 24) },
  });
}

run().catch((err: unknown) => {
  say(err instanceof Error ? err.message : String(err));
  process.exit(1);
});
