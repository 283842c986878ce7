import { readFileSync } from 'node:fs';
import { createServer } from 'node:net';

/**
 * The lowest port the kernel hands out for a bind to port 0: Linux's ip_local_port_range, or 32768 where that
 * cannot be read (Linux's default; macOS starts at 49152, above it).
 */
function ephemeralLow(): number {
  try {
    const low = Number(readFileSync('/proc/sys/net/ipv4/ip_local_port_range', 'utf8').trim().split(/\s+/)[0]);
    return Number.isInteger(low) && low > 12_000 ? low : 32_768;
  } catch {
    return 32_768;
  }
}

const LOW = 10_000;

/** Whether `port` can be bound on 127.0.0.1 now. */
function bindable(port: number): Promise<boolean> {
  return new Promise((done) => {
    const server = createServer();
    server.once('error', () => done(false));
    server.listen(port, '127.0.0.1', () => server.close(() => done(true)));
  });
}

/**
 * A TCP port on 127.0.0.1 that was free a moment ago, for servers the tests and benchmarks start. It is taken below
 * the kernel's ephemeral range, never from it: the Temporal dev server picks its internal services' ports by binding
 * port 0, so a frontend port from that range, free while the server starts (a restart after a kill), could be handed
 * to one of them and the server would fail with "address already in use" (seen once in the fault suite's restart).
 */
export async function freePort(): Promise<number> {
  const high = ephemeralLow();
  for (let tries = 0; tries < 200; tries++) {
    const port = LOW + Math.floor(Math.random() * (high - LOW));
    if (await bindable(port)) return port;
  }
  throw new Error(`no free TCP port on 127.0.0.1 between ${LOW} and ${high} after 200 tries`);
}
