import { spawnSync } from 'node:child_process';

/** A system account as the name service knows it (getent, so NSS sources other than /etc/passwd count too). */
export interface SystemUser { name: string; uid: number; gid: number; }

export function lookupUser(name: string): SystemUser | null {
  const r = spawnSync('getent', ['passwd', name], { encoding: 'utf8' });
  const f = (r.stdout ?? '').trim().split(':');
  if (r.status !== 0 || f.length < 4) return null;
  return { name, uid: Number(f[2]), gid: Number(f[3]) };
}

/** A group's name and members by name or gid (null: no such group). */
export function lookupGroup(nameOrGid: string): { name: string; gid: number; members: string[] } | null {
  const r = spawnSync('getent', ['group', nameOrGid], { encoding: 'utf8' });
  const f = (r.stdout ?? '').trim().split(':');
  if (r.status !== 0 || f.length < 4 || !f[0]) return null;
  return { name: f[0], gid: Number(f[2]), members: (f[3] ?? '').split(',').filter(Boolean) };
}
