/**
 * The CLI's one way to reach Temporal: a client connected from the environment (lib/temporal/connection.ts), handed
 * to `work` and closed whatever happens. A server that does not answer fails within seconds, naming the address, the
 * namespace and where each came from.
 */
import type { Client } from '@temporalio/client';
import { connectClient, temporalTarget, type TemporalTarget } from '../../lib/temporal/connection';

/** Runs `work` with a connected client and the target it connected to. */
export async function withClient<T>(
  work: (client: Client, target: TemporalTarget) => Promise<T>,
  target: TemporalTarget = temporalTarget(),
): Promise<T> {
  const { client, connection } = await connectClient(target);
  try {
    return await work(client, target);
  } finally {
    await connection.close();
  }
}
