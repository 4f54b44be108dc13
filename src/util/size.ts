/**
 * Sizes: parsed and printed only here. Memory sizes are MiB: `128`, `128M`, `128MiB`, `1G`, `1GiB` (M and G are
 * binary units, as in QEMU's -m and Docker's --memory).
 */

/** A memory size in MiB, or null when `v` is not one (a positive integer is taken as MiB). */
export function parseSizeMiB(v: unknown): number | null {
  if (typeof v === 'number') return Number.isInteger(v) && v > 0 ? v : null;
  if (typeof v !== 'string') return null;
  const m = /^(\d+)\s*(M|Mi|MB|MiB|G|Gi|GB|GiB)?$/i.exec(v.trim());
  if (!m || !m[1]) return null;
  const n = Number(m[1]);
  const mib = (m[2] ?? 'M').toUpperCase().startsWith('G') ? n * 1024 : n;
  return mib > 0 && Number.isSafeInteger(mib) ? mib : null;
}

/** Bytes for people: `512 B`, `3.2 KiB`, `41.9 MiB`; `-` when unknown. */
export function formatBytes(n: number | null | undefined): string {
  if (n === null || n === undefined) return '-';
  if (n < 1024) return `${n} B`;
  if (n < 1024 * 1024) return `${(n / 1024).toFixed(1)} KiB`;
  return `${(n / 1024 / 1024).toFixed(1)} MiB`;
}
