import { describe, expect, it } from 'vitest';
import { UserError } from '../errors.js';
import { durationMs, formatDuration, formatElapsed, parseDuration } from './duration.js';

describe('parseDuration', () => {
  it.each([
    ['500ms', 500], ['2s', 2000], ['1m', 60_000], ['1m30s', 90_000], ['1h', 3_600_000], ['1d', 86_400_000],
    ['1.5s', 1500], ['0s', 0], ['1h2m3s4ms', 3_723_004], [' 10m ', 600_000], ['2s250ms', 2250], ['0.5ms', 1],
  ])('%j → %i ms', (text, ms) => expect(parseDuration(text, '--x')).toBe(ms));

  it.each(['', '10', 'ms', '5m3', '-5m', '+1s', 'm5', '1 s', '1sec', '1.s', '.5s', '1y', 'infinity', '1e3s', '99999999999999999999h'])(
    'refuses %j with E_INVALID_DURATION naming the setting',
    (text) => {
      expect(durationMs(text)).toBeNull();
      let err: unknown;
      try {
        parseDuration(text, '--min-healthy');
      } catch (e) {
        err = e;
      }
      expect(err).toBeInstanceOf(UserError);
      expect((err as UserError).code).toBe('E_INVALID_DURATION');
      expect((err as UserError).message).toContain('--min-healthy');
      expect((err as UserError).hint).toContain('1m30s');
    },
  );
});

describe('formatDuration', () => {
  it.each([[500, '500ms'], [2000, '2s'], [90_000, '1m30s'], [3_600_000, '1h'], [2250, '2s250ms'], [0, '0s'], [86_400_000, '24h'], [1_000.4, '1s'], [-1500, '-1s500ms']] as const)(
    '%i → %s',
    (ms, text) => expect(formatDuration(ms)).toBe(text),
  );
  it('reads back with parseDuration', () => {
    for (const ms of [1, 999, 1000, 1001, 59_999, 60_000, 61_000, 3_599_999, 3_600_000, 3_661_001, 300_000, 7 * 86_400_000]) {
      expect(parseDuration(formatDuration(ms), 'x')).toBe(ms);
    }
  });
});

describe('formatElapsed (measured times for people)', () => {
  it.each([[null, '-'], [undefined, '-'], [Number.NaN, '-'], [384, '384ms'], [4100, '4.1s'], [252_000, '4m12s'], [7_500_000, '2h5m'], [266_400_000, '3d2h']] as const)(
    '%j → %s',
    (ms, text) => expect(formatElapsed(ms)).toBe(text),
  );
});
