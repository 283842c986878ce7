/**
 * Operators of the compiled fast path on one-node graphs, against onnxruntime running the same graph: every
 * broadcast of an element-wise operator's operands (either side: a row, a column, a scalar, a full tensor), Gemm
 * with each transpose of A and B, MatMul, LabelEncoder's tables of small and of scattered keys, FeatureVectorizer,
 * Scaler on float and double input, ReduceLogSumExp over either axis, TopK's ties, and Scan (its distance loop and a state carried
 * in either direction). The model fixtures use only some of these layouts.
 */
import { onnx } from 'onnx-proto';
import { InferenceSession, Tensor as OrtTensor } from 'onnxruntime-node';
import { linkProgram } from '../../lib/models/fast-paths/graph-evaluator';
import { compileGraph } from '../../lib/models/fast-paths/graph-program';
import type { ScanParams } from '../../lib/models/fast-paths/scan-op';
import { mlModel, valueInfo } from '../support/onnx-models';
import { random as seeded } from '../support/random';

const ROWS = 5;
const FEATURES = 4;
const random = seeded(7);
const values = (n: number) => Array.from({ length: n }, () => Math.fround(random() * 4 - 2));
const x = new Float32Array(values(ROWS * FEATURES));

/** A graph of one node `op` over the input X [ROWS, FEATURES] and float initializers, output Y. */
function oneNode(
  op: string,
  inputs: (string | { name: string; dims: number[] })[],
  attribute: onnx.IAttributeProto[] = [],
): Uint8Array {
  const initializer = inputs.flatMap((i) =>
    typeof i === 'string'
      ? []
      : [
          {
            name: i.name,
            dims: i.dims,
            dataType: onnx.TensorProto.DataType.FLOAT,
            floatData: values(i.dims.reduce((a, b) => a * b, 1)),
          },
        ],
  );
  const info = (name: string) => ({ name, type: { tensorType: { elemType: onnx.TensorProto.DataType.FLOAT } } });
  const model = onnx.ModelProto.create({
    irVersion: 8,
    opsetImport: [{ domain: '', version: 17 }],
    graph: {
      name: op,
      node: [{ opType: op, input: inputs.map((i) => (typeof i === 'string' ? i : i.name)), output: ['Y'], attribute }],
      initializer,
      input: [info('X')],
      output: [info('Y')],
    },
  });
  return new Uint8Array(onnx.ModelProto.encode(model).finish());
}

/** The graph's Y from the fast path and from onnxruntime, for the input `input` [ROWS, FEATURES]. */
async function both(bytes: Uint8Array, input = x): Promise<{ fast: number[]; ort: number[] }> {
  const fast = linkProgram(compileGraph(bytes, 'X', 'Y')).run(input, ROWS, FEATURES);
  const session = await InferenceSession.create(bytes);
  try {
    const out = await session.run({ X: new OrtTensor('float32', input, [ROWS, FEATURES]) });
    const y = out.Y!;
    expect(fast.dims).toEqual(y.dims);
    return { fast: Array.from(fast.data), ort: Array.from(y.data as Float32Array) };
  } finally {
    await session.release();
  }
}

const close = (got: number[], expected: number[]) => {
  expect(got).toHaveLength(expected.length);
  got.forEach((v, i) => expect(Math.abs(v - expected[i]!)).toBeLessThanOrEqual(1e-6 + 1e-6 * Math.abs(expected[i]!)));
};

describe('element-wise broadcasting', () => {
  const shapes = [[FEATURES], [1, FEATURES], [ROWS, 1], [1], [], [ROWS, FEATURES], [1, 1, FEATURES]];
  it.each(['Sub', 'Div'])('%s of X and a constant of every shape, either side', async (op) => {
    for (const dims of shapes) {
      for (const xFirst of [true, false]) {
        const c = { name: 'C', dims };
        const { fast, ort } = await both(oneNode(op, xFirst ? ['X', c] : [c, 'X']));
        close(fast, ort);
      }
    }
  });
});

describe('Gemm and MatMul', () => {
  it.each([
    [0, 0],
    [0, 1],
    [1, 0],
    [1, 1],
  ])('Gemm transA=%i transB=%i, with a bias row', async (transA, transB) => {
    // A is X [5, 4] or its transpose [4, 5]; B is [K, 3] or [3, K].
    const k = transA ? ROWS : FEATURES;
    const n = 3;
    const attribute = [
      { name: 'transA', type: onnx.AttributeProto.AttributeType.INT, i: transA },
      { name: 'transB', type: onnx.AttributeProto.AttributeType.INT, i: transB },
      { name: 'alpha', type: onnx.AttributeProto.AttributeType.FLOAT, f: 0.5 },
    ];
    const b = { name: 'B', dims: transB ? [n, k] : [k, n] };
    const { fast, ort } = await both(oneNode('Gemm', ['X', b, { name: 'C', dims: [n] }], attribute));
    close(fast, ort);
  });

  it('MatMul of X and a matrix, and of X and a vector', async () => {
    for (const dims of [[FEATURES, 3], [FEATURES]]) {
      const { fast, ort } = await both(oneNode('MatMul', ['X', { name: 'W', dims }]));
      close(fast, ort);
    }
  });
});

describe('LabelEncoder', () => {
  /** X cast to int64, then a LabelEncoder of `keys` to float `values` (default -7). */
  function encoder(keys: number[], values: number[]): Uint8Array {
    return mlModel({
      name: 'encoder',
      node: [
        {
          opType: 'Cast',
          input: ['X'],
          output: ['K'],
          attribute: [{ name: 'to', type: onnx.AttributeProto.AttributeType.INT, i: 7 }],
        },
        {
          opType: 'LabelEncoder',
          domain: 'ai.onnx.ml',
          input: ['K'],
          output: ['Y'],
          attribute: [
            { name: 'keys_int64s', type: onnx.AttributeProto.AttributeType.INTS, ints: keys },
            { name: 'values_floats', type: onnx.AttributeProto.AttributeType.FLOATS, floats: values },
            { name: 'default_float', type: onnx.AttributeProto.AttributeType.FLOAT, f: -7 },
          ],
        },
      ],
      input: [valueInfo('X')],
      output: [valueInfo('Y')],
    });
  }
  // Keys present and absent, below and past either table's range, and negative.
  const input = new Float32Array([
    0, 1, 2, 3, 4, 5, 8, 9, 10, 11, 12, 13, 40, 41, 99, 100, -1, -3, 1e6, 123456, 
  ]); // prettier-ignore

  it('maps small keys (a leaf-id table) as onnxruntime does', async () => {
    const { fast, ort } = await both(encoder([0, 2, 3, 5, 9, 12, 40], [0.5, 1.25, -2, 3.75, 8, 1e-3, 6]), input);
    expect(fast).toEqual(ort);
    expect(fast).toContain(-7);
  });

  it('maps scattered and negative keys as onnxruntime does', async () => {
    const { fast, ort } = await both(encoder([-3, 1, 100, 123456, 1e6], [1, 2, 3, 4, 5]), input);
    expect(fast).toEqual(ort);
    expect(fast.filter((v) => v !== -7)).toHaveLength(5);
  });
});

/** X [ROWS, FEATURES] through `nodes` (ai.onnx `opset`, 17 by default, and ai.onnx.ml 3) to a float output Y. */
function graphOf(nodes: onnx.INodeProto[], opset = 17): Uint8Array {
  const info = (name: string) => ({ name, type: { tensorType: { elemType: onnx.TensorProto.DataType.FLOAT } } });
  const model = onnx.ModelProto.create({
    irVersion: 8,
    opsetImport: [
      { domain: '', version: opset },
      { domain: 'ai.onnx.ml', version: 3 },
    ],
    graph: { name: 'graph', node: nodes, input: [info('X')], output: [info('Y')] },
  });
  return new Uint8Array(onnx.ModelProto.encode(model).finish());
}

const { FLOAT, FLOATS, INT, INTS } = onnx.AttributeProto.AttributeType;

describe('FeatureVectorizer', () => {
  it.each([
    ['float', 1],
    ['double', 11],
    ['int64', 7],
  ])('joins %s inputs, cutting one short and padding one with zeros, as onnxruntime does', async (_, to) => {
    const cast = { opType: 'Cast', input: ['X'], output: ['A'], attribute: [{ name: 'to', type: INT, i: to }] };
    const vectorizer = {
      opType: 'FeatureVectorizer',
      domain: 'ai.onnx.ml',
      input: ['A', 'A', 'A'],
      output: ['Y'],
      attribute: [{ name: 'inputdimensions', type: INTS, ints: [FEATURES, 2, FEATURES + 2] }],
    };
    const { fast, ort } = await both(graphOf([cast, vectorizer]));
    expect(fast).toEqual(ort);
    expect(fast).toHaveLength(ROWS * (2 * FEATURES + 4));
  });
});

describe('Scaler', () => {
  const scaler = (input: string, offset: number[], scale: number[]): onnx.INodeProto => ({
    opType: 'Scaler',
    domain: 'ai.onnx.ml',
    input: [input],
    output: ['Y'],
    attribute: [
      { name: 'offset', type: FLOATS, floats: offset },
      { name: 'scale', type: FLOATS, floats: scale },
    ],
  });
  // Offsets and scales that are not exact in float32 products, as a StandardScaler's mean and 1/std are not.
  const offset = [0.1, -1.7, 3.3333, 1e-3];
  const scale = [1 / 3, 7.1, 0.0123, 1e4];

  it('scales float input per column, and by one value, rounding as onnxruntime does', async () => {
    for (const [o, sc] of [
      [offset, scale],
      [[0.7], [1 / 7]],
    ]) {
      const { fast, ort } = await both(graphOf([scaler('X', o!, sc!)]));
      expect(fast).toEqual(ort);
    }
  });

  it('scales double input in double, rounding once to float as onnxruntime does', async () => {
    const cast = { opType: 'Cast', input: ['X'], output: ['D'], attribute: [{ name: 'to', type: INT, i: 11 }] };
    const { fast, ort } = await both(graphOf([cast, scaler('D', offset, scale)]));
    expect(fast).toEqual(ort);
  });
});

describe('Imputer', () => {
  const imputer = (imputed: number[], replaced?: number): onnx.INodeProto => ({
    opType: 'Imputer',
    domain: 'ai.onnx.ml',
    input: ['X'],
    output: ['Y'],
    attribute: [
      { name: 'imputed_value_floats', type: FLOATS, floats: imputed },
      ...(replaced === undefined ? [] : [{ name: 'replaced_value_float', type: FLOAT, f: replaced }]),
    ],
  });
  // NaN in some cells, a value equal to the replaced one (-1.5) in others, 0 (the default replaced value) in one.
  const holed = x.slice();
  [1, 6, 11].forEach((i) => (holed[i] = NaN));
  [2, 13].forEach((i) => (holed[i] = -1.5));
  holed[17] = 0;

  it('replaces NaN (as a SimpleImputer exports) per column and by one value, and a replaced value or 0', async () => {
    for (const [imputed, replaced] of [
      [[0.25, -3, 7.5, 1 / 3], NaN],
      [[4.2], NaN],
      [[0.25, -3, 7.5, 1 / 3], -1.5],
      [[9], undefined],
    ] as const) {
      const { fast, ort } = await both(graphOf([imputer([...imputed], replaced)]), holed);
      expect(fast).toEqual(ort);
    }
  });
});

describe('ReduceLogSumExp', () => {
  const lse = (axes: number[], keepdims: number): onnx.INodeProto => ({
    opType: 'ReduceLogSumExp',
    input: ['Z'],
    output: ['Y'],
    attribute: [
      { name: 'axes', type: INTS, ints: axes },
      { name: 'keepdims', type: INT, i: keepdims },
    ],
  });
  // X times 100: exp of values this large overflows float32 unless the largest is taken out first.
  const times100 = {
    opType: 'Mul',
    input: ['X', 'C'],
    output: ['Z'],
  };
  const graph = (node: onnx.INodeProto) => {
    const model = onnx.ModelProto.decode(graphOf([times100, node]));
    model.graph!.initializer = [{ name: 'C', dims: [], dataType: onnx.TensorProto.DataType.FLOAT, floatData: [100] }];
    return new Uint8Array(onnx.ModelProto.encode(model).finish());
  };

  it.each([
    [[1], 0],
    [[1], 1],
    [[0], 1],
    [[-1], 0],
  ])('over axes %j (keepdims %i) as onnxruntime, for values whose exp overflows float32', async (axes, keepdims) => {
    const { fast, ort } = await both(graph(lse(axes, keepdims)));
    expect(fast.every(Number.isFinite)).toBe(true);
    close(fast, ort);
  });
});

describe('layers of exported autoencoders', () => {
  const node = (opType: string, attribute: onnx.IAttributeProto[] = [], input = ['X']): onnx.INodeProto => ({
    opType,
    input,
    output: ['Y'],
    attribute,
  });
  const f = (name: string, value: number) => ({ name, type: onnx.AttributeProto.AttributeType.FLOAT, f: value });

  it.each([
    ['LeakyRelu', [f('alpha', 0.1)]],
    ['Elu', [f('alpha', 0.7)]],
    ['Selu', []],
    ['Celu', [f('alpha', 1.3)]],
    ['HardSigmoid', [f('alpha', 0.3), f('beta', 0.4)]],
    ['HardSwish', []],
    ['Softplus', []],
    ['Softsign', []],
    ['ThresholdedRelu', [f('alpha', 0.5)]],
    ['Erf', []],
  ] as const)('%s as onnxruntime computes it', async (op, attribute) => {
    const { fast, ort } = await both(graphOf([node(op, [...attribute])]));
    close(fast, ort);
    expect(new Set(fast).size).toBeGreaterThan(ROWS);
  });

  it('Erf far into both tails, and GELU written with it as torch exports it', async () => {
    const wide = new Float32Array(values(ROWS * FEATURES).map((v) => Math.fround(v * 3.5)));
    const gelu = graphOf([
      { opType: 'Div', input: ['X', 'SQRT2'], output: ['A'] },
      { opType: 'Erf', input: ['A'], output: ['B'] },
      { opType: 'Add', input: ['B', 'ONE'], output: ['C'] },
      { opType: 'Mul', input: ['X', 'C'], output: ['D'] },
      { opType: 'Mul', input: ['D', 'HALF'], output: ['Y'] },
    ]);
    const model = onnx.ModelProto.decode(gelu);
    const scalar = (name: string, v: number) => ({ name, dims: [], dataType: 1, floatData: [v] });
    model.graph!.initializer = [scalar('SQRT2', Math.SQRT2), scalar('ONE', 1), scalar('HALF', 0.5)];
    const { fast, ort } = await both(new Uint8Array(onnx.ModelProto.encode(model).finish()), wide);
    close(fast, ort);
  });

  it.each(['none', 'tanh'])('Gelu (opset 20), approximate %s', async (approximate) => {
    const attribute = [
      { name: 'approximate', type: onnx.AttributeProto.AttributeType.STRING, s: Buffer.from(approximate) },
    ];
    const { fast, ort } = await both(graphOf([node('Gelu', attribute)], 20));
    close(fast, ort);
  });

  it('PRelu with a slope per column', async () => {
    const model = onnx.ModelProto.decode(graphOf([node('PRelu', [], ['X', 'S'])]));
    model.graph!.initializer = [{ name: 'S', dims: [FEATURES], dataType: 1, floatData: [0.1, 0.2, -0.3, 2] }];
    const { fast, ort } = await both(new Uint8Array(onnx.ModelProto.encode(model).finish()));
    close(fast, ort);
  });

  it('BatchNormalization with running statistics, on [N, C] and on [N, C, D]', async () => {
    const stats = (c: number) => [
      { name: 'G', dims: [c], dataType: 1, floatData: values(c).map((v) => v + 2.5) },
      { name: 'B', dims: [c], dataType: 1, floatData: values(c) },
      { name: 'M', dims: [c], dataType: 1, floatData: values(c) },
      { name: 'V', dims: [c], dataType: 1, floatData: values(c).map((v) => v * v + 0.1) },
    ];
    const bn = (input: string): onnx.INodeProto => ({
      opType: 'BatchNormalization',
      input: [input, 'G', 'B', 'M', 'V'],
      output: ['Y'],
      attribute: [f('epsilon', 1e-3)],
    });
    const flat = onnx.ModelProto.decode(graphOf([bn('X')]));
    flat.graph!.initializer = stats(FEATURES);
    const { fast, ort } = await both(new Uint8Array(onnx.ModelProto.encode(flat).finish()));
    close(fast, ort);
    // [5, 4] as [5, 2, 2]: two channels of two values each, then back.
    const deep = onnx.ModelProto.decode(
      graphOf([
        { opType: 'Reshape', input: ['X', 'S3'], output: ['X3'] },
        { ...bn('X3'), output: ['Y3'] },
        { opType: 'Reshape', input: ['Y3', 'S2'], output: ['Y'] },
      ]),
    );
    const ints = (name: string, v: number[]) => ({ name, dims: [v.length], dataType: 7, int64Data: v });
    deep.graph!.initializer = [...stats(2), ints('S3', [ROWS, 2, 2]), ints('S2', [ROWS, FEATURES])];
    const again = await both(new Uint8Array(onnx.ModelProto.encode(deep).finish()));
    close(again.fast, again.ort);
  });

  it('Mish (opset 18), and Clip as torch writes ReLU6 and Hardtanh: bounds as inputs, one left out, as attributes', async () => {
    const mish = await both(graphOf([node('Mish')], 18));
    close(mish.fast, mish.ort);
    const scalar = (name: string, v: number) => ({ name, dims: [], dataType: 1, floatData: [v] });
    for (const [input, bounds] of [
      [
        ['X', 'LO', 'HI'],
        [scalar('LO', 0), scalar('HI', 1.5)],
      ],
      [['X', '', 'HI'], [scalar('HI', 0.5)]],
      [['X', 'LO'], [scalar('LO', -1)]],
    ] as const) {
      const model = onnx.ModelProto.decode(graphOf([node('Clip', [], [...input])]));
      model.graph!.initializer = [...bounds];
      const { fast, ort } = await both(new Uint8Array(onnx.ModelProto.encode(model).finish()));
      close(fast, ort);
      expect(fast).not.toEqual(Array.from(x));
    }
    const old = await both(graphOf([node('Clip', [f('min', -0.5), f('max', 0.75)])], 7));
    close(old.fast, old.ort);
  });

  it.each(['Softmax', 'LogSoftmax'])(
    '%s over each axis (opset 17), and flattened at the axis (opset 11)',
    async (op) => {
      for (const [opset, axis] of [
        [17, -1],
        [17, 0],
        [11, 1],
        [11, 0],
      ] as const) {
        const { fast, ort } = await both(graphOf([node(op, [{ name: 'axis', type: INT, i: axis }])], opset));
        close(fast, ort);
      }
    },
  );

  it('LayerNormalization over the last axis, over all, and its Mean and InvStdDev outputs (torch nn.LayerNorm)', async () => {
    const ln = (axis: number, output: string[], bias = true): Uint8Array => {
      const model = onnx.ModelProto.decode(
        graphOf(
          [
            {
              opType: 'LayerNormalization',
              input: bias ? ['X', 'G', 'B'] : ['X', 'G'],
              output,
              attribute: [{ name: 'axis', type: INT, i: axis }, f('epsilon', 1e-3)],
            },
          ],
          17,
        ),
      );
      const n = axis === 0 ? ROWS * FEATURES : FEATURES;
      const dims = axis === 0 ? [ROWS, FEATURES] : [FEATURES];
      model.graph!.initializer = [
        { name: 'G', dims, dataType: 1, floatData: values(n).map((v) => v + 2) },
        { name: 'B', dims, dataType: 1, floatData: values(n) },
      ];
      return new Uint8Array(onnx.ModelProto.encode(model).finish());
    };
    for (const [axis, output, bias] of [
      [-1, ['Y'], true],
      [1, ['Y'], false],
      [0, ['Y'], true],
      [-1, ['Z', 'Y'], true],
      [-1, ['Z', '', 'Y'], true],
    ] as const) {
      const { fast, ort } = await both(ln(axis, [...output], bias));
      close(fast, ort);
      expect(new Set(fast).size).toBeGreaterThan(output.length === 1 ? ROWS : ROWS - 1);
    }
  });

  it('Dropout in inference, and a shape computed from the input (torch x.view(x.size(0), -1))', async () => {
    const ints = (name: string, v: number[], dims = [v.length]) => ({ name, dims, dataType: 7, int64Data: v });
    const model = onnx.ModelProto.decode(
      graphOf([
        { opType: 'Shape', input: ['X'], output: ['S'] },
        { opType: 'Gather', input: ['S', 'ZERO'], output: ['N'], attribute: [{ name: 'axis', type: INT, i: 0 }] },
        { opType: 'Unsqueeze', input: ['N', 'AXES'], output: ['N1'] },
        {
          opType: 'Concat',
          input: ['N1', 'MINUS1'],
          output: ['SHAPE'],
          attribute: [{ name: 'axis', type: INT, i: 0 }],
        },
        { opType: 'Reshape', input: ['X', 'SHAPE'], output: ['R'] },
        { opType: 'Dropout', input: ['R', 'RATIO'], output: ['Y'] },
      ]),
    );
    model.graph!.initializer = [
      ints('ZERO', [0], []),
      ints('AXES', [0]),
      ints('MINUS1', [-1]),
      { name: 'RATIO', dims: [], dataType: 1, floatData: [0.5] },
    ];
    const { fast, ort } = await both(new Uint8Array(onnx.ModelProto.encode(model).finish()));
    expect(fast).toEqual(ort);
    expect(fast).toEqual(Array.from(x));
  });
});

describe('TopK and Scan (a LocalOutlierFactor or nearest-neighbour export)', () => {
  const floored: onnx.INodeProto = { opType: 'Floor', input: ['X'], output: ['F'] };
  const topK = (axis: number, largest: number): onnx.INodeProto[] => [
    floored,
    {
      opType: 'TopK',
      input: ['F', 'K'],
      output: ['V', 'I'],
      attribute: [
        { name: 'axis', type: INT, i: axis },
        { name: 'largest', type: INT, i: largest },
      ],
    },
  ];
  const withK = (nodes: onnx.INodeProto[], k: number) => {
    const model = onnx.ModelProto.decode(graphOf(nodes));
    model.graph!.initializer = [{ name: 'K', dims: [1], dataType: 7, int64Data: [k] }];
    return new Uint8Array(onnx.ModelProto.encode(model).finish());
  };

  it.each([
    [-1, 1, 3],
    [-1, 0, 2],
    [0, 1, 2],
    [0, 0, 4],
  ])(
    'TopK axis %i largest %i k %i: values and indices, ties lower index first, as onnxruntime',
    async (axis, largest, k) => {
      // Floored values in [-2, 2): every row and column has ties.
      const values = await both(
        withK([...topK(axis, largest), { opType: 'Identity', input: ['V'], output: ['Y'] }], k),
      );
      expect(values.fast).toEqual(values.ort);
      const cast = { opType: 'Cast', input: ['I'], output: ['Y'], attribute: [{ name: 'to', type: INT, i: 1 }] };
      const indices = await both(withK([...topK(axis, largest), cast], k));
      expect(indices.fast).toEqual(indices.ort);
      expect(new Set(Array.from(x, Math.floor)).size).toBeLessThan(x.length / 2);
    },
  );

  it.each([1, 0])('TopK of 20 among 64 tied values a row (largest %i), as onnxruntime', async (largest) => {
    // X times a [4, 64] matrix, floored: 64 values a row with many ties, so the kept 20 are replaced often.
    const model = onnx.ModelProto.decode(
      withK(
        [
          { opType: 'MatMul', input: ['X', 'W'], output: ['P'] },
          { opType: 'Floor', input: ['P'], output: ['F'] },
          {
            opType: 'TopK',
            input: ['F', 'K'],
            output: ['V', 'I'],
            attribute: [{ name: 'largest', type: INT, i: largest }],
          },
          { opType: 'Cast', input: ['I'], output: ['C'], attribute: [{ name: 'to', type: INT, i: 1 }] },
          // Values and indices side by side in Y.
          { opType: 'Concat', input: ['V', 'C'], output: ['Y'], attribute: [{ name: 'axis', type: INT, i: 1 }] },
        ],
        20,
      ),
    );
    // Small weights: a few distinct values a row, so the 20th is tied with many others.
    const w = values(FEATURES * 64).map((v) => Math.fround(v / 4));
    model.graph!.initializer!.push({ name: 'W', dims: [FEATURES, 64], dataType: 1, floatData: w });
    const { fast, ort } = await both(new Uint8Array(onnx.ModelProto.encode(model).finish()));
    expect(fast).toEqual(ort);
    expect(fast).toHaveLength(ROWS * 40);
  });

  const tensorInfo = (name: string, dims: number[]) => ({
    name,
    type: {
      tensorType: { elemType: onnx.TensorProto.DataType.FLOAT, shape: { dim: dims.map((d) => ({ dimValue: d })) } },
    },
  });
  /** A Scan of one scanned input (the last of `input`) running `body`. */
  const scanNode = (
    input: string[],
    output: string[],
    body: onnx.IGraphProto,
    attribute: onnx.IAttributeProto[] = [],
  ): onnx.INodeProto => ({
    opType: 'Scan',
    input,
    output,
    attribute: [
      { name: 'body', type: onnx.AttributeProto.AttributeType.GRAPH, g: body },
      { name: 'num_scan_inputs', type: INT, i: 1 },
      ...attribute,
    ],
  });
  /** Scan of X's rows with state S0 (an initializer [n, FEATURES] or [FEATURES]), body `nodes` [s, row] -> [s', out]. */
  function scanGraph(
    nodes: onnx.INodeProto[],
    state: number[],
    attribute: onnx.IAttributeProto[] = [],
    data = values(state.reduce((a, b) => a * b, 1)),
  ): Uint8Array {
    // onnxruntime wants the body's shapes: a row is [FEATURES]; the output one value per state row (or a row).
    const out = state.length === 2 ? [state[0]!] : [FEATURES];
    const body = {
      name: 'body',
      node: nodes,
      input: [tensorInfo('s', state), tensorInfo('row', [FEATURES])],
      output: [tensorInfo('s_out', state), tensorInfo('out', out)],
    };
    const model = onnx.ModelProto.decode(graphOf([scanNode(['S0', 'X'], ['S_final', 'Y'], body, attribute)]));
    model.graph!.initializer = [{ name: 'S0', dims: state, dataType: 1, floatData: data }];
    return new Uint8Array(onnx.ModelProto.encode(model).finish());
  }
  const sumSquare = (input: string, output: string): onnx.INodeProto => ({
    opType: 'ReduceSumSquare',
    input: [input],
    output: [output],
    attribute: [
      { name: 'axes', type: INTS, ints: [1] },
      { name: 'keepdims', type: INT, i: 0 },
    ],
  });
  const distanceBody = (extra: boolean): onnx.INodeProto[] => [
    { opType: 'Identity', input: ['s'], output: ['s_out'] },
    { opType: 'Sub', input: ['row', 's'], output: extra ? ['d0'] : ['d'] },
    ...(extra ? [{ opType: 'Identity', input: ['d0'], output: ['d'] }] : []),
    sumSquare('d', 'out'),
  ];

  it('squared distances of each row to the rows of the state, in one loop, bit for bit as the body node by node', async () => {
    const samples = values(6 * FEATURES);
    const fused = scanGraph(distanceBody(false), [6, FEATURES], [], samples);
    const nodeByNode = scanGraph(distanceBody(true), [6, FEATURES], [], samples);
    const isLoop = (bytes: Uint8Array) => (compileGraph(bytes, 'X', 'Y').nodes[0]!.params as ScanParams).distances;
    expect([isLoop(fused), isLoop(nodeByNode)]).toEqual([true, false]);
    const a = await both(fused);
    const b = await both(nodeByNode);
    close(a.fast, a.ort);
    expect(a.fast).toEqual(b.fast);
    expect(a.fast).toHaveLength(ROWS * 6);
  });

  /**
   * The front of a nearest-neighbour export, as skl2onnx writes it: a Scan of X's squared distances to each of the
   * samples (the state X, the samples scanned), a Transpose, a Sqrt and the k smallest; then the k-distance of each
   * neighbour, gathered from a [samples, k] table and its last column picked. Y: values, indices and k-distances.
   */
  function nearestGraph(samples: number[], table: number[], k: number): Uint8Array {
    const m = samples.length / FEATURES;
    const body = {
      name: 'body',
      node: distanceBody(false).map((n) => ({ ...n, input: n.input!.map((i) => (i === 'row' ? 'sample' : i)) })),
      input: [tensorInfo('s', [ROWS, FEATURES]), tensorInfo('sample', [FEATURES])],
      output: [tensorInfo('s_out', [ROWS, FEATURES]), tensorInfo('out', [ROWS])],
    };
    const cast = (from: string, to: string) => ({
      opType: 'Cast',
      input: [from],
      output: [to],
      attribute: [{ name: 'to', type: INT, i: 1 }],
    });
    const model = onnx.ModelProto.decode(
      graphOf([
        scanNode(['X', 'S'], ['X_final', 'D2t'], body),
        {
          opType: 'Transpose',
          input: ['D2t'],
          output: ['D2'],
          attribute: [{ name: 'perm', type: INTS, ints: [1, 0] }],
        },
        { opType: 'Sqrt', input: ['D2'], output: ['D'] },
        {
          opType: 'TopK',
          input: ['D', 'K'],
          output: ['V', 'I'],
          attribute: [{ name: 'largest', type: INT, i: 0 }],
        },
        { opType: 'Gather', input: ['T', 'I'], output: ['G'] },
        { opType: 'Gather', input: ['G', 'LAST'], output: ['GL'], attribute: [{ name: 'axis', type: INT, i: 2 }] },
        { opType: 'Squeeze', input: ['GL', 'AXIS2'], output: ['KD'] },
        cast('I', 'C'),
        { opType: 'Concat', input: ['V', 'C', 'KD'], output: ['Y'], attribute: [{ name: 'axis', type: INT, i: 1 }] },
      ]),
    );
    model.graph!.initializer = [
      { name: 'S', dims: [m, FEATURES], dataType: 1, floatData: samples },
      { name: 'T', dims: [m, table.length / m], dataType: 1, floatData: table },
      { name: 'K', dims: [1], dataType: 7, int64Data: [k] },
      { name: 'LAST', dims: [1], dataType: 7, int64Data: [table.length / m - 1] },
      { name: 'AXIS2', dims: [1], dataType: 7, int64Data: [2] },
    ];
    return new Uint8Array(onnx.ModelProto.encode(model).finish());
  }

  it('fuses the distances, Sqrt and TopK into one loop and the k-distance Gathers into one, bit for bit as unfused', async () => {
    // 12 samples, each one twice (rows 0-5 and 6-11): every distance is tied with another's, so the lower index wins.
    const distinct = values(6 * FEATURES);
    const samples = [...distinct, ...distinct];
    const table = values(12 * 3);
    const bytes = nearestGraph(samples, table, 5);
    const fused = compileGraph(bytes, 'X', 'Y');
    expect(fused.nodes.map((n) => n.op)).toEqual(['Nearest', 'Gather', 'Squeeze', 'Cast', 'Concat']);
    // The [12, 3] table is gathered down to its last column at compile time.
    expect(fused.constants.map(([, t]) => t.dims)).toContainEqual([12, 1]);
    expect(fused.constants.map(([, t]) => t.dims)).not.toContainEqual([12, 3]);
    const plain = compileGraph(bytes, 'X', 'Y', false);
    expect(plain.nodes.map((n) => n.op)).toContain('Scan');
    const a = linkProgram(fused).run(x, ROWS, FEATURES);
    const b = linkProgram(plain).run(x, ROWS, FEATURES);
    expect(a.dims).toEqual([ROWS, 15]);
    expect(Array.from(a.data)).toEqual(Array.from(b.data));
    // As onnxruntime; and each row's nearest come in tied pairs, the sample before its copy.
    const { fast, ort } = await both(bytes);
    close(fast, ort);
    let ties = 0;
    for (let r = 0; r < ROWS; r++) {
      const indices = fast.slice(r * 15 + 5, r * 15 + 10);
      for (let j = 0; j < 4; j++) {
        if (fast[r * 15 + j] !== fast[r * 15 + j + 1]) continue;
        ties++;
        expect(indices[j]! + 6).toBe(indices[j + 1]);
      }
    }
    expect(ties).toBeGreaterThanOrEqual(2 * ROWS);
  });

  it.each([
    ['forward', []],
    [
      'with both directions reversed',
      [
        { name: 'scan_input_directions', type: INTS, ints: [1] },
        { name: 'scan_output_directions', type: INTS, ints: [1] },
      ],
    ],
  ])('carries its state from row to row, %s, as onnxruntime', async (_, attribute) => {
    // s' = s + row; out = s' * row.
    const body: onnx.INodeProto[] = [
      { opType: 'Add', input: ['s', 'row'], output: ['s_out'] },
      { opType: 'Mul', input: ['s_out', 'row'], output: ['out'] },
    ];
    const { fast, ort } = await both(scanGraph(body, [FEATURES], attribute));
    close(fast, ort);
  });
});
