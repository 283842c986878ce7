import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { onnx } from 'onnx-proto';
import { fleetscore, STACK_TRACE } from '../support/fleetscore-cli';
import { writeModelFolder } from '../support/model-files';
import { sklearnFixture } from '../support/sklearn-cases';

jest.setTimeout(120_000);

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'fleetscore-models-cli-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

async function listed(store: string): Promise<string[]> {
  const list = await fleetscore(['models', 'list', '--store', store, '--json']);
  return (JSON.parse(list.stdout) as { device: string }[]).map((m) => m.device);
}

describe('fleetscore models register --device --file', () => {
  /** A fixture's model.json as a user writes it (without what registration assigns), in a file of its own. */
  async function metaFile(fixture: string): Promise<string> {
    const { schema: _s, sha256: _h, ...meta } = JSON.parse(sklearnFixture(fixture, 'model.json').toString('utf8'));
    const file = join(dir, `${fixture}.model.json`);
    await writeFile(file, JSON.stringify(meta));
    return file;
  }

  it('says which fast path will score the model, and why none when a session will', async () => {
    const store = join(dir, 'one-store');
    const onnxFile = join(dir, 'pipeline.onnx');
    await writeFile(onnxFile, sklearnFixture('ocsvm-pipeline', 'model.onnx'));
    const meta = await metaFile('ocsvm-pipeline');
    const ok = await fleetscore([
      'models',
      'register',
      '--device',
      'p-1',
      '--file',
      onnxFile,
      '--meta',
      meta,
      '--store',
      store,
    ]);
    expect(ok.stderr).not.toMatch(STACK_TRACE);
    expect(ok.code).toBe(0);
    expect(ok.stdout).toMatch(
      /^registered p-1 v0001 \(pool cpu, sha256 [0-9a-f]{12}\) in .*\nscored by compiled:svm$/m,
    );

    // The autoencoder with Sin instead of Tanh: no compiled operator for it.
    const model = onnx.ModelProto.decode(sklearnFixture('autoencoder', 'model.onnx'));
    model.graph!.node!.find((n) => n.opType === 'Tanh')!.opType = 'Sin';
    const sinFile = join(dir, 'sin.onnx');
    await writeFile(sinFile, onnx.ModelProto.encode(model).finish());
    const args = ['models', 'register', '--device', 'ae-1', '--file', sinFile, '--meta', await metaFile('autoencoder')];
    const session = await fleetscore([...args, '--store', store]);
    expect(session.code).toBe(0);
    expect(session.stdout).toContain(
      'scored by its own onnxruntime session, not a compiled fast path (UnsupportedGraph: operator ai.onnx.Sin)',
    );
    const json = await fleetscore([...args, '--store', store, '--json']);
    expect(JSON.parse(json.stdout)).toMatchObject({
      device: 'ae-1',
      version: 'v0002',
      path: 'session',
      pathReason: 'UnsupportedGraph: operator ai.onnx.Sin',
    });
  });

  it('refuses a model that no fast path compiles and onnxruntime cannot load, writing nothing', async () => {
    const store = join(dir, 'unloadable-store');
    // An operator onnxruntime does not have: before this check it registered, then failed its device every hour.
    const model = onnx.ModelProto.decode(sklearnFixture('autoencoder', 'model.onnx'));
    model.graph!.node!.find((n) => n.opType === 'Tanh')!.opType = 'Tanhh';
    const file = join(dir, 'tanhh.onnx');
    await writeFile(file, onnx.ModelProto.encode(model).finish());
    const meta = await metaFile('autoencoder');
    const args = ['models', 'register', '--device', 'ae-9', '--file', file, '--meta', meta, '--store', store];
    const refused = await fleetscore(args);
    expect(refused.stderr).not.toMatch(STACK_TRACE);
    expect(refused.code).not.toBe(0);
    expect(refused.stderr).toMatch(
      /^fleetscore: tanhh\.onnx: onnxruntime cannot create a session: .*No Op registered for Tanhh/,
    );
    // Nothing was written for the device: its first good model is v0001.
    await writeFile(file, sklearnFixture('autoencoder', 'model.onnx'));
    const ok = await fleetscore([...args, '--json']);
    expect(JSON.parse(ok.stdout)).toMatchObject({ device: 'ae-9', version: 'v0001', path: 'compiled:mlp' });
  });
});

describe('fleetscore models register --dir / --list', () => {
  it('says which paths the fleet takes, and why some models need a session of their own', async () => {
    const fleet = join(dir, 'mixed');
    const sin = onnx.ModelProto.decode(sklearnFixture('autoencoder', 'model.onnx'));
    sin.graph!.node!.find((n) => n.opType === 'Tanh')!.opType = 'Sin';
    const models: [string, string, Uint8Array?][] = [
      ['svm-1', 'ocsvm-pipeline'],
      ['svm-2', 'ocsvm-pipeline'],
      ['forest-1', 'isoforest'],
      ['ae-1', 'autoencoder', onnx.ModelProto.encode(sin).finish()],
      ['ae-2', 'autoencoder', onnx.ModelProto.encode(sin).finish()],
    ];
    for (const [device, fixture, bytes] of models) {
      await mkdir(join(fleet, device), { recursive: true });
      await writeFile(join(fleet, device, 'model.onnx'), bytes ?? sklearnFixture(fixture, 'model.onnx'));
      const { schema: _s, sha256: _h, ...meta } = JSON.parse(sklearnFixture(fixture, 'model.json').toString('utf8'));
      await writeFile(join(fleet, device, 'model.json'), JSON.stringify(meta));
    }
    const store = join(dir, 'mixed-store');
    const result = await fleetscore(['models', 'register', '--dir', fleet, '--store', store]);
    expect(result.stderr).not.toMatch(STACK_TRACE);
    expect(result.code).toBe(0);
    expect(result.stdout).toContain(
      'scored by compiled:svm 2, session 2, compiled:tree-ensemble 1; on their own onnxruntime session, not a ' +
        'compiled fast path, each costing a session per device',
    );
    expect(result.stdout).toMatch(/\n  2 like ae-[12]: UnsupportedGraph: operator ai\.onnx\.Sin\n/);

    // Two models of one kind that onnxruntime cannot load: each refused by its own name, the index not moved.
    const broken = join(dir, 'broken');
    const tanhh = onnx.ModelProto.decode(sklearnFixture('autoencoder', 'model.onnx'));
    tanhh.graph!.node!.find((n) => n.opType === 'Tanh')!.opType = 'Tanhh';
    for (const device of ['bad-1', 'bad-2', 'good-1']) {
      await mkdir(join(broken, device), { recursive: true });
      const bytes = device.startsWith('bad')
        ? onnx.ModelProto.encode(tanhh).finish()
        : sklearnFixture('autoencoder', 'model.onnx');
      await writeFile(join(broken, device, 'model.onnx'), bytes);
      const {
        schema: _s,
        sha256: _h,
        ...meta
      } = JSON.parse(sklearnFixture('autoencoder', 'model.json').toString('utf8'));
      await writeFile(join(broken, device, 'model.json'), JSON.stringify(meta));
    }
    const refused = await fleetscore(['models', 'register', '--dir', broken, '--store', store]);
    expect(refused.code).toBe(1);
    expect(refused.stdout).toMatch(/2 of 3 models failed, so the index was not moved/);
    for (const device of ['bad-1', 'bad-2'])
      expect(refused.stdout).toMatch(
        new RegExp(`${device}: .*model\\.onnx: onnxruntime cannot create a session: .*Tanhh`),
      );
  });

  it('registers a folder of models with one index move, and refuses a fleet with a misspelled key by name', async () => {
    const store = join(dir, 'store');
    const good = join(dir, 'good');
    for (const d of ['pump-1', 'pump-2', 'pump-3']) await writeModelFolder(good, d);
    const ok = await fleetscore(['models', 'register', '--dir', good, '--store', store]);
    expect(ok.stderr).not.toMatch(STACK_TRACE);
    expect([ok.code, ok.stdout.trim()]).toEqual([
      0,
      'registered 3 models; the index now points at them\nscored by stacked-mahalanobis 3',
    ]);
    expect(await listed(store)).toEqual(['pump-1', 'pump-2', 'pump-3']);

    const bad = join(dir, 'bad');
    await writeModelFolder(bad, 'pump-4');
    await writeModelFolder(bad, 'pump-5', { preprocesing: { type: 'none' } });
    const refused = await fleetscore(['models', 'register', '--dir', bad, '--store', store]);
    expect(refused.code).toBe(1);
    expect(refused.stdout).toMatch(/1 of 2 models failed, so the index was not moved/);
    expect(refused.stdout).toMatch(
      /pump-5: .*model\.json: preprocesing: unknown key "preprocesing"; did you mean "preprocessing"\?/,
    );
    expect(await listed(store)).toEqual(['pump-1', 'pump-2', 'pump-3']);

    await writeFile(join(dir, 'list.csv'), 'device,file\npump-4,bad/pump-4\n');
    const fromList = await fleetscore([
      'models',
      'register',
      '--list',
      join(dir, 'list.csv'),
      '--store',
      store,
      '--json',
    ]);
    expect(fromList.code).toBe(0);
    expect(JSON.parse(fromList.stdout)).toMatchObject({ registered: 1, failed: [], indexMoved: true });
    expect(await listed(store)).toEqual(['pump-1', 'pump-2', 'pump-3', 'pump-4']);
  });

  it('names the arguments that do not fit together', async () => {
    const both = await fleetscore(['models', 'register', '--dir', dir, '--device', 'x', '--file', 'm.onnx']);
    expect(both.code).toBe(1);
    expect(both.stderr).toMatch(/give --device with --file, or --dir, or --list/);
    const metaWithDir = await fleetscore(['models', 'register', '--dir', dir, '--meta', 'm.json']);
    expect(metaWithDir.stderr).toMatch(/--meta: is for one model/);
  });
});
