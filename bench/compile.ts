/**
 * What compiling a model for the fast path costs, per family: reads the first models of each cached bench fleet
 * (.cache/bench/fleets/, made by `npm run bench`) and compiles each as a compile thread does (read, compile, fuse,
 * one trial run), in this process, timing a first pass over them (the JIT still warming up, as in a fresh worker)
 * and a second pass over the same models. A cold worker pays this for every model before it scores any row.
 *
 * Usage: tsx bench/compile.ts [--models N (default 100)] [--fleets SUBSTRING] [--json]
 */
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { compileModel } from '../lib/models/fast-paths/compile-model';
import { keys } from '../lib/shared/keys';

interface Row {
  fleet: string;
  family: string;
  models: number;
  onnx_kb: number;
  first_pass_ms: number;
  second_pass_ms: number;
  second_pass_cpu_ms: number;
  fast_path: string;
}

const FLEETS = join(__dirname, '..', '.cache', 'bench', 'fleets');

function option(name: string): string | undefined {
  const i = process.argv.indexOf(name);
  return i >= 0 ? process.argv[i + 1] : undefined;
}

/** The first `n` models of a cached fleet: bytes and the names and width of their input and output. */
function models(fleet: string, n: number) {
  const store = join(FLEETS, fleet, 'store');
  const index = JSON.parse(readFileSync(join(store, keys.modelIndex()), 'utf8')) as {
    devices: Record<string, { version: string }>;
  };
  return Object.entries(index.devices)
    .slice(0, n)
    .map(([device, { version }]) => {
      const meta = JSON.parse(readFileSync(join(store, keys.modelMeta(device, version)), 'utf8')) as {
        input: { name: string };
        output: { name: string };
        features: string[];
      };
      const bytes = new Uint8Array(readFileSync(join(store, keys.modelOnnx(device, version))));
      return { bytes, input: meta.input.name, output: meta.output.name, features: meta.features.length };
    });
}

/** Milliseconds per model of one pass compiling every model, wall and this process's CPU. */
function pass(list: ReturnType<typeof models>) {
  const cpu = process.cpuUsage();
  const start = performance.now();
  let family = '';
  for (const m of list) {
    const result = compileModel(m.bytes, m.input, m.output, m.features);
    family = 'program' in result ? `compiled:${result.program.family}` : `refused: ${result.unsupported}`;
  }
  const used = process.cpuUsage(cpu);
  return {
    ms: (performance.now() - start) / list.length,
    cpu: (used.user + used.system) / 1000 / list.length,
    family,
  };
}

function run(): void {
  const n = Number(option('--models') ?? 100);
  const only = option('--fleets');
  const rows: Row[] = [];
  for (const fleet of readdirSync(FLEETS).sort()) {
    if (only && !fleet.includes(only)) continue;
    // A fleet whose generation has not finished has no fleet.json yet, and maybe no index.
    if (!existsSync(join(FLEETS, fleet, 'fleet.json'))) continue;
    const info = JSON.parse(readFileSync(join(FLEETS, fleet, 'fleet.json'), 'utf8')) as { family: string };
    const list = models(fleet, n);
    if (list.length === 0) continue;
    const first = pass(list);
    const second = pass(list);
    rows.push({
      fleet,
      family: info.family,
      models: list.length,
      onnx_kb: list.reduce((s, m) => s + m.bytes.length, 0) / list.length / 1024,
      first_pass_ms: first.ms,
      second_pass_ms: second.ms,
      second_pass_cpu_ms: second.cpu,
      fast_path: second.family,
    });
  }
  if (process.argv.includes('--json')) {
    console.log(JSON.stringify(rows, null, 2));
    return;
  }
  console.log('| fleet | ONNX KB | models | first pass ms/model | second pass ms/model (CPU) | fast path |');
  console.log('| --- | ---: | ---: | ---: | ---: | --- |');
  const f = (v: number) => v.toFixed(v < 1 ? 3 : 1);
  for (const r of rows) {
    const cells = [r.fleet, r.onnx_kb.toFixed(1), r.models, f(r.first_pass_ms), '', r.fast_path];
    cells[4] = `${f(r.second_pass_ms)} (${f(r.second_pass_cpu_ms)})`;
    console.log(`| ${cells.join(' | ')} |`);
  }
}

run();
