/**
 * Jest runs each test file in its own realm, but onnxruntime-node creates output arrays in Node's main realm
 * and onnxruntime-common checks them with `instanceof` (onnxruntime#16622). Recognise typed arrays from either
 * realm, for every test file (jest `setupFiles`). Production code runs in one realm and needs none of this.
 */
for (const C of [Float32Array, Float64Array, BigInt64Array]) {
  const tag = `[object ${C.name}]`;
  Object.defineProperty(C, Symbol.hasInstance, {
    configurable: true,
    value: (v: unknown) => Object.prototype.toString.call(v) === tag,
  });
}
