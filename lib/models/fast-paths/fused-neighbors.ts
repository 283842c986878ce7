/**
 * Fuses the graph skl2onnx writes for a nearest-neighbour model (a LocalOutlierFactor, a KNeighbors model): its
 * distances are a Scan over the training samples (each iteration the squared distance of every input row to one
 * sample, scan-op.ts), a Transpose to rows by samples, a Sqrt and a TopK of the k smallest. Those four nodes
 * become one node ({@link nearest}): each row's distance to each sample, rounded exactly as the Scan's body, the
 * Sqrt and their stored tensors round it, into one line, of which the k nearest are kept as TopK keeps them
 * (float32 rows in WebAssembly SIMD, simd-distances.ts; double rows, rows with NaN, or no SIMD: a scalar loop and
 * TopK's heap, linear-ops.ts). The same numbers bit for bit, without three rows-by-samples tensors.
 *
 * Then a Gather of a constant by those neighbours' indices whose only use is a second Gather, with constant
 * indices, along one of the constant's own later axes (the LocalOutlierFactor's k-distance of each neighbour: all
 * k distances of every neighbour gathered, then the last picked) becomes one Gather of a constant that the
 * compiler gathers first. Any other graph is unchanged.
 */
import type { GraphProgram, ProgramNode } from './graph-program';
import { bestOfLine, type TopKParams } from './linear-ops';
import type { OpDef } from './op-types';
import { distancesDouble, distancesFloat, type ScanParams } from './scan-op';
import { simdNearest } from './simd-distances';
import { alloc, UnsupportedGraph, type Tensor } from './tensor';

/** The fused distances and TopK: the number of neighbours kept. */
export interface NearestParams {
  k: number;
}

/**
 * [rows, features] and [samples, features] -> the k smallest Euclidean distances of each row to the samples and the
 * samples' int64 indices, [rows, k] each, nearest first and an equal distance's lower index first.
 */
export const nearest: OpDef<NearestParams> = {
  prepare() {
    throw new UnsupportedGraph('Nearest is made by fuseNeighbors, not read from a graph');
  },
  run({ k }, [x, samples]) {
    const t = x!.type;
    if (x!.dims.length !== 2 || samples!.dims.length !== 2 || samples!.type !== t) {
      throw new UnsupportedGraph('Nearest: rows and samples must be matrices of one type');
    }
    const [n, f] = x!.dims as [number, number];
    const [m, width] = samples!.dims as [number, number];
    if (width !== f || (t !== 'float' && t !== 'double') || k > m) {
      throw new UnsupportedGraph(`Nearest: ${n}x${f} rows against ${m}x${width} samples, k ${k}`);
    }
    const values = alloc(t, [n, k]);
    const indices = alloc('int64', [n, k]);
    if (k === 0) return [values, indices];
    const best = new Float64Array(k);
    const at = new Int32Array(k);
    const keep = (lines: Tensor['data'], base: number, row: number) => {
      bestOfLine(lines, base, 1, m, k, -1, best, at);
      for (let j = 0; j < k; j++) {
        values.data[row * k + j] = -best[j]!;
        indices.data[row * k + j] = at[j]!;
      }
    };
    const simd =
      t === 'float' ? simdNearest(x!.data as Float32Array, n, f, samples!.data as Float32Array, m, k) : undefined;
    if (simd) {
      values.data.set(simd.values);
      for (let i = 0; i < n * k; i++) indices.data[i] = simd.indices[i]!;
      for (let r = 0; r < n; r++) if (simd.indices[r * k] === -1) keep(simd.lines, r * simd.stride, r);
      return [values, indices];
    }
    const lines = alloc(t, [n, m]).data;
    scalarDistances(x!, samples!, lines);
    for (let r = 0; r < n; r++) keep(lines, r * m, r);
    return [values, indices];
  },
};

/**
 * Each of the rows of `x` ([n, f]) to each of the `samples` ([m, f]) into `lines` ([n, m], of their element type),
 * as the graph computes them node by node: the Scan's squared distances (its loops, scan-op.ts), each stored in
 * the element type, then their square roots, stored again. Where WebAssembly SIMD is not available, and for double.
 */
export function scalarDistances(x: Tensor, samples: Tensor, lines: Tensor['data']): void {
  const [n, f] = x.dims as [number, number];
  const m = samples.dims[0]!;
  if (x.type === 'float') distancesFloat(samples.data as Float32Array, x.data as Float32Array, lines, n, m, f);
  else distancesDouble(samples.data as Float64Array, x.data as Float64Array, lines, n, m, f);
  for (let i = 0; i < n * m; i++) lines[i] = Math.sqrt(lines[i]!);
}

/**
 * `program` with each Scan-Transpose-Sqrt-TopK of a nearest-neighbour model fused into one {@link nearest} node,
 * and each Gather-of-a-Gather by its indices folded, or `program` itself when it has neither. `gather` is the
 * generic Gather, which gathers the folded constant.
 */
export function fuseNeighbors(program: GraphProgram, gather: OpDef): GraphProgram {
  const uses = new Int32Array(program.slots);
  for (const n of program.nodes) for (const s of n.inputs) if (s >= 0) uses[s]!++;
  uses[program.output]!++;
  const constants = new Map(program.constants);
  const onlyUse = (slot: number | undefined, op: string) => {
    if (slot === undefined || slot < 0 || uses[slot] !== 1) return undefined;
    const n = program.nodes.find((c) => c.inputs.includes(slot));
    return n?.op === op && n.domain === 'ai.onnx' ? n : undefined;
  };
  const removed = new Set<ProgramNode>();
  const replaced = new Map<ProgramNode, ProgramNode>();
  const added: [number, Tensor][] = [];
  let slots = program.slots;
  // Slots holding a fused node's indices: [rows, k], so the axes of a Gather by them are known.
  const indexSlots = new Set<number>();
  for (const scan of program.nodes) {
    if (scan.op !== 'Scan' || scan.domain !== 'ai.onnx' || scan.inputs.length !== 2) continue;
    const p = scan.params as ScanParams;
    if (!p.distances || p.inputDirections[0] || p.outputDirections[0]) continue;
    const [stateOut, distances] = scan.outputs;
    if (stateOut !== undefined && stateOut >= 0 && uses[stateOut] !== 0) continue;
    const transpose = onlyUse(distances, 'Transpose');
    const perm = transpose?.params as number[] | undefined;
    if (!transpose || (perm && perm.join() !== '1,0')) continue;
    const sqrt = onlyUse(transpose.outputs[0], 'Sqrt');
    const topK = onlyUse(sqrt?.outputs[0], 'TopK');
    if (!sqrt || !topK || topK.inputs[0] !== sqrt.outputs[0]) continue;
    const { axis, largest, k: kAttr } = topK.params as TopKParams;
    const kConstant = constants.get(topK.inputs[1] ?? -1);
    const k = kAttr ?? (kConstant?.data.length === 1 ? kConstant.data[0] : undefined);
    if (largest || (axis !== -1 && axis !== 1) || k === undefined || !Number.isInteger(k) || k < 0) continue;
    for (const n of [scan, transpose, sqrt]) removed.add(n);
    const outputs = [topK.outputs[0] ?? -1, topK.outputs[1] ?? -1];
    replaced.set(topK, { domain: 'fused', op: 'Nearest', params: { k }, inputs: scan.inputs.slice(), outputs });
    if (outputs[1]! >= 0) indexSlots.add(outputs[1]!);
  }
  for (const first of program.nodes) {
    if (first.op !== 'Gather' || first.domain !== 'ai.onnx' || first.params !== 0) continue;
    const table = constants.get(first.inputs[0]!);
    if (!table || !indexSlots.has(first.inputs[1]!)) continue;
    const second = onlyUse(first.outputs[0], 'Gather');
    const picked = constants.get(second?.inputs[1] ?? -1);
    if (!second || !picked || second.inputs[0] !== first.outputs[0]) continue;
    // The first Gather's output axes: the indices' two, then the table's after its first.
    const rank = 2 + table.dims.length - 1;
    const axis = (second.params as number) < 0 ? (second.params as number) + rank : (second.params as number);
    if (axis < 2 || axis >= rank) continue;
    const [folded] = gather.run(axis - 1, [table, picked]);
    added.push([slots, { type: folded!.type, dims: folded!.dims.slice(), data: folded!.data.slice() }]);
    removed.add(first);
    replaced.set(second, {
      domain: 'ai.onnx',
      op: 'Gather',
      params: 0,
      inputs: [slots++, first.inputs[1]!],
      outputs: second.outputs,
    });
  }
  if (replaced.size === 0) return program;
  const nodes = program.nodes.filter((n) => !removed.has(n)).map((n) => replaced.get(n) ?? n);
  const used = new Set(nodes.flatMap((n) => n.inputs));
  return {
    ...program,
    slots,
    constants: [...program.constants, ...added].filter(([slot]) => used.has(slot)),
    nodes,
  };
}
