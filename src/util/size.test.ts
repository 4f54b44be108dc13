import { describe, expect, it } from 'vitest';
import { formatBytes, parseSizeMiB } from './size.js';

describe('parseSizeMiB', () => {
  it.each([
    ['64M', 64], ['64', 64], ['1G', 1024], ['2GiB', 2048], ['512MiB', 512], ['256mb', 256], [' 128M ', 128], [128, 128],
  ])('%j → %i MiB', (v, want) => expect(parseSizeMiB(v)).toBe(want));
  it.each(['0', 0, '0G', -1, 1.5, '12X', '1T', '', 'M', null, undefined, '1.5G', {}, 'banana', '99999999999999999999G'])('refuses %j', (v) => {
    expect(parseSizeMiB(v)).toBeNull();
  });
});

describe('formatBytes', () => {
  it.each([[null, '-'], [0, '0 B'], [1023, '1023 B'], [1536, '1.5 KiB'], [5 * 1048576, '5.0 MiB']] as const)('%j → %s', (n, s) => expect(formatBytes(n)).toBe(s));
});
