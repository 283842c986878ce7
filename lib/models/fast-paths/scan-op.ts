/**
 * ONNX Scan (opset 9 and later): a subgraph run once per slice of its scan inputs along their first axis, its
 * state carried from one iteration to the next and its scan outputs stacked along a new first axis. skl2onnx
 * computes pairwise distances this way (a nearest-neighbour model's or a LocalOutlierFactor's distances from each
 * row to the training samples: the body subtracts one row from all of them and sums the squares). That body, in
 * either order of the subtraction, is recognised and runs as one loop over rows and samples
 * ({@link squaredDistances}), rounding as the body's nodes do, so the result is the same bit for bit.
 */
import type { ProgramBody } from './graph-program';
import type { ReduceParams } from './linear-ops';
import { attrReader, type LinkedBody, type OpDef } from './op-types';
import { alloc, size, UnsupportedGraph, type Tensor } from './tensor';

/** A Scan's prepared parameters; `linked` is set where the program is linked (op-types.ts, OpDef.link). */
export interface ScanParams {
  body: ProgramBody;
  /** Number of scan inputs (the last inputs); the others are the state. */
  scans: number;
  /** Per scan input, 1 where it is read from its last slice to its first. */
  inputDirections: number[];
  /** Per scan output, 1 where its slices are stacked from the last position to the first. */
  outputDirections: number[];
  /** The body is the pairwise squared distance of its state's rows to each scanned row. */
  distances: boolean;
  linked?: LinkedBody;
}

const scan: OpDef<ScanParams> = {
  prepare(ctx) {
    if (ctx.opset < 9) throw new UnsupportedGraph(`Scan of opset ${ctx.opset} (a batch axis)`);
    const attr = attrReader(ctx);
    const body = attr.graph('body');
    const scans = attr.int('num_scan_inputs');
    if (scans < 1 || scans > ctx.inputCount || body.inputs.length !== ctx.inputCount) {
      throw new UnsupportedGraph(`Scan: ${ctx.inputCount} inputs, ${scans} scanned, a body of ${body.inputs.length}`);
    }
    for (const name of ['scan_input_axes', 'scan_output_axes']) {
      if (attr.has(name) && Array.from(attr.numbers(name)).some((a) => a !== 0)) {
        throw new UnsupportedGraph(`Scan: ${name} other than 0`);
      }
    }
    const directions = (name: string) => (attr.has(name) ? Array.from(attr.numbers(name)) : []);
    return {
      body,
      scans,
      inputDirections: directions('scan_input_directions'),
      outputDirections: directions('scan_output_directions'),
      distances: scans === 1 && isSquaredDistance(body),
    };
  },
  link: (params, link) => ({ ...params, linked: link(params.body) }),
  run({ scans, inputDirections, outputDirections, distances, linked }, inputs) {
    if (!linked) throw new UnsupportedGraph('Scan: body not linked');
    const states = inputs.length - scans;
    const sequences = inputs.slice(states) as Tensor[];
    if (distances && !inputDirections[0] && !outputDirections[0]) {
      const d = squaredDistances(inputs[0]!, sequences[0]!);
      if (d) return [inputs[0]!, d];
    }
    const length = sequences[0]!.dims[0];
    if (length === undefined || length === 0 || sequences.some((s) => s.dims[0] !== length)) {
      throw new UnsupportedGraph('Scan: scan inputs of different or no lengths');
    }
    const args: (Tensor | undefined)[] = inputs.slice(0, states);
    const scanned: Tensor[] = [];
    for (let t = 0; t < length; t++) {
      for (let j = 0; j < scans; j++) {
        const x = sequences[j]!;
        const at = inputDirections[j] ? length - 1 - t : t;
        const stride = size(x.dims) / length;
        args[states + j] = {
          type: x.type,
          dims: x.dims.slice(1),
          data: x.data.subarray(at * stride, (at + 1) * stride),
        };
      }
      const results = linked.run(args);
      for (let s = 0; s < states; s++) args[s] = results[s];
      for (let k = 0; k < results.length - states; k++) {
        const y = results[states + k]!;
        if (t === 0) scanned.push(alloc(y.type, [length, ...y.dims]));
        const out = scanned[k]!;
        if (out.type !== y.type || out.data.length !== length * y.data.length) {
          throw new UnsupportedGraph('Scan: a scan output changes shape between iterations');
        }
        out.data.set(y.data, (outputDirections[k] ? length - 1 - t : t) * y.data.length);
      }
    }
    return [...(args.slice(0, states) as Tensor[]), ...scanned];
  },
};

/**
 * Whether `body` is [state, row] -> [state, Σ_k (state[:, k] - row[k])²]: an Identity of the state, a Sub of the
 * two inputs (either way round), a ReduceSumSquare over axis 1 without keepdims, and at most an Identity after it.
 */
function isSquaredDistance(body: ProgramBody): boolean {
  const [state, row] = body.inputs;
  const [stateOut, out] = body.outputs;
  if (body.inputs.length !== 2 || body.outputs.length !== 2) return false;
  const producer = (slot: number | undefined) => body.nodes.find((n) => n.outputs.includes(slot ?? -2));
  const passes = producer(stateOut);
  if (!passes || passes.op !== 'Identity' || passes.inputs[0] !== state) return false;
  let last = producer(out);
  if (last?.op === 'Identity') last = producer(last.inputs[0]);
  if (last?.op !== 'ReduceSumSquare') return false;
  const { axes, keepdims } = last.params as ReduceParams;
  if (keepdims || axes?.length !== 1 || (axes[0] !== 1 && axes[0] !== -1)) return false;
  const sub = producer(last.inputs[0]);
  const operands = sub?.inputs.join();
  if (sub?.op !== 'Sub' || (operands !== `${state},${row}` && operands !== `${row},${state}`)) return false;
  // Nothing else: the nodes above are all the body computes.
  return body.nodes.length === (producer(out) === last ? 3 : 4);
}

/**
 * Row r's squared distances to the state's n rows, [rows, n]: each difference rounded to the element type as the
 * body's Sub stores it, the squares summed in double and rounded once as its ReduceSumSquare does. Undefined for
 * shapes the body would not be given (the generic loop then runs it, or fails as onnxruntime would).
 */
function squaredDistances(state: Tensor, rows: Tensor): Tensor | undefined {
  if (state.dims.length !== 2 || rows.dims.length !== 2 || state.type !== rows.type) return undefined;
  const [n, k] = state.dims as [number, number];
  const [m, width] = rows.dims as [number, number];
  if (width !== k || (state.type !== 'float' && state.type !== 'double')) return undefined;
  const out = alloc(state.type, [m, n]);
  if (state.type === 'float') distancesFloat(state.data as Float32Array, rows.data as Float32Array, out.data, m, n, k);
  else distancesDouble(state.data as Float64Array, rows.data as Float64Array, out.data, m, n, k);
  return out;
}

/** {@link squaredDistances} of float32 tensors, each difference rounded to float32 (one loop per type: see elementwise-ops.ts). */
export function distancesFloat(
  s: Float32Array,
  x: Float32Array,
  o: Tensor['data'],
  m: number,
  n: number,
  k: number,
): void {
  for (let r = 0; r < m; r++) {
    for (let j = 0; j < n; j++) {
      let sum = 0;
      for (let c = 0; c < k; c++) {
        const d = Math.fround(s[j * k + c]! - x[r * k + c]!);
        sum += d * d;
      }
      o[r * n + j] = sum;
    }
  }
}

/** {@link squaredDistances} of float64 tensors. */
export function distancesDouble(
  s: Float64Array,
  x: Float64Array,
  o: Tensor['data'],
  m: number,
  n: number,
  k: number,
): void {
  for (let r = 0; r < m; r++) {
    for (let j = 0; j < n; j++) {
      let sum = 0;
      for (let c = 0; c < k; c++) {
        const d = s[j * k + c]! - x[r * k + c]!;
        sum += d * d;
      }
      o[r * n + j] = sum;
    }
  }
}

/** Scan, by name, for the default (ai.onnx) domain. */
export const scanOps: Record<string, OpDef> = { Scan: scan };
