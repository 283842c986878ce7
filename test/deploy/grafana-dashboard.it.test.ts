/**
 * deploy/grafana/fleetscore-dashboard.json queries only what live workers export: two real `fleetscore worker`
 * processes (cpu and gpu, each with --metrics-port) on a real dev server score a window and see a run fail; every
 * metric and every label a query of the dashboard names must then be on their Prometheus endpoints.
 */
import { readFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import { WorkerProcesses, fleetscoreWorkerLauncher } from '../../lib/autoscale/worker-processes';
import { seedDemoFleet } from '../../lib/demo/demo-fleet';
import { SCORING_WORKFLOW, type Pool } from '../../lib/shared/names';
import type { RunSummary } from '../../lib/shared/run-types';
import { LocalStore } from '../../lib/store/local-store';
import { windowAt } from '../../lib/shared/window';
import { freePort } from '../support/free-port';
import { startTemporal, uniqueTaskQueue } from '../support/temporal-env';

jest.setTimeout(180_000);

const DASHBOARD = resolve(__dirname, '..', '..', 'deploy', 'grafana', 'fleetscore-dashboard.json');
const END_MS = Date.UTC(2026, 10, 21, 12);
const WINDOW = windowAt(END_MS - 3_600_000).id;
const DEVICES = 6;

interface Target {
  expr: string;
}
interface Panel {
  id: number;
  type: string;
  title: string;
  targets?: Target[];
}
interface Dashboard {
  uid: string;
  panels: Panel[];
  templating: { list: { name: string; definition?: string }[] };
}

const dashboard = JSON.parse(readFileSync(DASHBOARD, 'utf8')) as Dashboard;

/** Every PromQL expression of the dashboard: panel queries and template variable queries. */
function expressions(): { where: string; expr: string }[] {
  const out: { where: string; expr: string }[] = [];
  for (const p of dashboard.panels)
    for (const t of p.targets ?? []) out.push({ where: `panel "${p.title}"`, expr: t.expr });
  for (const v of dashboard.templating.list)
    if (v.definition) out.push({ where: `variable $${v.name}`, expr: v.definition });
  return out;
}

/** The metric names (fleetscore's and the SDK's) an expression reads. */
function metricsOf(expr: string): string[] {
  return [...new Set(expr.match(/\b(?:fleetscore|temporal)_[a-z0-9_]+\b/g) ?? [])];
}

/** The label names an expression groups by or selects on (`by (a, b)`, `{a="x", b=~"y"}`, `label_values(m, a)`). */
function labelsOf(expr: string): string[] {
  const labels = new Set<string>();
  for (const [, list] of expr.matchAll(/\b(?:by|without)\s*\(([^)]*)\)/g))
    for (const l of list!.split(',')) if (l.trim()) labels.add(l.trim());
  for (const [, selector] of expr.matchAll(/\{([^}]*)\}/g))
    for (const [, l] of selector!.matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)\s*(?:=~|!~|!=|=)/g)) labels.add(l!);
  for (const [, l] of expr.matchAll(/label_values\([^,]+,\s*([a-zA-Z_][a-zA-Z0-9_]*)\)/g)) labels.add(l!);
  return [...labels];
}

/** Sample names of a Prometheus text exposition, each with the label names its series carry. */
function parseExposition(text: string): Map<string, Set<string>> {
  const samples = new Map<string, Set<string>>();
  for (const line of text.split('\n')) {
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s/.exec(line);
    if (!m) continue;
    const labels = samples.get(m[1]!) ?? new Set<string>();
    for (const [, l] of (m[2] ?? '').matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="/g)) labels.add(l!);
    samples.set(m[1]!, labels);
  }
  return samples;
}

test('the dashboard is well formed: unique panel ids, every query on the datasource variable', () => {
  expect(dashboard.uid).toBe('fleetscore');
  const ids = dashboard.panels.map((p) => p.id);
  expect(new Set(ids).size).toBe(ids.length);
  const queried = dashboard.panels.filter((p) => p.type !== 'row');
  expect(queried.length).toBeGreaterThan(10);
  for (const p of queried) expect(p.targets?.length).toBeGreaterThan(0);
  expect(JSON.stringify(dashboard.panels)).not.toMatch(/"uid":"(?!\$\{datasource\})/);
  // What the issue asks it to show: runs, shards, devices scored and failed, inference time, pool backlog and wait.
  const all = expressions()
    .map((e) => e.expr)
    .join('\n');
  for (const metric of [
    'temporal_workflow_completed_total',
    'temporal_workflow_failed_total',
    'fleetscore_shards_scored_total',
    'fleetscore_devices_scored_total',
    'fleetscore_devices_failed_total',
    'fleetscore_inference_seconds_bucket',
    'fleetscore_pool_backlog_tasks',
    'temporal_activity_schedule_to_start_latency_bucket',
  ])
    expect(all).toContain(metric);
});

describe('against live workers', () => {
  let env: TestWorkflowEnvironment;
  let dir: string;
  let processes: WorkerProcesses;
  const taskQueues = { cpu: uniqueTaskQueue('dash-cpu'), gpu: uniqueTaskQueue('dash-gpu') };
  const ports: Record<Pool, number> = { cpu: 0, gpu: 0 };

  beforeAll(async () => {
    env = await startTemporal();
    dir = await mkdtemp(join(tmpdir(), 'fleetscore-dashboard-'));
    ports.cpu = await freePort();
    ports.gpu = await freePort();
    processes = new WorkerProcesses(
      fleetscoreWorkerLauncher(
        (pool) => [
          '--task-queue',
          taskQueues[pool],
          '--metrics-port',
          String(ports[pool]),
          '--shards',
          '2',
          ...(pool === 'gpu' ? ['--gpu-fallback', 'cpu'] : []),
        ],
        {
          ...process.env,
          TEMPORAL_ADDRESS: env.address,
          TEMPORAL_NAMESPACE: env.namespace ?? 'default',
          FLEETSCORE_LOG_LEVEL: 'WARN',
        },
      ),
    );
    processes.start('cpu', 1);
    processes.start('gpu', 1);
  });

  afterAll(async () => {
    await processes?.stopAll();
    await env?.teardown();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  test('every metric and label the dashboard queries is exported by the workers after a run', async () => {
    const store = new LocalStore(join(dir, 'store'));
    await seedDemoFleet(store, { devices: DEVICES, sensors: 3, hours: 1, endMs: END_MS, seed: 5, gpuEvery: 2 });
    const summary: RunSummary = await env.client.workflow.execute(SCORING_WORKFLOW, {
      taskQueue: taskQueues.cpu,
      workflowId: `dashboard-${Date.now()}`,
      args: [{ store: store.uri, window: WINDOW, shardSize: 2, taskQueues }],
    });
    expect(summary).toMatchObject({ devices: DEVICES, scored: DEVICES });
    // A run that fails as a whole (a shard size over the limit is refused at once), for the failed-runs panels.
    await expect(
      env.client.workflow.execute(SCORING_WORKFLOW, {
        taskQueue: taskQueues.cpu,
        workflowId: `dashboard-bad-${Date.now()}`,
        args: [{ store: store.uri, window: WINDOW, shardSize: 1_000_000, taskQueues }],
      }),
    ).rejects.toThrow();

    const exported = new Map<string, Set<string>>();
    for (const pool of ['cpu', 'gpu'] as const) {
      const text = await (await fetch(`http://127.0.0.1:${ports[pool]}/metrics`)).text();
      for (const [name, labels] of parseExposition(text))
        exported.set(name, new Set([...(exported.get(name) ?? []), ...labels]));
    }

    const missing: string[] = [];
    for (const { where, expr } of expressions()) {
      const metrics = metricsOf(expr);
      expect(metrics.length).toBeGreaterThan(0);
      for (const metric of metrics) if (!exported.has(metric)) missing.push(`${where}: metric ${metric}`);
      for (const label of labelsOf(expr)) {
        if (!metrics.some((m) => exported.get(m)?.has(label))) missing.push(`${where}: label ${label} (${expr})`);
      }
    }
    expect(missing).toEqual([]);
    // The backlog gauges carry each worker's own pool and queue.
    expect([...(exported.get('fleetscore_pool_backlog_tasks') ?? [])]).toEqual(
      expect.arrayContaining(['pool', 'task_queue']),
    );
  });
});
