import { randomBytes } from 'node:crypto';

/** Sortable, unique ids: `<prefix>_<ms base36><random>`. */
export function newId(prefix: 'op' | 'dep' | 'svc'): string {
  return `${prefix}_${Date.now().toString(36)}${randomBytes(5).toString('hex')}`;
}

export const NAME_RE = /^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/;

/** Turns a directory or file name into a valid deployment/package name. */
export function sanitizeName(raw: string): string {
  const s = raw.toLowerCase().replace(/[^a-z0-9-]+/g, '-').replace(/^-+|-+$/g, '').slice(0, 63).replace(/-+$/, '');
  return s.length > 0 ? s : 'app';
}
