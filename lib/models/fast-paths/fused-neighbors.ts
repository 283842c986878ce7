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
import type { ScanParams } from './scan-op';
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
    const simd =
      t === 'float' ? simdNearest(x!.data as Float32Array, n, f, samples!.data as Float32Array, m, k) : undefined;
    if (simd) {
      values.data.set(simd.values);
      for (let i = 0; i < n * k; i++) indices.data[i] = simd.indices[i]!;
      for (let r = 0; r < n; r++) {
        if (simd.indices[r * k] === -1) keepNearest(simd.lines, r * simd.stride, m, k, values, indices, r);
      }
      return [values, indices];
    }
    // Line by line, each stored in the element type: each store rounds as the graph's tensors round.
    const line = alloc(t, [m]).data;
    for (let r = 0; r < n; r++) {
      if (t === 'float') distancesFloat(x!.data as Float32Array, samples!.data as Float32Array, line, r, m, f);
      else distancesDouble(x!.data as Float64Array, samples!.data as Float64Array, line, r, m, f);
      keepNearest(line, 0, m, k, values, indices, r);
    }
    return [values, indices];
  },
};

/**
 * The k nearest of the distances at `base` of `lines` (m of them) into row `row` of `values` and `indices`, as TopK
 * keeps the k smallest (linear-ops.ts).
 */
function keepNearest(
  lines: Tensor['data'],
  base: number,
  m: number,
  k: number,
  values: Tensor,
  indices: Tensor,
  row: number,
): void {
  const best = new Float64Array(k);
  const at = new Int32Array(k);
  bestOfLine(lines, base, 1, m, k, -1, best, at);
  for (let j = 0; j < k; j++) {
    values.data[row * k + j] = -best[j]!;
    indices.data[row * k + j] = at[j]!;
  }
}

/**
 * Row r's distance to each sample into `line`: differences rounded to float32, squares summed in double (where
 * WebAssembly SIMD is not available).
 */
export function distancesFloat(
  x: Float32Array,
  s: Float32Array,
  line: Tensor['data'],
  r: number,
  m: number,
  f: number,
): void {
  for (let j = 0; j < m; j++) {
    let sum = 0;
    for (let c = 0; c < f; c++) {
      const d = Math.fround(s[j * f + c]! - x[r * f + c]!);
      sum += d * d;
    }
    line[j] = sum;
    line[j] = Math.sqrt(line[j]!);
  }
}

/** {@link distancesFloat} in double. */
function distancesDouble(
  x: Float64Array,
  s: Float64Array,
  line: Tensor['data'],
  r: number,
  m: number,
  f: number,
): void {
  for (let j = 0; j < m; j++) {
    let sum = 0;
    for (let c = 0; c < f; c++) {
      const d = s[j * f + c]! - x[r * f + c]!;
      sum += d * d;
    }
    line[j] = Math.sqrt(sum);
  }
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
