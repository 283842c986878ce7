/**
 * Why a connection to Temporal failed, in words (nothing listens, the name does not resolve, no answer, or a TCP
 * answer that is not Temporal's gRPC), for TemporalUnreachable (lib/shared/errors.ts), which also names the address,
 * the namespace and where each came from. The SDK's own message ("Failed to connect before the deadline") says none
 * of it.
 */
import { connect } from 'node:net';
import { messageOf } from '../shared/errors';

/**
 * Why `address` gave no Temporal connection, from a plain TCP connection attempt (at most `timeoutMs`): refused,
 * unknown host, no answer, or open (then the gRPC handshake failed: TLS, API key or a proxy in the way).
 */
export async function describeUnreachable(address: string, timeoutMs: number, err: unknown): Promise<string> {
  const [, host, port] = /^\[?(.*?)\]?:(\d+)$/.exec(address) ?? [];
  if (!host || !port) return `"${address}" is not host:port`;
  const socket = connect({ host, port: Number(port), timeout: timeoutMs });
  const probe = await new Promise<string>((resolve) => {
    socket.once('connect', () => resolve('open'));
    socket.once('timeout', () => resolve('timeout'));
    socket.once('error', (e: NodeJS.ErrnoException) => resolve(e.code ?? e.message));
  });
  socket.destroy();
  const seconds = `${Math.round(timeoutMs / 100) / 10} s`;
  switch (probe) {
    case 'ECONNREFUSED':
      return 'connection refused: nothing listens on that port';
    case 'ENOTFOUND':
    case 'EAI_AGAIN':
      return `the host name ${host} does not resolve`;
    case 'timeout':
      return `no answer within ${seconds}`;
    case 'open': {
      const sdk = messageOf(err);
      return (
        `the port answers, but not as a Temporal frontend within ${seconds} (${sdk}); ` +
        'check TLS (TEMPORAL_TLS, certificates), the API key and any proxy in between'
      );
    }
    default:
      return `cannot connect (${probe})`;
  }
}
