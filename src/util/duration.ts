import { UserError } from '../errors.js';

/**
 * Durations: parsed and printed only here. A duration is one or more `<number><unit>` parts, units `ms`, `s`, `m`,
 * `h`, `d` (`500ms`, `2s`, `1m30s`, `1.5h`); no sign, no bare number. Values are milliseconds (whole numbers).
 *
 * Two printers: `formatDuration` is exact and reads back with `parseDuration` (settings: a check's interval, a
 * rollout's deadline); `formatElapsed` rounds for people (measured times in `status`: `1.5s`, `4m12s`, `3d2h`).
 * `logs --since` (src/runtime/logstore.ts parseSince) is a point in time; its relative form uses `durationMs`.
 */

const UNIT_MS = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 } as const;
type Unit = keyof typeof UNIT_MS;

/** The milliseconds of a duration, or null when `text` is not one (surrounding blanks are ignored). */
export function durationMs(text: string): number | null {
  const v = text.trim();
  if (v === '') return null;
  const part = /(\d+(?:\.\d+)?)(ms|[smhd])/y;
  let ms = 0;
  while (part.lastIndex < v.length) {
    const m = part.exec(v);
    if (!m) return null;
    ms += Number(m[1]) * UNIT_MS[m[2] as Unit];
  }
  const out = Math.round(ms);
  return Number.isSafeInteger(out) ? out : null;
}

/** A duration in milliseconds; `what` names the setting in the error (`--check interval`, `unik.yaml deploy.min_healthy`). */
export function parseDuration(text: string, what: string): number {
  const ms = durationMs(text);
  if (ms === null) {
    throw new UserError('E_INVALID_DURATION', `${what}: ${JSON.stringify(text)} is not a duration`, {
      hint: 'write a number and a unit: 500ms, 2s, 1m, 1m30s, 1h',
    });
  }
  return ms;
}

/** The exact, shortest form of a duration that `parseDuration` reads back: `500ms`, `2s`, `1m30s`, `1h`, `2s250ms`, `0s`. */
export function formatDuration(ms: number): string {
  if (!Number.isFinite(ms)) return String(ms);
  let rest = Math.round(Math.abs(ms));
  if (rest === 0) return '0s';
  let out = '';
  for (const unit of ['h', 'm', 's', 'ms'] as const) {
    const n = Math.floor(rest / UNIT_MS[unit]);
    if (n > 0) out += `${n}${unit}`;
    rest -= n * UNIT_MS[unit];
  }
  return ms < 0 ? `-${out}` : out;
}

/** A measured time for people, rounded to two units at most: `640ms`, `1.5s`, `4m12s`, `2h5m`, `3d2h`; `-` when unknown. */
export function formatElapsed(ms: number | null | undefined): string {
  if (ms === null || ms === undefined || Number.isNaN(ms)) return '-';
  if (ms < 1000) return `${Math.round(ms)}ms`;
  const s = ms / 1000;
  if (s < 60) return `${s.toFixed(1)}s`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m}m${Math.floor(s % 60)}s`;
  const h = Math.floor(m / 60);
  return h < 48 ? `${h}h${m % 60}m` : `${Math.floor(h / 24)}d${h % 24}h`;
}
