/** The names a demo fleet uses for its devices and sensors. */

/** The id of the `i`-th demo device (1-based): `dev-00001`. */
export function demoDeviceId(i: number): string {
  return `dev-${String(i).padStart(5, '0')}`;
}

/** The feature (sensor column) names of a demo fleet with `k` sensors: `s00`, `s01`, … */
export function demoFeatureNames(k: number): string[] {
  return Array.from({ length: k }, (_, j) => `s${String(j).padStart(2, '0')}`);
}
