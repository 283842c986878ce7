/**
 * Dense layers fused (lib/models/fast-paths/fused-dense.ts): the WebAssembly SIMD layer against the scalar loop
 * that runs without SIMD, bit for bit (products summed in double, the bias, float32 rounding, Relu, and the Tanh
 * computed in double from an expm1), and graphs of Gemm, MatMul, Add, Tanh and Relu compiled with fusion against
 * the same graphs evaluated node by node: which nodes fuse, which do not, and the same outputs bit for bit. A graph
 * of dense layers and nothing else runs as one chain (simd-chain.ts): its outputs, and its reconstruction error,
 * against the layers node by node and reconstructionError, bit for bit.
 */
import { onnx } from 'onnx-proto';
import { dense, scalarDense, type DenseParams } from '../../lib/models/fast-paths/fused-dense';
import { linkProgram } from '../../lib/models/fast-paths/graph-evaluator';
import { compileGraph } from '../../lib/models/fast-paths/graph-program';
import { denseChainOf, MAX_CHAIN_PRODUCTS } from '../../lib/models/fast-paths/simd-chain';
import { paddedWidth, simdDense, type DenseLayer } from '../../lib/models/fast-paths/simd-dense';
import { reconstructionError } from '../../lib/models/reconstruction-error';
import { mlModel, valueInfo } from '../support/onnx-models';
import { random as seeded } from '../support/random';

const random = seeded(23);

/** Values over many magnitudes, with zeros of both signs and, where `special`, NaN and infinities. */
function values(n: number, special: boolean): Float32Array {
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    const u = random();
    out[i] = u < 0.03 ? [0, -0][i % 2]! : (random() - 0.5) * 10 ** Math.floor(random() * 7 - 4);
    if (special && u > 0.97) out[i] = [NaN, Infinity, -Infinity][Math.floor(random() * 3)]!;
  }
  return out;
}

/** A layer of k inputs and n outputs with float32 weights (and bias, unless `bias` is false). */
function layerOf(k: number, n: number, bias: boolean, roundFirst: boolean, activation: DenseLayer['activation']) {
  const np = paddedWidth(n);
  const w = new Float64Array(k * np);
  for (let p = 0; p < k; p++) for (let j = 0; j < n; j++) w[p * np + j] = Math.fround((random() - 0.5) * 4);
  const b = bias ? Float64Array.from({ length: np }, (_, j) => (j < n ? Math.fround(random() - 0.5) : 0)) : undefined;
  return { k, n, w, b, roundFirst, activation };
}

const SHAPES = [
  // rows, inputs, outputs: the bench's 7-4-7 autoencoder, an odd number of outputs, one of each, one row.
  [60, 7, 4],
  [60, 4, 7],
  [5, 1, 1],
  [33, 16, 9],
  [1, 3, 2],
] as const;
const KINDS = [
  { bias: true, roundFirst: false, activation: 'tanh' },
  { bias: true, roundFirst: true, activation: 'relu' },
  { bias: false, roundFirst: false, activation: undefined },
  { bias: true, roundFirst: true, activation: undefined },
  { bias: false, roundFirst: false, activation: 'tanh' },
] as const;

describe.each([false, true])('a dense layer in SIMD (NaN and infinities: %s)', (special) => {
  it.each(SHAPES)('%i rows of %i inputs to %i outputs: bit for bit as the scalar loop', (m, k, n) => {
    for (const { bias, roundFirst, activation } of KINDS) {
      const layer = layerOf(k, n, bias, roundFirst, activation);
      const x = values(m * k, special);
      // Twice, the second time with fewer rows: what the first call left in memory must not leak into the second.
      for (const rows of [m, Math.max(1, m - 2)]) {
        const got = new Float32Array(rows * n);
        const want = new Float32Array(rows * n);
        expect(simdDense(x, rows, layer, got)).toBe(true);
        scalarDense(x, rows, layer, want, true);
        for (let i = 0; i < want.length; i++) expect([i, got[i]]).toEqual([i, want[i]]);
      }
    }
  });
});

it('computes Tanh as Math.tanh rounded to float32, over magnitudes from 1e-10 to 100', () => {
  const layer: DenseLayer = {
    k: 1,
    n: 1,
    w: Float64Array.of(1, 0),
    b: undefined,
    roundFirst: false,
    activation: 'tanh',
  };
  const m = 50_000;
  const x = Float32Array.from({ length: m }, () => (random() - 0.5) * 2 * 10 ** (random() * 12 - 10));
  x.set([0, -0, NaN, Infinity, -Infinity, 9.01, -9.02, 20, 1e-30]);
  const got = new Float32Array(m);
  simdDense(x, m, layer, got);
  // The product is summed from 0, as the Gemm does: -0 becomes 0 before the Tanh.
  for (let i = 0; i < m; i++) expect([x[i], got[i]]).toEqual([x[i], Math.fround(Math.tanh(0 + x[i]!))]);
});

it('grows its memory for a layer larger than it has held, and stays exact', () => {
  const layer = layerOf(40, 33, true, false, 'tanh');
  const x = values(2_000 * 40, false);
  const got = new Float32Array(2_000 * 33);
  const want = new Float32Array(2_000 * 33);
  expect(simdDense(x, 2_000, layer, got)).toBe(true);
  scalarDense(x, 2_000, layer, want, true);
  expect(Array.from(got)).toEqual(Array.from(want));
});

const FLOAT = onnx.TensorProto.DataType.FLOAT;
const DOUBLE = onnx.TensorProto.DataType.DOUBLE;

/** An initializer of `dims` with random values (float32 unless `type`). */
function init(name: string, dims: number[], type = FLOAT): onnx.ITensorProto {
  const n = dims.reduce((a, b) => a * b, 1);
  const data = Array.from({ length: n }, () => Math.fround(random() * 2 - 1));
  return type === FLOAT
    ? { name, dims, dataType: FLOAT, floatData: data }
    : { name, dims, dataType: DOUBLE, doubleData: data };
}

function node(opType: string, input: string[], output: string, attrs: Record<string, number> = {}): onnx.INodeProto {
  const attribute = Object.entries(attrs).map(([name, v]) =>
    Number.isInteger(v)
      ? { name, type: onnx.AttributeProto.AttributeType.INT, i: v }
      : { name, type: onnx.AttributeProto.AttributeType.FLOAT, f: v },
  );
  return { opType, input, output: [output], attribute };
}

/** A graph X -> Y of `nodes` and `initializers`, X of element type `type`. */
function graph(nodes: onnx.INodeProto[], initializer: onnx.ITensorProto[], type = FLOAT): Uint8Array {
  return mlModel({
    name: 'dense',
    node: nodes,
    initializer,
    input: [valueInfo('X', type)],
    output: [valueInfo('Y', type)],
  });
}

/** The graph compiled with and without fusion, run on the same rows: the fused ops, and both outputs. */
function both(bytes: Uint8Array, rows: number, k: number) {
  const fused = compileGraph(bytes, 'X', 'Y');
  const plain = compileGraph(bytes, 'X', 'Y', false);
  const x = values(rows * k, true);
  const a = linkProgram(fused).run(x, rows, k);
  const b = linkProgram(plain).run(x, rows, k);
  return { ops: fused.nodes.map((n) => n.op), fused: a, plain: b };
}

describe('fusing the dense layers of a graph', () => {
  it('a torch autoencoder (Gemm transB, Tanh, Gemm, Relu): two Dense nodes, bit for bit as its nodes', () => {
    const bytes = graph(
      [
        node('Gemm', ['X', 'W1', 'B1'], 'H', { transB: 1 }),
        node('Tanh', ['H'], 'T'),
        node('Gemm', ['T', 'W2', 'B2'], 'G'),
        node('Relu', ['G'], 'Y'),
      ],
      [init('W1', [4, 7]), init('B1', [4]), init('W2', [4, 7]), init('B2', [1, 7])],
    );
    const { ops, fused, plain } = both(bytes, 60, 7);
    expect(ops).toEqual(['Dense', 'Dense']);
    expect(fused.dims).toEqual([60, 7]);
    expect(Array.from(fused.data)).toEqual(Array.from(plain.data));
  });

  it("scikit-learn's MLP (MatMul, Add, Relu; MatMul, Add of a scalar): the product rounded before its bias", () => {
    const bytes = graph(
      [
        node('MatMul', ['X', 'W1'], 'M1'),
        node('Add', ['B1', 'M1'], 'A1'),
        node('Relu', ['A1'], 'R'),
        node('MatMul', ['R', 'W2'], 'M2'),
        node('Add', ['M2', 'B2'], 'Y'),
      ],
      [init('W1', [5, 3]), init('B1', [3]), init('W2', [3, 5]), init('B2', [])],
    );
    const { ops, fused, plain } = both(bytes, 17, 5);
    expect(ops).toEqual(['Dense', 'Dense']);
    expect(Array.from(fused.data)).toEqual(Array.from(plain.data));
  });

  it('double rows through the scalar loop, bit for bit', () => {
    const bytes = graph(
      [node('Gemm', ['X', 'W', 'B'], 'G', { transB: 1 }), node('Tanh', ['G'], 'Y')],
      [init('W', [3, 6], DOUBLE), init('B', [3], DOUBLE)],
      DOUBLE,
    );
    const { ops, fused, plain } = both(bytes, 9, 6);
    expect(ops).toEqual(['Dense']);
    expect(fused.type).toBe('double');
    expect(Array.from(fused.data)).toEqual(Array.from(plain.data));
  });

  it('leaves what it does not reproduce as it is, and still gives the same outputs', () => {
    const bytes = graph(
      [
        // alpha 0.5: not fused. beta 0: fused without the bias.
        node('Gemm', ['X', 'W1', 'B1'], 'G1', { alpha: 0.5, transB: 1 }),
        node('Gemm', ['G1', 'W2', 'B2'], 'G2', { beta: 0 }),
        // A bias per row ([rows, 1] is not a constant row): the Gemm is left.
        node('Gemm', ['G2', 'W3', 'B3'], 'G3'),
        // Read twice: fused without its Tanh, which stays a node of its own.
        node('MatMul', ['G3', 'W4'], 'M'),
        node('Tanh', ['M'], 'T'),
        // The Add of a computed value is not a bias: the MatMul fuses alone.
        node('Add', ['T', 'M'], 'Y'),
      ],
      [
        init('W1', [4, 6]),
        init('B1', [4]),
        init('W2', [4, 4]),
        init('B2', [4]),
        init('W3', [4, 3]),
        init('B3', [8, 1]),
        init('W4', [3, 3]),
      ],
    );
    const { ops, fused, plain } = both(bytes, 8, 6);
    expect(ops).toEqual(['Gemm', 'Dense', 'Gemm', 'Dense', 'Tanh', 'Add']);
    expect(Array.from(fused.data)).toEqual(Array.from(plain.data));
  });

  it('refuses an input its nodes would refuse, as they do', () => {
    const params: DenseParams = {
      ...layerOf(3, 2, true, false, undefined),
      origin: 'Gemm',
      weightsType: 'float',
      biasRank: 1,
    };
    const x = { type: 'float' as const, dims: [2, 2, 3], data: new Float32Array(12) };
    expect(() => dense.run(params, [x])).toThrow(/Gemm: inputs must be matrices/);
    const narrow = { type: 'float' as const, dims: [2, 4], data: new Float32Array(8) };
    expect(() => dense.run({ ...params, origin: 'MatMul' }, [narrow])).toThrow(/MatMul: \[2,4\] by weights of 3/);
  });
});

/** A chain of `sizes.length - 1` dense layers (Gemm, MatMul and Add, Tanh or Relu, by turns), X -> Y. */
function chainGraph(sizes: readonly number[], last: 'Tanh' | 'Relu' | undefined = undefined): Uint8Array {
  const nodes: onnx.INodeProto[] = [];
  const inits: onnx.ITensorProto[] = [];
  let value = 'X';
  for (let l = 0; l + 1 < sizes.length; l++) {
    const [k, n] = [sizes[l]!, sizes[l + 1]!];
    const activation = l + 2 < sizes.length ? (['Tanh', 'Relu', undefined] as const)[l % 3] : last;
    const out = activation ? `D${l}` : l + 2 < sizes.length ? `A${l}` : 'Y';
    if (l % 2 === 0) {
      // torch's Linear: Gemm by weights [n, k], transposed.
      inits.push(init(`W${l}`, [n, k]), init(`B${l}`, [n]));
      nodes.push(node('Gemm', [value, `W${l}`, `B${l}`], out, { transB: 1 }));
    } else {
      // scikit-learn's: MatMul, then the Add of the bias (the product rounded first).
      inits.push(init(`W${l}`, [k, n]), init(`B${l}`, [1, n]));
      nodes.push(node('MatMul', [value, `W${l}`], `M${l}`), node('Add', [`M${l}`, `B${l}`], out));
    }
    value = out;
    if (activation) {
      value = l + 2 < sizes.length ? `A${l}` : 'Y';
      nodes.push(node(activation, [out], value));
    }
  }
  return graph(nodes, inits);
}

describe('a chain of dense layers and nothing else', () => {
  it.each([
    // The bench's autoencoder; an odd hidden layer; deeper; one layer; wide.
    [[7, 4, 7], 60],
    [[5, 3, 5], 17],
    [[6, 9, 2, 5, 6], 33],
    [[3, 3], 4],
    [[16, 31, 16], 61],
  ])('%j on %i rows: outputs and errors bit for bit as its layers one by one', (sizes, rows) => {
    for (const last of ['Tanh', 'Relu', undefined] as const) {
      const bytes = chainGraph(sizes, last);
      const fused = compileGraph(bytes, 'X', 'Y');
      expect(denseChainOf(fused)).toBeDefined();
      const chained = linkProgram(fused);
      const plain = linkProgram(compileGraph(bytes, 'X', 'Y', false));
      const k = sizes[0]!;
      const n = sizes[sizes.length - 1]!;
      // Twice, the second time with fewer rows: what the first call left in memory must not leak into the second.
      for (const m of [rows, Math.max(1, rows - 3)]) {
        const x = values(m * k, true);
        const want = plain.run(x, m, k);
        const got = chained.run(x, m, k);
        expect(got.dims).toEqual(want.dims);
        expect(got.type).toBe('float');
        expect(Array.from(got.data)).toEqual(Array.from(want.data));
        for (const kind of ['mse', 'mae'] as const) {
          const errors = chained.reconstructionError(x, m, k, kind);
          if (n !== k) expect(errors).toBeUndefined();
          else {
            const expected = reconstructionError(kind, x, want.data as Float32Array, m, k);
            expect(Array.from(errors!)).toEqual(Array.from(expected));
          }
        }
      }
    }
  });

  it('grows its memory for more rows than it has held, and stays exact', () => {
    const bytes = chainGraph([7, 4, 7], 'Tanh');
    const chained = linkProgram(compileGraph(bytes, 'X', 'Y'));
    const plain = linkProgram(compileGraph(bytes, 'X', 'Y', false));
    const x = values(20_000 * 7, false);
    const want = reconstructionError('mse', x, plain.run(x, 20_000, 7).data as Float32Array, 20_000, 7);
    expect(Array.from(chained.reconstructionError(x, 20_000, 7, 'mse')!)).toEqual(Array.from(want));
  });

  it('is not made of a program with anything else, and such a program has no fused reconstruction error', () => {
    const notChains = [
      // A Tanh read twice stays a node of its own.
      graph(
        [node('Gemm', ['X', 'W', 'B'], 'G', { transB: 1 }), node('Tanh', ['G'], 'T'), node('Add', ['T', 'T'], 'Y')],
        [init('W', [3, 3]), init('B', [3])],
      ),
      // A Gemm it does not fuse (alpha 0.5) before a dense layer.
      graph(
        [node('Gemm', ['X', 'W1', 'B1'], 'G', { alpha: 0.5, transB: 1 }), node('Gemm', ['G', 'W2', 'B2'], 'Y')],
        [init('W1', [3, 3]), init('B1', [3]), init('W2', [3, 3]), init('B2', [3])],
      ),
      // Double rows.
      graph(
        [node('Gemm', ['X', 'W', 'B'], 'Y', { transB: 1 })],
        [init('W', [3, 3], DOUBLE), init('B', [3], DOUBLE)],
        DOUBLE,
      ),
      // Layers larger than a chain's code is made for (100 h products a row, for h hidden outputs).
      chainGraph([100, Math.floor(MAX_CHAIN_PRODUCTS / 100) + 2, 100]),
    ];
    for (const bytes of notChains) {
      const program = compileGraph(bytes, 'X', 'Y');
      expect(denseChainOf(program)).toBeUndefined();
      expect(linkProgram(program).reconstructionError(values(9, false), 3, 3, 'mse')).toBeUndefined();
    }
  });
});
