/**
 * The time zone database is data the stdlib reads at run time, not a module: `zoneinfo.ZoneInfo("Europe/Paris")`
 * (Django with USE_TZ and a TIME_ZONE, pydantic, APScheduler…) searches the directories of the interpreter's
 * compiled-in TZPATH, then the `tzdata` PyPI package; glibc's localtime() (time.tzset() after TZ=Europe/Paris, which
 * Django does at start) reads /usr/share/zoneinfo. The guest root has no /usr/share/zoneinfo of its own, so an image
 * whose stdlib keeps `zoneinfo` would fail with ZoneInfoNotFoundError at the first aware datetime (a pruned image
 * breaking at run time). When the app can import zoneinfo and does not ship `tzdata` in site-packages, the host's
 * database goes in, at the first TZPATH directory (≈0.5 MB compressed).
 */

/** Alternate copies of the database (leap-second "right/" zones, "posix/" duplicates) that nothing reads by default. */
export const TZ_SKIP = new Set(['right', 'posix']);

export interface TzdataPlan {
  /** the host directory copied */
  host: string;
  /** where it goes in the guest */
  guest: string;
}

/**
 * Which time zone database the image needs: null when the app cannot import zoneinfo, or brings the `tzdata`
 * package; otherwise the first TZPATH directory that exists on the host, placed at the first TZPATH directory
 * (the one the guest interpreter searches first; /usr/share/zoneinfo, glibc's too, on every usual build).
 * `missing` when the app needs one and the host has none.
 */
export function planTzdata(o: { modules: readonly string[]; tzpath: readonly string[]; siteHasTzdata: boolean; isDir: (p: string) => boolean }): TzdataPlan | 'missing' | null {
  if (!o.modules.includes('zoneinfo') || o.siteHasTzdata) return null;
  const guest = o.tzpath[0];
  const host = o.tzpath.find((p) => o.isDir(p));
  if (guest === undefined || host === undefined) return 'missing';
  return { host, guest };
}
