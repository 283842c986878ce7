import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { InferenceSession } from 'onnxruntime-node';
import { onnx } from 'onnx-proto';
import { Header, type HeaderData } from 'tar';
import { keys } from '../../lib/shared/keys';
import { readIndex } from '../../lib/models/model-index';
import { registerModelPackage } from '../../lib/models/model-package';
import { readModelMeta, registerModel, sha256Hex, type ModelMetaInput } from '../../lib/models/model-registry';
import { buildMahalanobisModel } from '../../lib/models/onnx-builder';
import { MAX_IR_VERSION, MAX_OPSETS } from '../../lib/models/onnx-graph-check';
import { LocalStore } from '../../lib/store/local-store';
import { sklearnFixture } from '../support/sklearn-cases';
import { withListing } from '../support/store-view';
import {
  InvalidModel,
  InvalidModelIndex,
  InvalidPathSegment,
  ModelChecksumMismatch,
  ModelNotFound,
  ModelVersionExists,
} from '../../lib/shared/errors';

const identity3 = [
  [1, 0, 0],
  [0, 1, 0],
  [0, 0, 1],
];
const model = buildMahalanobisModel({ mean: [0, 0, 0], precision: identity3 });
const otherModel = buildMahalanobisModel({ mean: [1, 1, 1], precision: identity3 });
const meta: ModelMetaInput = {
  pool: 'cpu',
  features: ['a', 'b', 'c'],
  input: { name: 'X' },
  output: { name: 'score' },
  anomalyWhen: 'above',
  threshold: 9,
};

/** A tar.gz built member by member with tar's Header, so tests can write what tar.create would refuse to. */
function tarGz(members: { header: HeaderData; body?: Uint8Array | string }[]): Uint8Array {
  const blocks: Buffer[] = [];
  for (const { header, body = '' } of members) {
    const data = Buffer.from(body);
    const h = new Header({ mode: 0o644, mtime: new Date(0), size: data.length, type: 'File', ...header });
    h.encode();
    blocks.push(h.block!, data, Buffer.alloc((512 - (data.length % 512)) % 512));
  }
  blocks.push(Buffer.alloc(1024));
  return new Uint8Array(gzipSync(Buffer.concat(blocks)));
}

/** The error a promise rejects with; fails the test when it resolves. */
async function rejection<T = Error>(promise: Promise<unknown>): Promise<T> {
  return promise.then(
    () => {
      throw new Error('expected a rejection');
    },
    (err: unknown) => err as T,
  );
}

const packagedMeta = JSON.stringify({ schema: 'fleetscore.model/v1', ...meta, sha256: sha256Hex(model) });

let dir: string;
let store: LocalStore;
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'fleetscore-registry-'));
  store = new LocalStore(dir);
});
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe('readIndex', () => {
  it('is empty on a fresh store', async () => {
    await expect(readIndex(store)).resolves.toEqual({ schema: 'fleetscore.index/v1', devices: {} });
  });

  it('names the key on invalid JSON and the field on a schema violation', async () => {
    await store.put(keys.modelIndex(), '{not json');
    const bad = await rejection(readIndex(store));
    expect(bad).toBeInstanceOf(InvalidModelIndex);
    expect((bad as InvalidModelIndex).file).toBe('models/index.json');
    expect(bad.message).toMatch(/^models\/index\.json: invalid JSON/);

    const index = { schema: 'fleetscore.index/v1', devices: { p1: { pool: 'cpu' } } };
    await store.put(keys.modelIndex(), JSON.stringify(index));
    const invalid = await rejection<InvalidModelIndex>(readIndex(store));
    expect(invalid).toBeInstanceOf(InvalidModelIndex);
    expect(invalid.field).toBe('devices.p1.version');
    expect(invalid.device).toBe('p1');
    expect(invalid.message).toContain('models/index.json: devices.p1.version');
  });

  it('parses unchanged bytes once, and leaves an index it returned alone when a registration moves it', async () => {
    await registerModel(store, { device: 'pump-1', onnx: model, meta });
    const first = await readIndex(store);
    expect(await readIndex(store)).toBe(first);
    await registerModel(store, { device: 'pump-2', onnx: model, meta });
    const second = await readIndex(store);
    expect(second).not.toBe(first);
    expect(Object.keys(second.devices)).toEqual(['pump-1', 'pump-2']);
    expect(Object.keys(first.devices)).toEqual(['pump-1']);
  });

  it('rejects an index naming an unsafe device id', async () => {
    const entry = { version: 'v0001', pool: 'cpu', sha256: sha256Hex(model) };
    await store.put(keys.modelIndex(), JSON.stringify({ schema: 'fleetscore.index/v1', devices: { '../etc': entry } }));
    await expect(readIndex(store)).rejects.toThrow(InvalidModelIndex);
  });
});

describe('registerModel', () => {
  it('assigns increasing immutable versions and points the index at the newest', async () => {
    const first = await registerModel(store, { device: 'pump-1', onnx: model, meta });
    expect(first).toEqual({ device: 'pump-1', version: 'v0001', sha256: sha256Hex(model), pool: 'cpu' });
    const second = await registerModel(store, { device: 'pump-1', onnx: otherModel, meta: { ...meta, pool: 'gpu' } });
    expect(second.version).toBe('v0002');
    await registerModel(store, { device: 'pump-2', onnx: model, meta });

    const index = await readIndex(store);
    expect(index.devices).toEqual({
      'pump-1': { version: 'v0002', pool: 'gpu', sha256: sha256Hex(otherModel) },
      'pump-2': { version: 'v0001', pool: 'cpu', sha256: sha256Hex(model) },
    });
    // The first version is untouched by the second.
    expect(await store.get(keys.modelOnnx('pump-1', 'v0001'))).toEqual(model);
    const m1 = await readModelMeta(store, 'pump-1', 'v0001');
    expect(m1).toMatchObject({ device: 'pump-1', version: 'v0001', sha256: sha256Hex(model) });
    expect(m1.schema).toBe('fleetscore.model/v1');
    expect(m1.preprocessing).toEqual({ type: 'none' });
    expect(Number.isNaN(Date.parse(m1.createdAt))).toBe(false);
  });

  it('refuses to overwrite a version that already exists', async () => {
    await registerModel(store, { device: 'pump-1', onnx: model, meta });
    // A listing that misses v0001 (a concurrent writer, an eventually consistent listing) must not clobber it.
    const staleListing = withListing(store, { list: async () => [], listObjects: async () => [] });
    const racing = registerModel(staleListing, { device: 'pump-1', onnx: otherModel, meta });
    const err = await rejection<ModelVersionExists>(racing);
    expect(err).toBeInstanceOf(ModelVersionExists);
    expect(err.device).toBe('pump-1');
    expect(err.file).toBe('models/pump-1/v0001/model.onnx');
    expect(await store.get(keys.modelOnnx('pump-1', 'v0001'))).toEqual(model);
  });

  it('rejects bytes that are not ONNX, naming the file', async () => {
    const notOnnx = [
      new TextEncoder().encode('not a model'),
      new Uint8Array([0xff, 0xff]),
      new Uint8Array(),
      model.subarray(0, model.length - 5),
    ];
    for (const bytes of notOnnx) {
      const err = await rejection<InvalidModel>(registerModel(store, { device: 'pump-1', onnx: bytes, meta }));
      expect(err).toBeInstanceOf(InvalidModel);
      expect(err.message).toMatch(/^model\.onnx: not an ONNX model \(/);
      expect(err.file).toBe('model.onnx');
      expect(err.device).toBe('pump-1');
    }
    expect(await store.list('models/')).toEqual([]);
  });

  it('rejects an IR version newer than onnxruntime-node loads, saying how to write it', async () => {
    const decoded = onnx.ModelProto.decode(model);
    decoded.irVersion = MAX_IR_VERSION;
    const newest = new Uint8Array(onnx.ModelProto.encode(decoded).finish());
    // The bound is onnxruntime's own: it loads the newest version taken, and refuses the next.
    await expect(InferenceSession.create(newest)).resolves.toBeDefined();
    decoded.irVersion = MAX_IR_VERSION + 1;
    const tooNew = new Uint8Array(onnx.ModelProto.encode(decoded).finish());
    await expect(InferenceSession.create(tooNew)).rejects.toThrow(/Unsupported model IR version/);
    const err = await rejection<InvalidModel>(registerModel(store, { device: 'pump-1', onnx: tooNew, meta }));
    expect(err).toBeInstanceOf(InvalidModel);
    expect(err.message).toMatch(/^model\.onnx: ONNX IR version 14 is newer than onnxruntime-node reads \(13 at most\)/);
    expect(await store.list('models/')).toEqual([]);
    await registerModel(store, { device: 'pump-1', onnx: newest, meta });
  });

  it.each([
    ['ai.onnx', ''],
    ['ai.onnx.ml', 'ai.onnx.ml'],
  ])('rejects an %s opset newer than onnxruntime-node loads', async (name, domain) => {
    const ocsvmMeta = JSON.parse(sklearnFixture('ocsvm', 'model.json').toString('utf8')) as ModelMetaInput & {
      sha256?: string;
    };
    delete ocsvmMeta.sha256;
    const decoded = onnx.ModelProto.decode(sklearnFixture('ocsvm', 'model.onnx'));
    const opset = decoded.opsetImport.find((o) => (o.domain ?? '') === domain)!;
    const withOpset = (version: number) => {
      opset.version = version;
      return new Uint8Array(onnx.ModelProto.encode(decoded).finish());
    };
    // The bound is onnxruntime's own: it loads the newest opset taken, and refuses the next.
    const newest = withOpset(MAX_OPSETS[domain]!);
    await expect(InferenceSession.create(newest)).resolves.toBeDefined();
    const tooNew = withOpset(MAX_OPSETS[domain]! + 1);
    await expect(InferenceSession.create(tooNew)).rejects.toThrow();
    const err = await rejection<InvalidModel>(registerModel(store, { device: 'svm-1', onnx: tooNew, meta: ocsvmMeta }));
    expect(err).toBeInstanceOf(InvalidModel);
    expect(err.message).toContain(
      `model.onnx: opset ${name} ${MAX_OPSETS[domain]! + 1} (${MAX_OPSETS[domain]} at most)`,
    );
    await registerModel(store, { device: 'svm-1', onnx: newest, meta: ocsvmMeta });
  });

  it.each([
    ['input.name', { input: { name: 'features' } }, /has no input "features" \(inputs: X\)/],
    ['output.name', { output: { name: 'label' } }, /has no output "label"/],
    ['output.column', { output: { name: 'score', column: 1 } }, /column 1 does not exist/],
    ['features', { features: ['a', 'b'] }, /takes 3 features, model.json lists 2/],
  ])('rejects a model.json whose %s does not match the graph', async (field, patch, message) => {
    const err = await rejection<InvalidModel>(
      registerModel(store, { device: 'pump-1', onnx: model, meta: { ...meta, ...patch } }),
    );
    expect(err).toBeInstanceOf(InvalidModel);
    expect(err.field).toBe(field);
    expect(err.message).toMatch(message);
    expect(await store.tryGet(keys.modelIndex())).toBeUndefined();
  });

  it('rejects an input other than float32 or float64, naming its type', async () => {
    const decoded = onnx.ModelProto.decode(model);
    decoded.graph!.input![0]!.type!.tensorType!.elemType = onnx.TensorProto.DataType.INT64;
    const ints = new Uint8Array(onnx.ModelProto.encode(decoded).finish());
    const err = await rejection<InvalidModel>(registerModel(store, { device: 'pump-1', onnx: ints, meta }));
    expect(err).toBeInstanceOf(InvalidModel);
    expect(err.field).toBe('input.name');
    expect(err.message).toMatch(/input X must be float32 or float64, not int64/);
  });

  it('rejects an input of a fixed row count (an export without a dynamic first dimension), saying how to export', async () => {
    const decoded = onnx.ModelProto.decode(model);
    decoded.graph!.input![0]!.type!.tensorType!.shape!.dim![0] = { dimValue: 2 };
    const fixed = new Uint8Array(onnx.ModelProto.encode(decoded).finish());
    const err = await rejection<InvalidModel>(registerModel(store, { device: 'pump-1', onnx: fixed, meta }));
    expect(err).toBeInstanceOf(InvalidModel);
    expect(err.field).toBe('input.name');
    expect(err.message).toMatch(/input X has a fixed first dimension of 2: .* dynamic_axes=\{"X": \{0: "N"\}\}/);
    expect(await store.list('models/')).toEqual([]);
  });

  it('rejects an input over sequences of rows ([batch, steps, features], an LSTM), saying what to do instead', async () => {
    const decoded = onnx.ModelProto.decode(model);
    decoded.graph!.input![0]!.type!.tensorType!.shape!.dim = [{ dimParam: 'batch' }, { dimValue: 10 }, { dimValue: 3 }];
    const sequences = new Uint8Array(onnx.ModelProto.encode(decoded).finish());
    const err = await rejection<InvalidModel>(registerModel(store, { device: 'pump-1', onnx: sequences, meta }));
    expect(err).toBeInstanceOf(InvalidModel);
    expect(err.field).toBe('input.name');
    expect(err.message).toMatch(
      /input X is \[batch, 10, 3\]; it must be 2-D \[rows, features\]: a model over sequences/,
    );
    expect(err.message).toMatch(/give such a model its context as features \(lags or rolling means/);
    expect(await store.list('models/')).toEqual([]);
  });

  it("rejects a score output that is not a tensor (skl2onnx's ZipMap), saying how to export", async () => {
    const decoded = onnx.ModelProto.decode(model);
    const int64 = onnx.TensorProto.DataType.INT64;
    const mapType = { keyType: int64, valueType: { tensorType: { elemType: onnx.TensorProto.DataType.FLOAT } } };
    decoded.graph!.output![0]!.type = { sequenceType: { elemType: { mapType } } };
    const zipmap = new Uint8Array(onnx.ModelProto.encode(decoded).finish());
    const err = await rejection<InvalidModel>(registerModel(store, { device: 'pump-1', onnx: zipmap, meta }));
    expect(err).toBeInstanceOf(InvalidModel);
    expect(err.field).toBe('output.name');
    expect(err.message).toMatch(/output score is a sequence, not a tensor .* options=\{"zipmap": False\}/);
    // Naming the probabilities as the docs do, of a model exported with ZipMap on, says the same.
    const named = registerModel(store, {
      device: 'pump-1',
      onnx: zipmap,
      meta: { ...meta, output: { name: 'probabilities' } },
    });
    await expect(named).rejects.toThrow(
      /has no output "probabilities" \(outputs: score\); score is not a tensor .*"zipmap": False/,
    );
    expect(await store.list('models/')).toEqual([]);
  });

  it('rejects a model.json that breaks the schema, naming the field', async () => {
    const bad = { ...meta, anomalyWhen: 'sideways' } as unknown as ModelMetaInput;
    const err = await rejection<InvalidModel>(registerModel(store, { device: 'pump-1', onnx: model, meta: bad }));
    expect(err).toBeInstanceOf(InvalidModel);
    expect(err.field).toBe('anomalyWhen');
    const zeroScale: ModelMetaInput = {
      ...meta,
      preprocessing: { type: 'standardize', mean: [0, 0, 0], scale: [1, 0, 1] },
    };
    await expect(registerModel(store, { device: 'pump-1', onnx: model, meta: zeroScale })).rejects.toMatchObject({
      name: 'InvalidModel',
      field: 'preprocessing.scale',
    });
  });

  it.each([
    ['preprocesing', { preprocesing: { type: 'standardize', mean: [0, 0, 0], scale: [1, 1, 1] } }, 'preprocessing'],
    ['output.colum', { output: { name: 'score', colum: 1 } }, 'column'],
    ['thresold', { thresold: 3 }, 'threshold'],
  ])(
    'refuses an unknown model.json key (%s) by name, with the field it probably meant',
    async (field, patch, meant) => {
      const bad = { ...meta, ...patch } as unknown as ModelMetaInput;
      const err = await rejection<InvalidModel>(registerModel(store, { device: 'pump-1', onnx: model, meta: bad }));
      expect(err).toBeInstanceOf(InvalidModel);
      expect(err.field).toBe(field);
      expect(err.message).toContain(`unknown key "${field.split('.').pop()}"`);
      expect(err.message).toContain(`did you mean "${meant}"?`);
      expect(await store.list('models/')).toEqual([]);
    },
  );

  it('validates the device id before touching the store', async () => {
    for (const device of ['../x', 'a/b', '', '.hidden']) {
      await expect(registerModel(store, { device, onnx: model, meta })).rejects.toThrow(InvalidPathSegment);
    }
  });
});

describe('readModelMeta', () => {
  it('throws ModelNotFound for a missing version', async () => {
    await expect(readModelMeta(store, 'pump-1', 'v0007')).rejects.toMatchObject({
      name: 'ModelNotFound',
      device: 'pump-1',
      file: 'models/pump-1/v0007/model.json',
    });
    await expect(readModelMeta(store, 'pump-1', 'v0007')).rejects.toThrow(ModelNotFound);
  });

  it('rejects a model.json stored under another device', async () => {
    await registerModel(store, { device: 'pump-1', onnx: model, meta });
    await store.put(keys.modelMeta('pump-2', 'v0001'), await store.get(keys.modelMeta('pump-1', 'v0001')));
    await expect(readModelMeta(store, 'pump-2', 'v0001')).rejects.toMatchObject({
      name: 'InvalidModel',
      field: 'device',
    });
  });
  it('refuses a stored model.json with a key it does not know', async () => {
    const { version } = await registerModel(store, { device: 'pump-1', onnx: model, meta });
    const stored = JSON.parse(Buffer.from(await store.get(keys.modelMeta('pump-1', version))).toString()) as object;
    await store.put(keys.modelMeta('pump-1', version), JSON.stringify({ ...stored, scoreScale: 2 }));
    await expect(readModelMeta(store, 'pump-1', version)).rejects.toMatchObject({
      name: 'InvalidModel',
      file: keys.modelMeta('pump-1', version),
      field: 'scoreScale',
    });
  });
});

describe('registerModelPackage', () => {
  it('registers a tar.gz holding model.onnx and model.json, with overrides', async () => {
    const pkg = tarGz([
      { header: { path: './', type: 'Directory', size: 0 } },
      { header: { path: './model.onnx' }, body: model },
      { header: { path: 'model.json' }, body: packagedMeta },
      { header: { path: 'README.md' }, body: 'ignored' },
    ]);
    const result = await registerModelPackage(store, 'pump-1', pkg, 'model.tar.gz', { pool: 'gpu', threshold: 4 });
    expect(result).toEqual({ device: 'pump-1', version: 'v0001', sha256: sha256Hex(model), pool: 'gpu' });
    expect(await readModelMeta(store, 'pump-1', 'v0001')).toMatchObject({ pool: 'gpu', threshold: 4 });
  });

  it('registers a bare .onnx with its model.json given separately, and requires that model.json', async () => {
    await expect(registerModelPackage(store, 'pump-1', model, 'model.onnx')).rejects.toThrow(/needs its model.json/);
    const result = await registerModelPackage(store, 'pump-1', model, 'pump.onnx', { meta: JSON.parse(packagedMeta) });
    expect(result.version).toBe('v0001');
    await expect(registerModelPackage(store, 'pump-1', model, 'model.zip', { meta })).rejects.toThrow(InvalidModel);
  });

  it('verifies a packaged sha256', async () => {
    const wrong = JSON.stringify({ ...meta, sha256: sha256Hex(otherModel) });
    const pkg = tarGz([
      { header: { path: 'model.onnx' }, body: model },
      { header: { path: 'model.json' }, body: wrong },
    ]);
    const err = await rejection<ModelChecksumMismatch>(registerModelPackage(store, 'pump-1', pkg, 'm.tar.gz'));
    expect(err).toBeInstanceOf(ModelChecksumMismatch);
    expect(err).toMatchObject({ device: 'pump-1', file: 'model.onnx', field: 'sha256', actual: sha256Hex(model) });
    expect(await store.list('models/')).toEqual([]);
  });

  it.each([
    ['a .. path', [{ header: { path: '../model.onnx' }, body: model }], /'\.\.' path segment/],
    ['a nested .. path', [{ header: { path: 'a/../../model.json' }, body: packagedMeta }], /'\.\.' path segment/],
    ['an absolute path', [{ header: { path: '/etc/model.onnx' }, body: model }], /absolute path/],
    [
      'a symlink',
      [{ header: { path: 'model.onnx', type: 'SymbolicLink', linkpath: '/etc/passwd', size: 0 } }],
      /SymbolicLink/,
    ],
    ['a hard link', [{ header: { path: 'model.json', type: 'Link', linkpath: 'model.onnx', size: 0 } }], /is a Link/],
    ['a device', [{ header: { path: 'model.onnx', type: 'CharacterDevice', size: 0 } }], /CharacterDevice/],
    ['a member over 256 MiB', [{ header: { path: 'model.onnx', size: 300 * 1024 * 1024 } }], /over the 256 MiB limit/],
    ['a duplicate member', [{ header: { path: './model.json' }, body: '{}' }], /appears twice/],
  ] as const)('rejects a package with %s', async (_what, bad, message) => {
    const good = [
      { header: { path: 'model.onnx' }, body: model },
      { header: { path: 'model.json' }, body: packagedMeta },
    ];
    const pkg = tarGz([...good, ...bad]);
    const err = await rejection<InvalidModel>(registerModelPackage(store, 'pump-1', pkg, 'evil.tar.gz'));
    expect(err).toBeInstanceOf(InvalidModel);
    expect(err.file).toBe('evil.tar.gz');
    expect(err.message).toMatch(message);
    expect(await store.list('models/')).toEqual([]);
  });

  it('never reads, writes or runs the other members of a package: only model.onnx and model.json', async () => {
    const script = '#!/bin/sh\necho pwned > /tmp/fleetscore-pwned\n';
    const pkg = tarGz([
      { header: { path: 'install.sh', mode: 0o755 }, body: script },
      { header: { path: 'model.onnx' }, body: model },
      { header: { path: 'model.py', mode: 0o755 }, body: 'import os; os.system("id")' },
      { header: { path: 'model.pkl' }, body: 'cos\nsystem\n(S"id"\ntR.' },
      { header: { path: 'lib/custom_op.so', mode: 0o755 }, body: '\x7fELF' },
      { header: { path: 'model.json' }, body: packagedMeta },
    ]);
    const result = await registerModelPackage(store, 'pump-1', pkg, 'model.tar.gz');
    expect(result.version).toBe('v0001');
    // Only the model and its metadata are stored; nothing of the other members reaches the store.
    expect(await store.list('')).toEqual([
      'models/index.json',
      'models/pump-1/v0001/model.json',
      'models/pump-1/v0001/model.onnx',
    ]);
    expect(Buffer.from(await store.get('models/pump-1/v0001/model.onnx')).equals(Buffer.from(model))).toBe(true);
    for (const key of await store.list('')) {
      const text = Buffer.from(await store.get(key)).toString('latin1');
      expect(text).not.toContain('pwned');
      expect(text).not.toContain('os.system');
    }
  });

  it('rejects archives without both files, and bytes that are not a tar.gz', async () => {
    const onlyOnnx = tarGz([{ header: { path: 'model.onnx' }, body: model }]);
    await expect(registerModelPackage(store, 'pump-1', onlyOnnx, 'm.tar.gz')).rejects.toMatchObject({
      name: 'InvalidModel',
      field: 'model.json',
      message: expect.stringMatching(/missing model.json/),
    });
    const nested = tarGz([
      { header: { path: 'pkg/model.onnx' }, body: model },
      { header: { path: 'pkg/model.json' }, body: packagedMeta },
    ]);
    await expect(registerModelPackage(store, 'pump-1', nested, 'm.tar.gz')).rejects.toThrow(/at its root/);
    const garbage = new TextEncoder().encode('this is not a tarball at all');
    await expect(registerModelPackage(store, 'pump-1', garbage, 'm.tar.gz')).rejects.toMatchObject({
      name: 'InvalidModel',
      file: 'm.tar.gz',
    });
    const notTar = gzipSync(Buffer.from('x'.repeat(100)));
    await expect(registerModelPackage(store, 'pump-1', notTar, 'm.tgz')).rejects.toThrow(InvalidModel);
  });
});
