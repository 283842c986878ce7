/**
 * Credentials never leak: real `fleetscore worker` processes run a scoring run against a real MinIO and a real
 * Temporal dev server with the S3 keys, a Temporal API key and TLS client key material in their environment (TLS
 * explicitly off, so the dev server still answers), at DEBUG log level, with the store taken down for a few seconds
 * as the run starts so error paths are exercised too. Then every object in the bucket (predictions, manifest, plans, shard
 * logs), everything the workers printed, and the run's whole workflow history (what the Web UI shows: input,
 * activity inputs and results, failures, memo, search attributes) are searched for each secret.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { FaultRig } from '../faults/support/fault-rig';

jest.setTimeout(240_000);

const API_KEY = 'fsk-apikey-3f9c1e5b7a2d4c6e8f0a';
const TLS_KEY = '-----BEGIN PRIVATE KEY-----\nFSKTLSKEYd41c8e2f7b9a\n-----END PRIVATE KEY-----';
const TLS_CERT = '-----BEGIN CERTIFICATE-----\nFSKTLSCERT5e6f7a8b9c\n-----END CERTIFICATE-----';

let rig: FaultRig;

beforeAll(async () => {
  rig = await FaultRig.start({
    devices: 200,
    sensors: 3,
    shardSize: 40,
    s3: true,
    workerEnv: {
      TEMPORAL_API_KEY: API_KEY,
      TEMPORAL_TLS: 'false',
      TEMPORAL_TLS_CLIENT_KEY_DATA: TLS_KEY,
      TEMPORAL_TLS_CLIENT_CERT_DATA: TLS_CERT,
      FLEETSCORE_LOG_LEVEL: 'DEBUG',
    },
  });
});

afterAll(async () => {
  await rig?.close();
});

/** The distinctive part of each secret, so a secret split across lines or quoted is still found. */
function needles(): Record<string, string> {
  return {
    'Temporal API key': API_KEY,
    'TLS client key': 'FSKTLSKEYd41c8e2f7b9a',
    'TLS client certificate': 'FSKTLSCERT5e6f7a8b9c',
    'S3 secret access key': rig.s3!.secretAccessKey,
  };
}

test('no secret appears in the store, the shard logs, worker output or the workflow history', async () => {
  await rig.startWorkers(2);
  // The store is down when the run starts: planning fails with store errors until it is back.
  await rig.s3!.kill();
  const handle = await rig.start('secrets');
  await sleep(3_000);
  await rig.s3!.restart();
  const summary = await rig.result(handle);
  expect(summary.scored).toBe(200);
  await rig.stopWorkers();

  const history = await handle.fetchHistory();
  // Payloads decoded, whether the history holds them as bytes or as base64 (`data`).
  const historyText = JSON.stringify(history, (k, v: unknown) =>
    v instanceof Uint8Array
      ? Buffer.from(v).toString('latin1')
      : k === 'data' && typeof v === 'string'
        ? Buffer.from(v, 'base64').toString('latin1')
        : v,
  );
  const objects = await rig.dumpStore();
  const output = rig.allWorkers.map((w) => w.output).join('\n');
  // The places searched are not empty: the run wrote logs, the history holds the input, and the store errors
  // were met (planning, a local activity, retried them on the worker: they are in its output, not the history).
  expect([...objects.keys()].some((k) => k.startsWith('logs/'))).toBe(true);
  expect(historyText).toContain(rig.storeUri.split('?')[0]!);
  expect(output).toContain('S3RequestFailed');

  const found: string[] = [];
  for (const [name, secret] of Object.entries(needles())) {
    for (const [key, text] of objects) if (text.includes(secret)) found.push(`${name} in store object ${key}`);
    if (output.includes(secret)) found.push(`${name} in worker output`);
    if (historyText.includes(secret)) found.push(`${name} in the workflow history`);
  }
  expect(found).toEqual([]);
});
