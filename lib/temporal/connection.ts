/**
 * The one way fleetscore connects to Temporal, shared by workers, the CLI and tests: a profile from
 * `@temporalio/envconfig` (TOML config file and TEMPORAL_* environment variables: address, namespace, API key,
 * TLS / mTLS), defaulting to the local dev server.
 */
import { Client, Connection } from '@temporalio/client';
import { loadClientConnectConfig } from '@temporalio/envconfig';
import { NativeConnection } from '@temporalio/worker';

/** Where to connect and in which namespace. */
export interface TemporalTarget {
  address: string;
  namespace: string;
  /** Connection options as envconfig produced them (TLS, API key, metadata): never logged. */
  options: ReturnType<typeof loadClientConnectConfig>['connectionOptions'];
}

/** The local dev server's address, used when no profile or TEMPORAL_ADDRESS names another. */
export const LOCAL_ADDRESS = '127.0.0.1:7233';

/** Resolves the Temporal target from the environment (`TEMPORAL_PROFILE`, `TEMPORAL_ADDRESS`, ...). */
export function temporalTarget(overrides: { address?: string; namespace?: string } = {}): TemporalTarget {
  // envconfig reads TEMPORAL_PROFILE, TEMPORAL_CONFIG_FILE and the TEMPORAL_* variables itself.
  const config = loadClientConnectConfig();
  const address = overrides.address ?? config.connectionOptions.address ?? LOCAL_ADDRESS;
  return {
    address,
    namespace: overrides.namespace ?? config.namespace ?? 'default',
    options: { ...config.connectionOptions, address },
  };
}

/** A client for the CLI and tests; close `connection` when done. */
export async function connectClient(
  target: TemporalTarget = temporalTarget(),
): Promise<{ client: Client; connection: Connection }> {
  const connection = await Connection.connect(target.options);
  return { client: new Client({ connection, namespace: target.namespace }), connection };
}

/** A worker connection; close it after the worker has shut down. */
export function connectWorker(target: TemporalTarget = temporalTarget()): Promise<NativeConnection> {
  return NativeConnection.connect(target.options);
}

/** Whether a Temporal frontend answers at the target within `timeoutMs`. */
export async function isReachable(target: TemporalTarget, timeoutMs = 2_000): Promise<boolean> {
  try {
    const connection = await Connection.connect({ ...target.options, connectTimeout: timeoutMs });
    try {
      await connection.ensureConnected();
      return true;
    } finally {
      await connection.close();
    }
  } catch {
    // Unreachable is an answer here, not an error: the caller starts a dev server or reports it.
    return false;
  }
}
