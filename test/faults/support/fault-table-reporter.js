/**
 * Jest reporter of the fault suite: after the run, prints one table of what the fault tests recorded in
 * .fleetscore/fault-results (fault, times injected, runs completed, predictions lost and duplicated).
 */
const { mkdirSync, readdirSync, readFileSync, rmSync } = require('node:fs');
const { join, resolve } = require('node:path');

const DIR = resolve(__dirname, '../../../.fleetscore/fault-results');

class FaultTableReporter {
  onRunStart() {
    rmSync(DIR, { recursive: true, force: true });
    mkdirSync(DIR, { recursive: true });
  }

  onRunComplete(_contexts, results) {
    if (!results.testResults.some((t) => t.testFilePath.endsWith('.fault.test.ts'))) return;
    let files = [];
    try {
      files = readdirSync(DIR).filter((f) => f.endsWith('.json'));
    } catch {
      // no results folder: no fault test ran
    }
    const records = files.map((f) => JSON.parse(readFileSync(join(DIR, f), 'utf8')));
    const byFault = new Map();
    for (const r of records) {
      const row = byFault.get(r.fault) ?? {
        fault: r.fault,
        points: 0,
        injected: 0,
        runs: 0,
        completed: 0,
        lost: 0,
        duplicated: 0,
        seconds: 0,
      };
      row.points += 1;
      row.injected += r.injected;
      row.runs += r.runs;
      row.completed += r.runsCompleted;
      row.lost += r.lost;
      row.duplicated += r.duplicated;
      row.seconds += r.seconds;
      byFault.set(r.fault, row);
    }
    const head = ['fault', 'points', 'times injected', 'runs completed', 'predictions lost', 'predictions duplicated'];
    const rows = [...byFault.values()]
      .sort((a, b) => a.fault.localeCompare(b.fault))
      .map((r) => [r.fault, r.points, r.injected, `${r.completed}/${r.runs}`, r.lost, r.duplicated]);
    const widths = head.map((h, i) => Math.max(h.length, ...rows.map((r) => String(r[i]).length)));
    const line = (cells) =>
      cells
        .map((c, i) => String(c).padEnd(widths[i]))
        .join('  ')
        .trimEnd();
    const out = ['', 'fault suite', line(head), line(widths.map((w) => '-'.repeat(w))), ...rows.map(line), ''];
    process.stdout.write(`${out.join('\n')}\n`);
  }
}

module.exports = FaultTableReporter;
