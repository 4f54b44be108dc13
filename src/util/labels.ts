import { UserError } from '../errors.js';

/** `key=value` labels (the value may itself hold `=`: `k=v=w` is key `k`, value `v=w`); parsed and printed only here. */
export function parseLabels(items: string[], flag = '--label'): Record<string, string> {
  const labels: Record<string, string> = {};
  for (const item of items) {
    const i = item.indexOf('=');
    const k = i > 0 ? item.slice(0, i) : '';
    const v = i > 0 ? item.slice(i + 1) : undefined;
    if (!k || v === undefined) throw new UserError('E_INVALID_ARGUMENT', `${flag} "${item}" is not key=value`);
    labels[k] = v;
  }
  return labels;
}

/** The `key=value` items of a label set (the inverse of parseLabels). */
export function formatLabels(labels: Record<string, string>): string[] {
  return Object.entries(labels).map(([k, v]) => `${k}=${v}`);
}
