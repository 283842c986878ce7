/**
 * Run with `node --expose-gc --import tsx`: compiles and links a scikit-learn fixture `copies` times, keeps every
 * program, and prints one JSON line with the bytes a program counts for the compiled-programs cache and the bytes
 * each really added to the heap and array buffers after a full collection.
 */
import { compileGraph } from '../../lib/models/fast-paths/graph-program';
import { linkProgram, type LinkedProgram } from '../../lib/models/fast-paths/graph-evaluator';
import { sklearnFixture } from './sklearn-cases';

const [fixture = 'ocsvm', input = 'X', output = 'scores', copies = '1000'] = process.argv.slice(2);
const gc = (globalThis as { gc?: () => void }).gc;
if (!gc) throw new Error('run with node --expose-gc');
const bytes = new Uint8Array(sklearnFixture(fixture, 'model.onnx'));
/** Heap and array buffers in use once collections have run and freed buffers have been released. */
const held = async (): Promise<number> => {
  for (let i = 0; i < 2; i++) {
    gc();
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  const m = process.memoryUsage();
  return m.heapUsed + m.arrayBuffers;
};

async function main(n: number): Promise<void> {
  const kept: LinkedProgram[] = [];
  const before = await held();
  let counted = 0;
  for (let i = 0; i < n; i++) {
    const program = compileGraph(bytes, input, output);
    counted += program.bytes;
    kept.push(linkProgram(program));
  }
  const real = ((await held()) - before) / n;
  console.log(JSON.stringify({ fixture, programs: kept.length, counted: counted / n, real }));
}

void main(Number(copies));
