// Summary statistics for benchmark samples (milliseconds).

/** Percentile by linear interpolation between closest ranks (numpy's default); `p` in [0, 100]. */
export function percentile(sorted, p) {
  if (sorted.length === 0) return NaN;
  const h = (sorted.length - 1) * (p / 100);
  const lo = Math.floor(h);
  const hi = Math.ceil(h);
  return sorted[lo] + (sorted[hi] - sorted[lo]) * (h - lo);
}

export function summarize(values) {
  const v = values.filter((x) => Number.isFinite(x)).sort((a, b) => a - b);
  const r = (x) => Math.round(x * 10) / 10;
  if (v.length === 0) return { n: 0, min: NaN, p50: NaN, p95: NaN, max: NaN, mean: NaN };
  return {
    n: v.length,
    min: r(v[0]),
    p50: r(percentile(v, 50)),
    p95: r(percentile(v, 95)),
    max: r(v[v.length - 1]),
    mean: r(v.reduce((a, b) => a + b, 0) / v.length),
  };
}
