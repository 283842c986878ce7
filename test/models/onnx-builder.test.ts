import { onnx } from 'onnx-proto';
import { InferenceSession, Tensor } from 'onnxruntime-node';
import { buildMahalanobisModel } from '../../lib/models/onnx-builder';
import { random, spd } from '../support/random';

function mahalanobis(x: readonly number[], mean: readonly number[], p: readonly (readonly number[])[]): number {
  const d = x.map((v, i) => v - mean[i]!);
  let sum = 0;
  for (let i = 0; i < d.length; i++) for (let j = 0; j < d.length; j++) sum += d[i]! * p[i]![j]! * d[j]!;
  return sum;
}

describe('buildMahalanobisModel', () => {
  it('scores every row with (x-mean)ᵀ·P·(x-mean), matching a float64 computation', async () => {
    const rand = random(42);
    const k = 5;
    const rows = 64;
    const mean = Array.from({ length: k }, () => rand() * 10 - 5);
    const precision = spd(k, rand);
    const x = Array.from({ length: rows }, () => mean.map((m) => m + (rand() * 2 - 1) * 3));
    // Compare against the rows as float32 sees them, so the only difference is float32 arithmetic in the graph.
    const x32 = new Float32Array(x.flat());
    const expected = x.map((_, r) => mahalanobis(Array.from(x32.subarray(r * k, (r + 1) * k)), mean, precision));

    const session = await InferenceSession.create(buildMahalanobisModel({ mean, precision }));
    try {
      expect(session.inputNames).toEqual(['X']);
      expect(session.outputNames).toEqual(['score']);
      const out = (await session.run({ X: new Tensor('float32', x32, [rows, k]) })).score!;
      expect(out.type).toBe('float32');
      expect(out.dims).toEqual([rows]);
      const got = Array.from(out.data as Float32Array);
      got.forEach((g, i) => expect(Math.abs(g - expected[i]!)).toBeLessThanOrEqual(1e-4 * Math.max(1, expected[i]!)));
    } finally {
      await session.release();
    }
  });

  it('writes IR 8, opset 13, producer fleetscore, standard operators and a dynamic batch dimension', () => {
    const precision = [
      [1, 0],
      [0, 1],
    ];
    const bytes = buildMahalanobisModel({ mean: [1, 2], precision, inputName: 'feat', outputName: 'd2' });
    const model = onnx.ModelProto.decode(bytes);
    expect(Number(model.irVersion)).toBe(8);
    expect(model.opsetImport.map((o) => [o.domain, Number(o.version)])).toEqual([['', 13]]);
    expect(model.producerName).toBe('fleetscore');
    expect(model.graph!.node!.map((n) => n.opType)).toEqual(['Sub', 'MatMul', 'Mul', 'ReduceSum']);
    const input = model.graph!.input![0]!;
    expect(input.name).toBe('feat');
    expect(input.type!.tensorType!.shape!.dim!.map((d) => d.dimParam || Number(d.dimValue))).toEqual(['N', 2]);
    expect(model.graph!.output!.map((o) => o.name)).toEqual(['d2']);
  });

  it('rejects a precision matrix that does not match the mean, and non-finite values', () => {
    expect(() => buildMahalanobisModel({ mean: [0, 0], precision: [[1, 0, 0]] })).toThrow(RangeError);
    expect(() => buildMahalanobisModel({ mean: [], precision: [] })).toThrow(RangeError);
    expect(() => buildMahalanobisModel({ mean: [Number.NaN], precision: [[1]] })).toThrow(/finite/);
  });
});
