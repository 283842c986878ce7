/**
 * The one way fleetscore connects to Temporal, shared by workers, the CLI and tests: a profile from
 * `@temporalio/envconfig` (TOML config file and TEMPORAL_* environment variables: address, namespace, API key,
 * TLS / mTLS), defaulting to the local dev server. A connection that fails says where it tried, where that address
 * and namespace came from, and what to do, within seconds.
 */
import { Client, Connection } from '@temporalio/client';
import { loadClientConfigProfile, loadClientConnectConfig } from '@temporalio/envconfig';
import { NativeConnection } from '@temporalio/worker';
import { TemporalUnreachable } from '../shared/errors';
import { describeUnreachable } from './connection-failure';

/** Where to connect and in which namespace. */
export interface TemporalTarget {
  address: string;
  namespace: string;
  /** Where `address` and `namespace` came from, in words: `TEMPORAL_ADDRESS`, `profile "prod" …`, `the default`. */
  source: { address: string; namespace: string };
  /** Connection options as envconfig produced them (TLS, API key, metadata): never logged. */
  options: ReturnType<typeof loadClientConnectConfig>['connectionOptions'];
}

/** The local dev server's address, used when no profile or TEMPORAL_ADDRESS names another. */
export const LOCAL_ADDRESS = '127.0.0.1:7233';

/** How long a client connection may take before the CLI reports Temporal unreachable. */
export const CONNECT_TIMEOUT_MS = 3_000;

/**
 * Resolves the Temporal target from the environment (`TEMPORAL_PROFILE`, `TEMPORAL_ADDRESS`, ...); `overrides`
 * (named by `overriddenBy`, e.g. the dev server `fleetscore up` started) win over both.
 */
export function temporalTarget(
  overrides: { address?: string; namespace?: string } = {},
  overriddenBy = 'fleetscore',
  env: NodeJS.ProcessEnv = process.env,
): TemporalTarget {
  const profile = env.TEMPORAL_PROFILE;
  // envconfig reads TEMPORAL_PROFILE, TEMPORAL_CONFIG_FILE and the TEMPORAL_* variables itself; they are read here
  // too only to say where the address and namespace came from.
  const config = loadClientConnectConfig();
  // The profile alone (no environment on top), to tell whether an address or namespace came from the file.
  const file = loadClientConfigProfile({
    profile,
    disableEnv: true,
    ...(env.TEMPORAL_CONFIG_FILE ? { configSource: { path: env.TEMPORAL_CONFIG_FILE } } : {}),
  });
  const fromFile = `profile "${profile ?? 'default'}" of ${env.TEMPORAL_CONFIG_FILE ?? 'the Temporal config file'}`;
  const sourceOf = (override: string | undefined, variable: string, inFile: string | undefined) =>
    override !== undefined ? overriddenBy : env[variable] ? variable : inFile ? fromFile : 'the default';
  const address = overrides.address ?? config.connectionOptions.address ?? LOCAL_ADDRESS;
  return {
    address,
    namespace: overrides.namespace ?? config.namespace ?? 'default',
    source: {
      address: sourceOf(overrides.address, 'TEMPORAL_ADDRESS', file.address),
      namespace: sourceOf(overrides.namespace, 'TEMPORAL_NAMESPACE', file.namespace),
    },
    options: { ...config.connectionOptions, address },
  };
}

/**
 * A client for the CLI and tests; close `connection` when done. Throws TemporalUnreachable, naming the address,
 * the namespace and their sources, when no frontend answers within CONNECT_TIMEOUT_MS.
 */
export async function connectClient(
  target: TemporalTarget = temporalTarget(),
): Promise<{ client: Client; connection: Connection }> {
  let connection: Connection;
  try {
    connection = await Connection.connect({ connectTimeout: CONNECT_TIMEOUT_MS, ...target.options });
  } catch (err) {
    // The SDK's own message is in the description where it says more than the probe.
    throw new TemporalUnreachable(target, await describeUnreachable(target.address, CONNECT_TIMEOUT_MS, err));
  }
  return { client: new Client({ connection, namespace: target.namespace }), connection };
}

/** A worker connection; close it after the worker has shut down. Throws TemporalUnreachable like connectClient. */
export async function connectWorker(target: TemporalTarget = temporalTarget()): Promise<NativeConnection> {
  try {
    return await NativeConnection.connect(target.options);
  } catch (err) {
    // The SDK's own message is in the description where it says more than the probe.
    throw new TemporalUnreachable(target, await describeUnreachable(target.address, CONNECT_TIMEOUT_MS, err));
  }
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
