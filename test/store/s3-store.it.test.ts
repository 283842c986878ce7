import { randomBytes } from 'node:crypto';
import { connect } from 'node:net';
import { openStore } from '../../lib/store/open-store';
import { compareKeys } from '../../lib/store/object-store';
import { loadConfig } from '../../lib/config';
import { parseS3Uri, S3Store } from '../../lib/store/s3-store';
import { startS3Server, type S3TestServer } from '../support/s3-server';
import { describeStoreContract } from './store-contract';
import { InvalidKey, S3RequestFailed, S3RequestRefused } from '../../lib/shared/errors';

// S3 round trips are slower than a folder; the first start may also build MinIO (see beforeAll).
jest.setTimeout(60_000);

const SECRET = 'wJalrXUtnFEMI/K7MDENG+bPxRfiCYzEXAMPLEKEY';
const ACCESS_KEY = 'AKIAIOSFODNN7EXAMPLE';

/** Sets environment variables for the duration of `fn`, restoring the previous values afterwards. */
async function withEnv<T>(vars: Record<string, string | undefined>, fn: () => Promise<T>): Promise<T> {
  const saved = Object.fromEntries(Object.keys(vars).map((k) => [k, process.env[k]]));
  const assign = (values: Record<string, string | undefined>): void => {
    for (const [k, v] of Object.entries(values)) {
      if (v === undefined) delete process.env[k];
      else process.env[k] = v;
    }
  };
  assign(vars);
  try {
    return await fn();
  } finally {
    assign(saved);
  }
}

const text = (bytes: Uint8Array): string => Buffer.from(bytes).toString('utf8');

describe('parseS3Uri', () => {
  it('reads the bucket and normalises the prefix', () => {
    expect(parseS3Uri('s3://fleet-data', loadConfig({}))).toEqual({
      bucket: 'fleet-data',
      prefix: '',
      endpoint: undefined,
      forcePathStyle: false,
      region: 'us-east-1',
    });
    expect(parseS3Uri('s3://fleet-data/', loadConfig({})).prefix).toBe('');
    expect(parseS3Uri('s3://fleet-data/prod', loadConfig({})).prefix).toBe('prod/');
    expect(parseS3Uri('s3://fleet-data/prod/eu-1/', loadConfig({})).prefix).toBe('prod/eu-1/');
  });

  it('reads endpoint, path style and region from the query', () => {
    expect(
      parseS3Uri(
        's3://fleet-data/p?endpoint=http://127.0.0.1:9000&forcePathStyle=true&region=eu-central-1',
        loadConfig({}),
      ),
    ).toEqual({
      bucket: 'fleet-data',
      prefix: 'p/',
      endpoint: 'http://127.0.0.1:9000',
      forcePathStyle: true,
      region: 'eu-central-1',
    });
    expect(parseS3Uri('s3://fleet-data?endpoint=https%3A%2F%2Fminio.internal%3A9000', loadConfig({})).endpoint).toBe(
      'https://minio.internal:9000',
    );
  });

  it('falls back to the environment, and the query wins over it', () => {
    const env = {
      FLEETSCORE_S3_ENDPOINT: 'http://minio.local:9000',
      FLEETSCORE_S3_FORCE_PATH_STYLE: 'true',
      AWS_REGION: 'ap-south-1',
    };
    expect(parseS3Uri('s3://fleet-data', loadConfig(env))).toMatchObject({
      endpoint: 'http://minio.local:9000',
      forcePathStyle: true,
      region: 'ap-south-1',
    });
    expect(
      parseS3Uri('s3://fleet-data?endpoint=http://other:1&forcePathStyle=false&region=us-west-2', loadConfig(env)),
    ).toMatchObject({
      endpoint: 'http://other:1',
      forcePathStyle: false,
      region: 'us-west-2',
    });
  });

  it('leaves the endpoint to the SDK when none is given', () => {
    // The SDK then uses AWS, or AWS_ENDPOINT_URL_S3 / AWS_ENDPOINT_URL (tested against the server below).
    expect(parseS3Uri('s3://fleet-data', loadConfig({ AWS_ENDPOINT_URL_S3: 'http://x:1' })).endpoint).toBeUndefined();
  });

  it.each([
    ['s3://', /bucket name/],
    ['s3://Fleet_Data', /bucket name/],
    ['s3://fleet-data/a//b', InvalidKey],
    ['s3://fleet-data/../x', InvalidKey],
    ['s3://fleet-data?bucket=other', /unknown S3 store URI parameter "bucket"/],
    ['s3://fleet-data?forcePathStyle=yes', /forcePathStyle/],
    ['s3://fleet-data?endpoint=ftp://host', /protocol/],
    ['s3://fleet-data?endpoint=not a url', /invalid S3 endpoint/],
    ['s3://fleet-data#frag', /invalid S3 store URI/],
  ])('rejects %s', (uri, error) => {
    expect(() => parseS3Uri(uri, loadConfig({}))).toThrow(error);
  });

  it.each([
    `s3://${ACCESS_KEY}:${SECRET}@fleet-data/prod`,
    `s3://${ACCESS_KEY}:${encodeURIComponent(SECRET)}@fleet-data`,
    `s3://${ACCESS_KEY}@fleet-data`,
    `s3://fleet-data/p?endpoint=http://${ACCESS_KEY}:${SECRET}@127.0.0.1:9000`,
    `s3://fleet-data/p?endpoint=http://${ACCESS_KEY}:${encodeURIComponent(SECRET)}@127.0.0.1:9000`,
  ])('refuses credentials in %s without repeating them', (uri) => {
    let message = '';
    try {
      openStore(uri);
    } catch (err) {
      message = String(err) + JSON.stringify(err);
    }
    expect(message).toMatch(/must not contain credentials/);
    for (const part of [SECRET, encodeURIComponent(SECRET), ...SECRET.split('/'), ACCESS_KEY]) {
      expect(message).not.toContain(part);
    }
  });

  it('lists key ranges except in a directory bucket (S3 Express One Zone), which lists neither from a key nor in order', () => {
    const general = S3Store.fromUri('s3://fleet-data/prod');
    const directory = S3Store.fromUri('s3://fleet-data--usw2-az1--x-s3/prod');
    expect(general.listRange).toBeInstanceOf(Function);
    expect(directory.listRange).toBeUndefined();
    general.destroy();
    directory.destroy();
  });

  it('gives a URI without query or credentials as the store URI', () => {
    expect(S3Store.fromUri('s3://fleet-data').uri).toBe('s3://fleet-data');
    expect(openStore('s3://fleet-data//prod/eu-1/?endpoint=http://127.0.0.1:9000&forcePathStyle=true').uri).toBe(
      's3://fleet-data/prod/eu-1',
    );
  });
});

describe('S3Store against a real S3 server (MinIO)', () => {
  let server: S3TestServer;
  let restoreEnv: Record<string, string | undefined> = {};
  let n = 0;
  const opened: S3Store[] = [];

  /** A store under its own prefix on the test server, reached through the URI's query. */
  const open = (prefix = `t${++n}-${randomBytes(3).toString('hex')}`): S3Store => {
    const store = S3Store.fromUri(`s3://${server.bucket}/${prefix}?endpoint=${server.endpoint}&forcePathStyle=true`);
    opened.push(store);
    return store;
  };

  beforeAll(async () => {
    server = await startS3Server();
    // Credentials reach the store only through the SDK's chain, here its environment provider.
    const vars = { AWS_ACCESS_KEY_ID: server.accessKeyId, AWS_SECRET_ACCESS_KEY: server.secretAccessKey };
    restoreEnv = Object.fromEntries(Object.keys(vars).map((k) => [k, process.env[k]]));
    Object.assign(process.env, vars);
    for (const k of [
      'FLEETSCORE_S3_ENDPOINT',
      'FLEETSCORE_S3_FORCE_PATH_STYLE',
      'AWS_ENDPOINT_URL_S3',
      'AWS_ENDPOINT_URL',
    ]) {
      restoreEnv[k] = process.env[k];
      delete process.env[k];
    }
  }, 15 * 60_000); // the first run builds MinIO from source

  afterAll(async () => {
    for (const store of opened) store.destroy();
    for (const [k, v] of Object.entries(restoreEnv)) {
      if (v === undefined) delete process.env[k];
      else process.env[k] = v;
    }
    await server?.stop();
  });

  describeStoreContract('S3Store', async () => {
    const store = open();
    return { store, cleanup: async () => store.destroy() };
  });

  it('opens the bucket through the storeUri the test server hands out', async () => {
    const store = S3Store.fromUri(server.storeUri);
    opened.push(store);
    expect(store.uri).toBe(`s3://${server.bucket}`);
    await store.put('hello/from-store-uri.txt', 'hi');
    expect(text(await store.get('hello/from-store-uri.txt'))).toBe('hi');
  });

  it('reaches the server through FLEETSCORE_S3_ENDPOINT and FLEETSCORE_S3_FORCE_PATH_STYLE', async () => {
    await withEnv({ FLEETSCORE_S3_ENDPOINT: server.endpoint, FLEETSCORE_S3_FORCE_PATH_STYLE: 'true' }, async () => {
      const store = S3Store.fromUri(`s3://${server.bucket}/via-env`, loadConfig());
      opened.push(store);
      await store.put('k.txt', 'via env');
      expect(text(await store.get('k.txt'))).toBe('via env');
    });
  });

  it("reaches the server through the SDK's own AWS_ENDPOINT_URL_S3", async () => {
    await withEnv({ AWS_ENDPOINT_URL_S3: server.endpoint, FLEETSCORE_S3_FORCE_PATH_STYLE: 'true' }, async () => {
      const store = S3Store.fromUri(`s3://${server.bucket}/via-sdk-env`, loadConfig());
      opened.push(store);
      await store.put('k.txt', 'via sdk env');
      expect(text(await store.get('k.txt'))).toBe('via sdk env');
    });
  });

  it('keeps each store inside its prefix, also when one prefix starts another', async () => {
    const root = open('');
    const p1 = open('iso/p1');
    const p10 = open('iso/p10');
    await p1.put('k.json', 'one');
    await p10.put('k.json', 'ten');
    expect(await p1.list('')).toEqual(['k.json']);
    expect(await p10.list('')).toEqual(['k.json']);
    expect(text(await p1.get('k.json'))).toBe('one');
    // Where the objects really are in the bucket.
    expect(await root.list('iso/')).toEqual(['iso/p1/k.json', 'iso/p10/k.json']);
    await p1.delete('k.json');
    expect(text(await root.get('iso/p10/k.json'))).toBe('ten');
  });

  it('lists past the 1000 keys of one ListObjectsV2 page', async () => {
    const store = open();
    const keys = Array.from(
      { length: 1010 },
      (_, i) => `logs/window=2026-11-21T12/shard-${String(i).padStart(5, '0')}.jsonl`,
    );
    for (let i = 0; i < keys.length; i += 50) await Promise.all(keys.slice(i, i + 50).map((k) => store.put(k, '')));
    expect(await store.list('logs/')).toEqual(keys);
    expect(await store.list('logs/window=2026-11-21T12/shard-0100')).toEqual(keys.slice(1000));
  });

  it("lists a range of keys in S3's order (UTF-8 bytes), across pages", async () => {
    const store = open();
    // In JavaScript's order p-1 comes before p-1-a and p-1.b, and U+1F600 before U+E000; in S3's, after them.
    const odd = ['m/p-1/x', 'm/p-1-a/x', 'm/p-1.b/x', 'm/p-1/y', 'm/\uE000/x', 'm/\u{1F600}/x', 'n/p-1/x'];
    const many = Array.from({ length: 1020 }, (_, i) => `m/q-${String(i).padStart(4, '0')}/x`);
    const all = [...odd, ...many];
    for (let i = 0; i < all.length; i += 50) await Promise.all(all.slice(i, i + 50).map((k) => store.put(k, '')));
    const range = async (first: string, last: string) => (await store.listRange!('m/', first, last)).map((o) => o.key);

    expect(await range('m/p-1-a/x', 'm/p-1/x')).toEqual(['m/p-1-a/x', 'm/p-1.b/x', 'm/p-1/x']);
    expect((await range('m/\uE000/x', 'm/\u{1F600}/x')).sort(compareKeys)).toEqual(['m/\uE000/x', 'm/\u{1F600}/x']);
    // From the second page's keys alone, and across the page boundary.
    expect(await range('m/q-1005/x', 'm/q-1019/x')).toEqual(many.slice(1005));
    expect(await range('m/q-0003/x', 'm/q-1010/x')).toEqual(many.slice(3, 1011));
    // Bounds that are not keys themselves, and a range with nothing in it.
    expect(await range('m/q-0001', 'm/q-0002/z')).toEqual(many.slice(1, 3));
    expect(await range('m/q-0003/y', 'm/q-0003/z')).toEqual([]);
    await expect(store.listRange!('m/', '../x', 'm/y')).rejects.toThrow(InvalidKey);
  });

  it('fails loudly for a missing bucket instead of reading it as a missing object', async () => {
    const store = S3Store.fromUri(
      `s3://no-such-bucket-${randomBytes(4).toString('hex')}/p?endpoint=${server.endpoint}&forcePathStyle=true`,
    );
    opened.push(store);
    const err = await store.tryGet('predictions/window=2026-11-21T12/_manifest.json').catch((e: unknown) => e);
    // Refused, not failed: no retry makes the bucket appear, so the run fails at once.
    expect(err).toBeInstanceOf(S3RequestRefused);
    expect(err).toMatchObject({ retryable: false });
    expect((err as Error).message).toMatch(/NoSuchBucket/);
    expect((err as Error).message).toContain(`${store.bucket}/p/predictions/window=2026-11-21T12/_manifest.json`);
    await expect(store.list('')).rejects.toThrow(/ListObjectsV2 .*NoSuchBucket/);
  });

  it('reports rejected credentials without repeating the secret', async () => {
    const wrong = `${server.secretAccessKey}-wrong`;
    await withEnv({ AWS_SECRET_ACCESS_KEY: wrong }, async () => {
      const store = open();
      const err = await store.tryGet('models/index.json').catch((e: unknown) => e);
      expect(err).toBeInstanceOf(S3RequestRefused);
      expect(err).toMatchObject({ retryable: false });
      const message = String(err) + JSON.stringify(err);
      expect(message).toMatch(/SignatureDoesNotMatch|AccessDenied|InvalidAccessKeyId/);
      expect(message).toContain('models/index.json');
      expect(message).not.toContain(wrong);
      expect(message).not.toContain(server.secretAccessKey);
    });
  });

  it('names the bucket and key when the server is gone, and stop() really stops it', async () => {
    const gone = await startS3Server();
    await withEnv({ AWS_ACCESS_KEY_ID: gone.accessKeyId, AWS_SECRET_ACCESS_KEY: gone.secretAccessKey }, async () => {
      const store = S3Store.fromUri(`s3://${gone.bucket}/runs?endpoint=${gone.endpoint}&forcePathStyle=true`);
      opened.push(store);
      await store.put('probe.txt', 'up');
      expect(await store.list('')).toEqual(['probe.txt']);
      await gone.stop();
      await gone.stop(); // idempotent
      const port = Number(new URL(gone.endpoint).port);
      await expect(
        new Promise((done, fail) => connect(port, '127.0.0.1').once('connect', done).once('error', fail)),
      ).rejects.toMatchObject({ code: 'ECONNREFUSED' });

      const key = 'predictions/window=2026-11-21T12/shard-00017.arrow';
      for (const call of [
        () => store.get(key),
        () => store.tryGet(key),
        () => store.put(key, 'x'),
        () => store.delete(key),
      ]) {
        const err = await call().catch((e: unknown) => e);
        expect(err).toBeInstanceOf(S3RequestFailed);
        expect(err).toMatchObject({ bucket: gone.bucket, objectKey: `runs/${key}` });
        const message = (err as Error).message;
        expect(message).toContain(`s3://${gone.bucket}/runs/${key}`);
        expect(message).toMatch(/ECONNREFUSED/);
        expect(message).not.toContain(gone.secretAccessKey);
        expect((err as Error).cause).toBeDefined();
      }
    });
  });
});
