import {
  DeleteObjectCommand,
  GetObjectCommand,
  ListObjectsV2Command,
  PutObjectCommand,
  S3Client,
} from '@aws-sdk/client-s3';
import {
  checkKey,
  compareKeys,
  type CallOptions,
  type ObjectStore,
  type StoredObject,
  type VersionedObject,
} from './object-store';
import { config, type FleetscoreConfig } from '../config';
import { ObjectNotFound, S3RequestFailed, S3RequestRefused } from '../shared/errors';

/** The settings an S3 store URI falls back to (`FLEETSCORE_S3_ENDPOINT`, `..._FORCE_PATH_STYLE`, `AWS_REGION`). */
export type S3Settings = Pick<FleetscoreConfig, 's3Endpoint' | 's3ForcePathStyle' | 'awsRegion'>;

/** Where an S3 store lives. Credentials are deliberately absent: they come only from the SDK's credential chain. */
export interface S3StoreOptions {
  bucket: string;
  /** Key prefix inside the bucket: `''` or a valid key ending in `/`. */
  prefix: string;
  /** An S3-compatible server such as MinIO; `undefined` lets the SDK choose (AWS, or `AWS_ENDPOINT_URL_S3`). */
  endpoint?: string;
  forcePathStyle: boolean;
  region: string;
}

const QUERY_KEYS = new Set(['endpoint', 'forcePathStyle', 'region']);

/**
 * Parses `s3://bucket[/prefix][?endpoint=…&forcePathStyle=true&region=…]`, filling gaps from the configuration
 * (`FLEETSCORE_S3_ENDPOINT`, `FLEETSCORE_S3_FORCE_PATH_STYLE`, `AWS_REGION`; see lib/config). A URI with
 * credentials in it is refused without repeating them, so a secret never reaches a log or a manifest.
 */
export function parseS3Uri(uri: string, settings: S3Settings = config()): S3StoreOptions {
  const m = /^s3:\/\/([^/?#]*)([^?#]*)(?:\?([^#]*))?$/.exec(uri);
  if (!m) throw new Error('invalid S3 store URI: use s3://bucket[/prefix][?endpoint=…&forcePathStyle=true&region=…]');
  const [, bucket = '', path = '', query = ''] = m;
  // A bucket name never holds '@' or ':'; either means userinfo, which may be split anywhere by a '/' in a secret.
  if (/[@:]/.test(bucket)) {
    throw new Error(
      'S3 store URI must not contain credentials: use AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY or a profile',
    );
  }
  if (!/^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$/.test(bucket)) {
    throw new Error(`invalid S3 bucket name ${JSON.stringify(bucket)} in store URI`);
  }
  const params = new URLSearchParams(query);
  for (const name of params.keys()) {
    if (!QUERY_KEYS.has(name)) throw new Error(`unknown S3 store URI parameter ${JSON.stringify(name)}`);
  }
  const endpoint = params.get('endpoint') || settings.s3Endpoint || undefined;
  if (endpoint !== undefined) checkEndpoint(endpoint);
  const prefix = path.replace(/^\/+|\/+$/g, '');
  if (prefix !== '') checkKey(`s3://${bucket}`, prefix);
  return {
    bucket,
    prefix: prefix === '' ? '' : `${prefix}/`,
    endpoint,
    forcePathStyle: params.has('forcePathStyle')
      ? parseBoolean(params.get('forcePathStyle') ?? '')
      : settings.s3ForcePathStyle,
    region: params.get('region') || settings.awsRegion,
  };
}

/**
 * The production store: a bucket (and optional prefix) on AWS S3 or any S3-compatible server. A PutObject is
 * atomic, so readers see the old or the new object, never a part, which is what the run manifest relies on.
 */
export class S3Store implements ObjectStore {
  readonly uri: string;
  readonly bucket: string;
  readonly prefix: string;
  /**
   * A shard reads 32 devices' models at once: a cold shard of 1,000 devices against MinIO with 20 ms added before
   * every request took 7.3 s with 8 at once (a local store's), 2.5 to 2.9 s with 32, 2.3 to 2.5 s with 64, and with
   * no delay 2.2 to 2.8, 2.1 to 2.3 and 2.0 to 2.2 s (docs/benchmarks.md); 32 stays within the SDK's 50 sockets.
   */
  readonly concurrentReads = 32;
  private readonly client: S3Client;

  constructor(options: S3StoreOptions) {
    this.bucket = options.bucket;
    this.prefix = options.prefix;
    this.uri = `s3://${options.bucket}${options.prefix === '' ? '' : `/${options.prefix.slice(0, -1)}`}`;
    // No `credentials`: the SDK's default chain (environment, profiles, SSO, IMDS…) is the only source.
    this.client = new S3Client({
      region: options.region,
      endpoint: options.endpoint,
      forcePathStyle: options.forcePathStyle,
    });
    if (!options.bucket.endsWith('--x-s3')) this.listRange = (...args) => this.listKeyRange(...args);
  }

  /** Opens the store an `s3://` URI names; see `parseS3Uri` for the URI form and the environment it reads. */
  static fromUri(uri: string, settings: S3Settings = config()): S3Store {
    return new S3Store(parseS3Uri(uri, settings));
  }

  async get(key: string, options?: CallOptions): Promise<Uint8Array> {
    const body = await this.tryGet(key, options);
    if (body === undefined) throw new ObjectNotFound(this.uri, key);
    return body;
  }

  async tryGet(key: string, options?: CallOptions): Promise<Uint8Array | undefined> {
    return (await this.getVersioned(key, options))?.body;
  }

  async getVersioned(key: string, options?: CallOptions): Promise<VersionedObject | undefined> {
    const Key = this.objectKey(key);
    try {
      const res = await this.client.send(new GetObjectCommand({ Bucket: this.bucket, Key }), abortable(options));
      if (!res.Body) throw new Error('response has no body');
      return { body: await res.Body.transformToByteArray(), version: res.ETag ?? '' };
    } catch (err) {
      if (isNoSuchKey(err)) return undefined;
      throw this.failure('GetObject', Key, err, options);
    }
  }

  async put(key: string, body: Uint8Array | string, options?: CallOptions): Promise<void> {
    await this.send(key, body, {}, options);
  }

  async putIf(
    key: string,
    body: Uint8Array | string,
    expected: string | null,
    options?: CallOptions,
  ): Promise<string | undefined> {
    try {
      return await this.send(key, body, expected === null ? { IfNoneMatch: '*' } : { IfMatch: expected }, options);
    } catch (err) {
      // 412: the object is not as expected. 409: a concurrent conditional write to the key won; read again.
      const status = (err as S3RequestFailed).cause as { $metadata?: { httpStatusCode?: number } } | undefined;
      const code = status?.$metadata?.httpStatusCode;
      if (err instanceof S3RequestFailed && (code === 412 || code === 409)) return undefined;
      throw err;
    }
  }

  /** PutObject with `conditions`; returns the new ETag. */
  private async send(
    key: string,
    body: Uint8Array | string,
    conditions: { IfMatch?: string; IfNoneMatch?: string },
    options?: CallOptions,
  ): Promise<string> {
    const Key = this.objectKey(key);
    try {
      const ContentLength = typeof body === 'string' ? Buffer.byteLength(body) : body.byteLength;
      const res = await this.client.send(
        new PutObjectCommand({ Bucket: this.bucket, Key, Body: body, ContentLength, ...conditions }),
        abortable(options),
      );
      return res.ETag ?? '';
    } catch (err) {
      throw this.failure('PutObject', Key, err, options);
    }
  }

  async list(prefix: string, options?: CallOptions): Promise<string[]> {
    return (await this.listObjects(prefix, options)).map((o) => o.key);
  }

  async listObjects(prefix: string, options?: CallOptions): Promise<StoredObject[]> {
    return this.listPages(prefix, undefined, options);
  }

  /**
   * One ListObjectsV2 from `first` on (StartAfter: the key less its last character, which sorts before it) that
   * stops at the first page reaching past `last`: a shard's model files are a few pages of a fleet's. Undefined for
   * a directory bucket (S3 Express One Zone, a name ending in `--x-s3`), which lists neither from a key nor in order:
   * callers list the whole prefix there.
   */
  readonly listRange?: (prefix: string, first: string, last: string, options?: CallOptions) => Promise<StoredObject[]>;

  private async listKeyRange(
    prefix: string,
    first: string,
    last: string,
    options?: CallOptions,
  ): Promise<StoredObject[]> {
    checkKey(this.uri, first);
    checkKey(this.uri, last);
    const inRange = (key: string) => compareKeys(key, first) >= 0 && compareKeys(key, last) <= 0;
    return (await this.listPages(prefix, { first, last }, options)).filter((o) => inRange(o.key));
  }

  /** Every object under `prefix`, page by page, or those of the pages that cover `range`; sorted by key. */
  private async listPages(
    prefix: string,
    range: { first: string; last: string } | undefined,
    options?: CallOptions,
  ): Promise<StoredObject[]> {
    checkKey(this.uri, prefix, { prefix: true });
    const Prefix = this.prefix + prefix;
    const out: StoredObject[] = [];
    let ContinuationToken: string | undefined;
    const StartAfter = range && this.prefix + range.first.slice(0, -1);
    try {
      do {
        const res = await this.client.send(
          new ListObjectsV2Command({ Bucket: this.bucket, Prefix, ContinuationToken, StartAfter }),
          abortable(options),
        );
        for (const o of res.Contents ?? []) {
          // Zero-byte "folder" markers that consoles create are not objects of this store.
          if (o.Key === undefined || o.Key.endsWith('/')) continue;
          out.push({
            key: o.Key.slice(this.prefix.length),
            size: o.Size ?? 0,
            // S3 always sends LastModified; a server that does not is treated as "written now", the safe side.
            lastModified: o.LastModified ?? new Date(),
            ...(o.ETag === undefined ? {} : { etag: o.ETag }),
          });
        }
        const passed = range !== undefined && out.length > 0 && compareKeys(out[out.length - 1]!.key, range.last) >= 0;
        ContinuationToken = res.IsTruncated && !passed ? res.NextContinuationToken : undefined;
      } while (ContinuationToken);
    } catch (err) {
      throw this.failure('ListObjectsV2', Prefix, err, options);
    }
    return out.sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
  }

  async delete(key: string, options?: CallOptions): Promise<void> {
    const Key = this.objectKey(key);
    try {
      await this.client.send(new DeleteObjectCommand({ Bucket: this.bucket, Key }), abortable(options));
    } catch (err) {
      throw this.failure('DeleteObject', Key, err, options);
    }
  }

  /** The error of a failed request: the abort itself when the call was cancelled, else S3RequestFailed. */
  private failure(operation: string, Key: string, err: unknown, options?: CallOptions): unknown {
    if (options?.signal?.aborted) return options.signal.reason ?? err;
    const name = (err as { name?: unknown } | undefined)?.name;
    if (typeof name === 'string' && REFUSALS.has(name)) return new S3RequestRefused(operation, this.bucket, Key, err);
    return new S3RequestFailed(operation, this.bucket, Key, err);
  }

  /** Closes the client's pooled connections; the store must not be used afterwards. */
  destroy(): void {
    this.client.destroy();
  }

  private objectKey(key: string): string {
    return this.prefix + checkKey(this.uri, key);
  }
}

/** S3 error codes that no retry changes (see S3RequestRefused); anything else may pass and is retried. */
const REFUSALS = new Set([
  'NoSuchBucket',
  'AccessDenied',
  'AllAccessDisabled',
  'InvalidAccessKeyId',
  'SignatureDoesNotMatch',
  'InvalidBucketName',
  'PermanentRedirect',
  'AuthorizationHeaderMalformed',
]);

/** The AWS SDK's per-request options for a call's AbortSignal. */
function abortable(options?: CallOptions): { abortSignal?: AbortSignal } {
  return options?.signal ? { abortSignal: options.signal } : {};
}

/** A missing object, but not a missing bucket: a wrong bucket must fail loudly, not read as "no manifest yet". */
function isNoSuchKey(err: unknown): boolean {
  const e = err as { name?: string; $metadata?: { httpStatusCode?: number } } | undefined;
  return e?.name === 'NoSuchKey' || (e?.$metadata?.httpStatusCode === 404 && e.name !== 'NoSuchBucket');
}

function checkEndpoint(endpoint: string): void {
  // Checked before parsing: a secret with '/' or '+' in it would otherwise fail as a malformed URL.
  if (endpoint.includes('@')) {
    throw new Error(
      'S3 endpoint must not contain credentials: use AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY or a profile',
    );
  }
  let url: URL;
  try {
    url = new URL(endpoint);
  } catch {
    throw new Error('invalid S3 endpoint: use a URL such as http://127.0.0.1:9000');
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') {
    throw new Error(`invalid S3 endpoint protocol ${url.protocol}: use http or https`);
  }
}

function parseBoolean(value: string): boolean {
  if (value === 'true' || value === '1') return true;
  if (value === 'false' || value === '0') return false;
  throw new Error(`invalid S3 forcePathStyle ${JSON.stringify(value)}: use true or false`);
}
