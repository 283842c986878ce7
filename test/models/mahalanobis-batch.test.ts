import { graphOpTypes } from '../../lib/models/fast-paths/onnx-reader';
import { MahalanobisBatcher, recognizeMahalanobis } from '../../lib/models/mahalanobis-batch';
import { buildMahalanobisModel, buildStackedMahalanobisModel } from '../../lib/models/onnx-builder';
import { referenceMahalanobis } from '../support/expected-scores';
import { random, spd } from '../support/random';
import { sklearnCases, sklearnFixture } from '../support/sklearn-cases';

describe('recognizeMahalanobis', () => {
  test('reads back the parameters of a model built by buildMahalanobisModel', () => {
    const rnd = random(1);
    const mean = [1.5, -2, 3.25];
    const precision = spd(3, rnd);
    const params = recognizeMahalanobis(
      buildMahalanobisModel({ mean, precision, inputName: 'in', outputName: 'out' }),
      'in',
      'out',
    );
    expect(params?.k).toBe(3);
    expect([...params!.mean]).toEqual(mean.map(Math.fround));
    expect([...params!.precision]).toEqual(precision.flat().map(Math.fround));
  });

  test('reads the graph written in Python with onnx.helper, its constants as raw data (an EllipticEnvelope)', () => {
    // scripts/make-sklearn-fixtures.py, elliptic_envelope_onnx: numpy_helper writes the axes as raw_data.
    const params = recognizeMahalanobis(
      new Uint8Array(sklearnFixture('elliptic-envelope', 'model.onnx')),
      'X',
      'score',
    );
    expect(params?.k).toBe(4);
    const x = sklearnCases('elliptic-envelope').rows;
    const mahalanobis = sklearnCases('elliptic-envelope').decisionFunction;
    x.forEach((row, i) => {
      const got = referenceMahalanobis(row, [...params!.mean], [...params!.precision]);
      expect(Math.abs(got - mahalanobis[i]!)).toBeLessThanOrEqual(1e-4 * (1 + mahalanobis[i]!));
    });
  });

  test('does not recognise other graphs or other names', () => {
    const bytes = buildMahalanobisModel({
      mean: [0, 0],
      precision: [
        [1, 0],
        [0, 1],
      ],
    });
    expect(recognizeMahalanobis(bytes, 'X', 'other')).toBeUndefined();
    expect(recognizeMahalanobis(bytes, 'Y', 'score')).toBeUndefined();
    expect(recognizeMahalanobis(buildStackedMahalanobisModel(), 'X', 'score')).toBeUndefined();
    expect(recognizeMahalanobis(new Uint8Array([1, 2, 3]), 'X', 'score')).toBeUndefined();
  });

  test('rejects a larger graph from its node count, before decoding it', () => {
    const mahalanobis = buildMahalanobisModel({ mean: [0], precision: [[1]] });
    expect(graphOpTypes(mahalanobis, 4)).toEqual(['Sub', 'MatMul', 'Mul', 'ReduceSum']);
    expect(graphOpTypes(mahalanobis, 3)).toBeUndefined();
    const forest = new Uint8Array(sklearnFixture('isoforest', 'model.onnx'));
    expect(graphOpTypes(forest, 4)).toBeUndefined();
    expect(graphOpTypes(forest, 1_000)).toContain('TreeEnsembleRegressor');
    expect(recognizeMahalanobis(forest, 'X', 'scores')).toBeUndefined();
  });
});

describe('MahalanobisBatcher', () => {
  test('scores devices of different K and row counts in stacked calls, matching an independent computation', async () => {
    const rnd = random(7);
    const items = Array.from({ length: 300 }, (_, d) => {
      const k = d % 3 === 0 ? 4 : 8;
      const rows = 1 + (d % 61);
      const mean = Array.from({ length: k }, () => 10 * rnd());
      const precision = spd(k, rnd);
      const params = recognizeMahalanobis(buildMahalanobisModel({ mean, precision }), 'X', 'score')!;
      const x = Float32Array.from({ length: rows * k }, () => 10 * rnd());
      return { params, x, rows };
    });
    const batcher = new MahalanobisBatcher();
    try {
      const scores = await batcher.score(items);
      items.forEach((item, d) => {
        expect(scores[d]).toHaveLength(item.rows);
        for (let r = 0; r < item.rows; r++) {
          const expected = referenceMahalanobis(
            item.x.subarray(r * item.params.k, (r + 1) * item.params.k),
            item.params.mean,
            item.params.precision,
          );
          expect(Math.abs(scores[d]![r]! - expected)).toBeLessThanOrEqual(1e-4 * Math.max(1, Math.abs(expected)));
        }
      });
    } finally {
      await batcher.close();
    }
  });
});
