import { describe, expect, it } from 'vitest';
import { planTzdata } from './tzdata.js';

const TZPATH = ['/usr/share/zoneinfo', '/usr/lib/zoneinfo', '/usr/share/lib/zoneinfo', '/etc/zoneinfo'];

describe('python pack: the time zone database (zoneinfo reads it at run time)', () => {
  it('goes in when the pruned stdlib keeps zoneinfo: the first TZPATH directory of the host, at the first TZPATH directory', () => {
    expect(planTzdata({ modules: ['os', 'zoneinfo', 'zoneinfo._common'], tzpath: TZPATH, siteHasTzdata: false, isDir: (p) => p === '/usr/share/zoneinfo' }))
      .toEqual({ host: '/usr/share/zoneinfo', guest: '/usr/share/zoneinfo' });
    // a host that keeps it elsewhere: the guest interpreter still searches its first TZPATH entry first
    expect(planTzdata({ modules: ['zoneinfo'], tzpath: TZPATH, siteHasTzdata: false, isDir: (p) => p === '/etc/zoneinfo' }))
      .toEqual({ host: '/etc/zoneinfo', guest: '/usr/share/zoneinfo' });
  });

  it('stays out when the app cannot import zoneinfo, or ships the tzdata package (zoneinfo falls back to it)', () => {
    expect(planTzdata({ modules: ['os', 'datetime', '_zoneinfo'], tzpath: TZPATH, siteHasTzdata: false, isDir: () => true })).toBeNull();
    expect(planTzdata({ modules: ['zoneinfo'], tzpath: TZPATH, siteHasTzdata: true, isDir: () => true })).toBeNull();
  });

  it('is reported missing when the app needs it and the host has none', () => {
    expect(planTzdata({ modules: ['zoneinfo'], tzpath: TZPATH, siteHasTzdata: false, isDir: () => false })).toBe('missing');
    expect(planTzdata({ modules: ['zoneinfo'], tzpath: [], siteHasTzdata: false, isDir: () => true })).toBe('missing');
  });
});
