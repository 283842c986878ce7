import { readdirSync, readFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { ApplicationFailure } from '@temporalio/common';
import { MockActivityEnvironment } from '@temporalio/testing';
import { createActivities } from '../../activities';
import { AggregatesCache } from '../../lib/arrow/aggregates-cache';
import { ModelSessionCache } from '../../lib/models/model-sessions';
import { classify, ERROR_CLASSES, NON_RETRYABLE_ERROR_TYPES, toApplicationFailure } from '../../lib/shared/error-types';
import {
  FleetscoreError,
  InvalidModel,
  InvalidWindow,
  ModelNotFound,
  ObjectNotFound,
  S3RequestFailed,
  S3RequestRefused,
} from '../../lib/shared/errors';
import { LocalStore } from '../../lib/store/local-store';
import type { StoredObject } from '../../lib/store/object-store';

const ROOT = join(__dirname, '..', '..');

/**
 * How every error class is classified. Adding a class makes this test fail until its consequence is written here:
 * that is the point (a new error cannot silently become a retryable shard failure).
 */
const EXPECTED: Record<string, { scope: 'device' | 'run'; retryable: boolean }> = {
  InvalidPathSegment: { scope: 'device', retryable: false },
  InvalidAggregates: { scope: 'device', retryable: false },
  InvalidModel: { scope: 'device', retryable: false },
  ModelChecksumMismatch: { scope: 'device', retryable: false },
  ModelNotFound: { scope: 'device', retryable: false },
  ModelOutputMismatch: { scope: 'device', retryable: false },
  ModelSessionFailed: { scope: 'device', retryable: false },
  ModelInferenceFailed: { scope: 'device', retryable: false },
  UnsupportedGraph: { scope: 'device', retryable: false },
  InvalidInput: { scope: 'run', retryable: false },
  InvalidConfig: { scope: 'run', retryable: false },
  InvalidWindow: { scope: 'run', retryable: false },
  WindowNotComplete: { scope: 'run', retryable: false },
  InputMissing: { scope: 'run', retryable: false },
  InvalidKey: { scope: 'run', retryable: false },
  InvalidPlan: { scope: 'run', retryable: false },
  InvalidModelIndex: { scope: 'run', retryable: false },
  ModelVersionExists: { scope: 'run', retryable: false },
  InvalidModelSource: { scope: 'run', retryable: false },
  ModelSourceUnreadable: { scope: 'run', retryable: false },
  InvalidPredictions: { scope: 'run', retryable: false },
  CudaUnavailable: { scope: 'run', retryable: false },
  PoolUnavailable: { scope: 'run', retryable: false },
  InvalidScheduleFile: { scope: 'run', retryable: false },
  InvalidScheduleDeclaration: { scope: 'run', retryable: false },
  InvalidArguments: { scope: 'run', retryable: false },
  ObjectNotFound: { scope: 'run', retryable: true },
  StoreContended: { scope: 'run', retryable: true },
  S3RequestFailed: { scope: 'run', retryable: true },
  GpuResourcesExhausted: { scope: 'run', retryable: true },
  S3RequestRefused: { scope: 'run', retryable: false },
  TemporalUnreachable: { scope: 'run', retryable: true },
};

/** Every .ts file under the source folders (not tests: test doubles may define their own errors). */
function sourceFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) => {
    const path = join(dir, e.name);
    if (e.isDirectory()) return e.name === 'node_modules' ? [] : sourceFiles(path);
    return e.name.endsWith('.ts') ? [path] : [];
  });
}

describe('the error model', () => {
  it('classifies every error class by its base class', () => {
    const actual = Object.fromEntries(ERROR_CLASSES.map((c) => [c.name, classify(c)]));
    expect(actual).toEqual(EXPECTED);
  });

  it('lists exactly the classes a retry cannot fix as non-retryable failure types', () => {
    const expected = Object.entries(EXPECTED)
      .filter(([, c]) => !c.retryable)
      .map(([name]) => name);
    expect([...NON_RETRYABLE_ERROR_TYPES].sort()).toEqual(expected.sort());
  });

  it('defines every error class in lib/shared/errors.ts, where the classification sees it', () => {
    const folders = ['lib', 'activities', 'workers', 'workflows', 'schedules', 'cli', 'bench', 'scripts'];
    const elsewhere = folders
      .flatMap((f) => sourceFiles(join(ROOT, f)))
      .filter((file) => !file.endsWith(join('lib', 'shared', 'errors.ts')))
      .flatMap((file) =>
        [...readFileSync(file, 'utf8').matchAll(/class (\w+) extends (\w*Error|\w*Mismatch|\w*Failed)\b/g)].map(
          (m) => `${relative(ROOT, file)}: ${m[1]} extends ${m[2]}`,
        ),
      );
    expect(elsewhere).toEqual([]);
  });

  it('names an error after its class and keeps its context', () => {
    const err = new InvalidModel('bad graph', { device: 'pump-1', file: 'models/pump-1/v0001/model.onnx', field: 'x' });
    expect(err).toBeInstanceOf(FleetscoreError);
    expect(err).toMatchObject({ name: 'InvalidModel', device: 'pump-1', field: 'x', scope: 'device' });
    expect(new ModelNotFound('pump-2', 'models/pump-2/v0003/model.json')).toMatchObject({
      name: 'ModelNotFound',
      device: 'pump-2',
      file: 'models/pump-2/v0003/model.json',
      field: 'version',
    });
  });

  it('carries the class name and retryability across the workflow boundary', () => {
    const permanent = toApplicationFailure(new InvalidWindow('not a window: "x"', 'x'));
    expect(permanent).toBeInstanceOf(ApplicationFailure);
    expect(permanent).toMatchObject({ type: 'InvalidWindow', nonRetryable: true, message: 'not a window: "x"' });
    const transient = toApplicationFailure(new S3RequestFailed('GetObject', 'b', 'k', new Error('socket hang up')));
    expect(transient).toMatchObject({ type: 'S3RequestFailed', nonRetryable: false });
    const refusal = Object.assign(new Error('The specified bucket does not exist'), { name: 'NoSuchBucket' });
    const refused = toApplicationFailure(new S3RequestRefused('GetObject', 'b', 'k', refusal));
    expect(refused).toMatchObject({ type: 'S3RequestRefused', nonRetryable: true });
    expect(refused.message).toBe('S3 GetObject s3://b/k refused: NoSuchBucket: The specified bucket does not exist');
  });
});

describe('activities turn fleetscore errors into typed failures', () => {
  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'fleetscore-errors-'));
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  const activities = (store: LocalStore) =>
    createActivities({
      openStore: () => store,
      sessions: new ModelSessionCache(),
      aggregates: new AggregatesCache(),
    });

  it('fails at once (non-retryable) on input a retry cannot fix', async () => {
    const { planRun } = activities(new LocalStore(dir));
    const failure = await new MockActivityEnvironment()
      .run(planRun, { store: dir, window: '../2026-11-21T12', shardSize: 10 })
      .catch((err: unknown) => err);
    expect(failure).toBeInstanceOf(ApplicationFailure);
    expect(failure).toMatchObject({ type: 'InvalidWindow', nonRetryable: true });
  });

  it('lets Temporal retry what the environment failed', async () => {
    // A store whose listing fails the way a store outage does (the real outages are in the fault suite).
    class FailingStore extends LocalStore {
      override listObjects(prefix: string): Promise<StoredObject[]> {
        return Promise.reject(new ObjectNotFound(this.uri, prefix));
      }
    }
    const { planRun } = activities(new FailingStore(dir));
    const failure = await new MockActivityEnvironment()
      .run(planRun, { store: dir, window: '2026-11-21T12', shardSize: 10 })
      .catch((err: unknown) => err);
    expect(failure).toMatchObject({ type: 'ObjectNotFound', nonRetryable: false });
  });
});
