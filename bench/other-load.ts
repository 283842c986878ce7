/**
 * The CPU that processes other than the bench's own used while a row was measured, in cores: the machine's busy
 * time (/proc/stat) minus this process's and that of the children it has waited for (the limit, the peer, the
 * worker and the dev server). A row measured beside other work is not comparable with the others, and `nice` is no
 * protection: with autogroup scheduling (most desktop and VM kernels) a niced job started from another session
 * still gets its share of the cores. Linux only; elsewhere `undefined`.
 */
import { readFileSync } from 'node:fs';

/** Clock ticks per second of /proc's CPU times (USER_HZ, 100 on every Linux architecture Node supports). */
const TICKS_PER_S = 100;

interface CpuSample {
  /** Ticks the machine's CPUs were busy (not idle, not waiting for I/O). */
  machine: number;
  /** Ticks of this process and its waited-for children. */
  own: number;
  atMs: number;
}

function sample(): CpuSample | undefined {
  let stat: string;
  let self: string;
  try {
    stat = readFileSync('/proc/stat', 'utf8');
    self = readFileSync('/proc/self/stat', 'utf8');
  } catch {
    return undefined;
  }
  // cpu user nice system idle iowait irq softirq steal (guest time is counted in user already).
  const cpu = stat.slice(0, stat.indexOf('\n')).trim().split(/\s+/).slice(1, 9).map(Number);
  const machine = cpu.reduce((a, b) => a + b, 0) - cpu[3]! - cpu[4]!;
  // After the command name: state is field 3, utime/stime/cutime/cstime are fields 14 to 17.
  const fields = self
    .slice(self.lastIndexOf(')') + 2)
    .split(' ')
    .map(Number);
  const own = fields[11]! + fields[12]! + fields[13]! + fields[14]!;
  return { machine, own, atMs: Date.now() };
}

/** Starts measuring; the function returned gives the other processes' average use since then, in cores. */
export function measureOtherLoad(): () => number | undefined {
  const start = sample();
  return () => {
    const end = sample();
    if (!start || !end || end.atMs <= start.atMs) return undefined;
    const otherTicks = end.machine - start.machine - (end.own - start.own);
    return Math.max(0, otherTicks / TICKS_PER_S / ((end.atMs - start.atMs) / 1000));
  };
}
