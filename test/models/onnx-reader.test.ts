/**
 * The fast path's ONNX reader reads repeated fields as protobuf writes them, unpacked (proto2's default, which ONNX
 * and onnx-proto use: one key per value) or packed, including negative int64s, repeated strings and a field split
 * in two runs, and refuses truncated bytes instead of reading part of a field.
 */
import { onnx } from 'onnx-proto';
import { readOnnx } from '../../lib/models/fast-paths/onnx-reader';
import { NameIds } from '../../lib/models/fast-paths/protobuf-reader';
import { UnsupportedGraph } from '../../lib/models/fast-paths/tensor';

/** A length-delimited protobuf field (short contents only). */
const field = (n: number, bytes: number[]): number[] => [(n << 3) | 2, bytes.length, ...bytes];
const text = (s: string): number[] => Array.from(Buffer.from(s));

/** A model of one node "Op" whose attribute "k" holds `ints` as the given raw field bytes. */
function modelWithInts(intsField: number[]): Uint8Array {
  // type (field 20, a two-byte key) = INTS (7)
  const attribute = field(5, [...field(1, text('k')), 0xa0, 0x01, 7, ...intsField]);
  return new Uint8Array(field(7, field(1, [...field(4, text('Op')), ...attribute])));
}

it('reads unpacked repeated numbers and strings as onnx-proto writes them', () => {
  const bytes = onnx.ModelProto.encode({
    graph: {
      node: [
        {
          opType: 'Op',
          input: ['x'],
          output: ['y'],
          attribute: [
            { name: 'ints', type: onnx.AttributeProto.AttributeType.INTS, ints: [1, 300, -2, 2 ** 40] },
            { name: 'floats', type: onnx.AttributeProto.AttributeType.FLOATS, floats: [1.5, -2, 0.1] },
            {
              name: 'strings',
              type: onnx.AttributeProto.AttributeType.STRINGS,
              strings: ['LEAF', 'BRANCH_LEQ', 'LEAF', 'é'].map((s) => Buffer.from(s)),
            },
          ],
        },
      ],
      initializer: [{ name: 'c', dims: [2, 3], dataType: 7, int64Data: Array.from({ length: 6 }, (_, i) => i - 3) }],
    },
  }).finish();
  const model = readOnnx(bytes);
  const [ints, floats, strings] = model.nodes[0]!.attribute;
  expect(Array.from(ints!.ints)).toEqual([1, 300, -2, 2 ** 40]);
  expect(Array.from(floats!.floats)).toEqual([1.5, -2, 0.1].map(Math.fround));
  expect(strings!.strings).toEqual(['LEAF', 'BRANCH_LEQ', 'LEAF', 'é']);
  expect([model.nodes[0]!.input, model.nodes[0]!.output, model.initializers[0]!.name]).toEqual([[0], [1], 2]);
  expect([0, 1, 2].map((id) => model.names.name(id))).toEqual(['x', 'y', 'c']);
  expect(model.initializers[0]!.dims).toEqual([2, 3]);
  expect(Array.from(model.initializers[0]!.ints!)).toEqual([-3, -2, -1, 0, 1, 2]);
});

it('reads packed numbers and a field repeated in two runs', () => {
  const packed = modelWithInts(field(8, [1, 0xac, 0x02, 7]));
  expect(Array.from(readOnnx(packed).nodes[0]!.attribute[0]!.ints)).toEqual([1, 300, 7]);
  const split = modelWithInts([8 << 3, 1, ...field(8, [2, 3]), 8 << 3, 4]);
  expect(Array.from(readOnnx(split).nodes[0]!.attribute[0]!.ints)).toEqual([1, 2, 3, 4]);
});

it('refuses a truncated field, packed or not', () => {
  expect(() => readOnnx(modelWithInts(field(8, [1, 0xac])))).toThrow(UnsupportedGraph);
  // A value's key with no value after it, and a value cut after its first byte.
  expect(() => readOnnx(modelWithInts([8 << 3, 1, 8 << 3]))).toThrow(UnsupportedGraph);
  expect(() => readOnnx(modelWithInts([8 << 3, 1, 8 << 3, 0xac]))).toThrow(UnsupportedGraph);
});

it('numbers value names by their bytes, in order of first mention, past its table growing', () => {
  const names = new NameIds();
  const all = Array.from({ length: 5000 }, (_, i) => (i % 7 === 0 ? `é-${i}` : `v${i}`));
  // Each name from its own buffer, at an offset: ids follow the bytes, not the buffer.
  const id = (s: string) => {
    const bytes = Buffer.concat([Buffer.from('pad'), Buffer.from(s)]);
    return names.id(bytes, 3, bytes.length - 3);
  };
  expect(all.map(id)).toEqual(all.map((_, i) => i));
  expect(all.map(id)).toEqual(all.map((_, i) => i));
  expect(names.size).toBe(5000);
  expect([names.idOf('v1'), names.idOf('é-7'), names.idOf('v1 ')]).toEqual([1, 7, 5000]);
  expect([names.name(7), names.name(4999), names.name(-1)]).toEqual(['é-7', 'v4999', '']);
});

it('reads number lists past the buffers they share, each list whole where it crosses into a new one', () => {
  // Three lists of 20,000 ints and three of 20,000 floats: the model's first buffers (32,768 values) fill up in
  // the second list of each kind, whose values so far move to the next buffer.
  const lists = [0, 1, 2].map((k) => Array.from({ length: 20_000 }, (_, i) => (i * 7919 + k) % 100_003));
  const bytes = onnx.ModelProto.encode({
    graph: {
      node: [
        {
          opType: 'Op',
          attribute: lists.flatMap((values, k) => [
            { name: `i${k}`, type: onnx.AttributeProto.AttributeType.INTS, ints: values },
            { name: `f${k}`, type: onnx.AttributeProto.AttributeType.FLOATS, floats: values.map((v) => v / 8) },
          ]),
        },
      ],
    },
  }).finish();
  const attributes = readOnnx(bytes).nodes[0]!.attribute;
  lists.forEach((values, k) => {
    expect(Array.from(attributes[2 * k]!.ints)).toEqual(values);
    expect(Array.from(attributes[2 * k + 1]!.floats)).toEqual(values.map((v) => v / 8));
  });
});

it("keeps a node's inputs and outputs apart from those of the subgraph read inside its attribute", () => {
  const body = onnx.GraphProto.encode({
    node: [
      { opType: 'Neg', input: ['a'], output: ['b'] },
      { opType: 'Abs', input: ['b'], output: ['c'] },
    ],
  }).finish();
  // type (field 20, a two-byte key) = GRAPH (5), g (field 6)
  const attribute = field(5, [...field(1, text('body')), 0xa0, 0x01, 5, ...field(6, Array.from(body))]);
  // The node's second input and its output come after the attribute, as a writer may put them.
  const node = [...field(4, text('Scan')), ...field(1, text('x')), ...attribute, ...field(1, text('s'))];
  const bytes = new Uint8Array(field(7, field(1, [...node, ...field(2, text('y'))])));
  const model = readOnnx(bytes);
  const name = (ids: number[]) => ids.map((id) => model.names.name(id));
  const [scan] = model.nodes;
  const inner = scan!.attribute[0]!.g!.nodes;
  expect([name(scan!.input), name(scan!.output)]).toEqual([['x', 's'], ['y']]);
  expect(inner.map((n) => [n.opType, name(n.input), name(n.output)])).toEqual([
    ['Neg', ['a'], ['b']],
    ['Abs', ['b'], ['c']],
  ]);
});
