import { join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { canonicalStoreUri, storeTag } from '../../lib/store/store-uri';
import { runWorkflowId } from '../../lib/temporal/runs';

describe('store identity', () => {
  it('gives every spelling of one store one canonical URI and tag', () => {
    const abs = resolve('some-store');
    const url = pathToFileURL(abs).href;
    expect(canonicalStoreUri('some-store')).toBe(url);
    expect(canonicalStoreUri(abs)).toBe(url);
    expect(canonicalStoreUri(url)).toBe(url);
    expect(canonicalStoreUri('s3://fleet/prod/?endpoint=http://127.0.0.1:9000&forcePathStyle=true')).toBe(
      's3://fleet/prod',
    );
    expect(storeTag('some-store')).toBe(storeTag(url));
    expect(storeTag('some-store')).toMatch(/^[0-9a-f]{8}$/);
  });

  it('names a run by its window and store: two stores, two ids', () => {
    const a = runWorkflowId('s3://fleet/a', '2026-11-21T12');
    expect(a).toMatch(/^fleetscore-2026-11-21T12-[0-9a-f]{8}$/);
    expect(runWorkflowId('s3://fleet/b', '2026-11-21T12')).not.toBe(a);
    expect(runWorkflowId(join('x', 'y'), '2026-11-21T00_24h')).toMatch(/^fleetscore-2026-11-21T00_24h-/);
  });
});
