/** One sample of a metric in Prometheus' text format: its label set as written (`{pool="cpu",...}`, or '') and value. */
export interface MetricSample {
  labels: string;
  value: number;
}

/** The samples of metric `name` in a Prometheus text exposition (a `/metrics` response body). */
export function metricSamples(text: string, name: string): MetricSample[] {
  const samples: MetricSample[] = [];
  for (const line of text.split('\n')) {
    if (!line.startsWith(name)) continue;
    const next = line[name.length];
    if (next !== '{' && next !== ' ') continue;
    const labels = next === '{' ? line.slice(name.length, line.lastIndexOf('}') + 1) : '';
    samples.push({ labels, value: Number(line.slice(line.lastIndexOf(' ') + 1)) });
  }
  return samples;
}
