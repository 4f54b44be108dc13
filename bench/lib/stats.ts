// Summary statistics for benchmark samples (milliseconds).

/** Percentile by linear interpolation between closest ranks (numpy's default); `p` in [0, 100]. */
export function percentile(sorted: ArrayLike<number>, p: number): number {
  if (sorted.length === 0) return NaN;
  const h = (sorted.length - 1) * (p / 100);
  const lo = Math.floor(h);
  const hi = Math.ceil(h);
  const a = sorted[lo] as number;
  return a + ((sorted[hi] as number) - a) * (h - lo);
}

export interface Summary { n: number; min: number; p50: number; p95: number; max: number; mean: number }

export function summarize(values: ReadonlyArray<number | null | undefined>): Summary {
  const v = values.filter((x): x is number => Number.isFinite(x)).sort((a, b) => a - b);
  const r = (x: number): number => Math.round(x * 10) / 10;
  if (v.length === 0) return { n: 0, min: NaN, p50: NaN, p95: NaN, max: NaN, mean: NaN };
  return {
    n: v.length,
    min: r(v[0] as number),
    p50: r(percentile(v, 50)),
    p95: r(percentile(v, 95)),
    max: r(v[v.length - 1] as number),
    mean: r(v.reduce((a, b) => a + b, 0) / v.length),
  };
}
