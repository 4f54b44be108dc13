import { describe, expect, it } from 'vitest';
import type { RestartRecord } from '../store/service-types.js';
import { CRASH_LOOP_RESTARTS, crashLooping, recentRestarts, RESTART_WINDOW_MS, restartDelayMs, shouldRestart } from './restart.js';

const restart = (at: number, replica = 'web.1'): RestartRecord => ({ at, replica, code: 'E_APP_EXITED', exitCode: 1, reason: 'exited with 1' });

describe('restartDelayMs', () => {
  it('doubles from 1s and stops at 30s', () => {
    expect([0, 1, 2, 3, 4, 5, 6, 50, 10_000].map(restartDelayMs)).toEqual([1000, 2000, 4000, 8000, 16_000, 30_000, 30_000, 30_000, 30_000]);
  });
  it('takes a negative or fractional count as its floor, at least 0', () => {
    expect(restartDelayMs(-3)).toBe(1000);
    expect(restartDelayMs(2.7)).toBe(4000);
  });
});

describe('crash loops', () => {
  const now = 1_000_000;
  it(`is ${CRASH_LOOP_RESTARTS} restarts of any replicas within ${RESTART_WINDOW_MS / 1000}s`, () => {
    expect(crashLooping([], now)).toBe(false);
    expect(crashLooping([restart(now - 1000), restart(now - 2000, 'web.2')], now)).toBe(false);
    expect(crashLooping([restart(now - 1000), restart(now - 2000, 'web.2'), restart(now - 59_000, 'web.3')], now)).toBe(true);
  });
  it('forgets restarts older than the window (and ignores records from the future)', () => {
    const old = [restart(now - RESTART_WINDOW_MS), restart(now - RESTART_WINDOW_MS - 1), restart(now - 5000), restart(now - 10)];
    expect(recentRestarts(old, now)).toBe(2);
    expect(crashLooping(old, now)).toBe(false);
    expect(recentRestarts([restart(now + 5000)], now)).toBe(0);
  });
  it('counts one replica\'s restarts for its backoff', () => {
    const rs = [restart(now - 1000, 'web.1'), restart(now - 2000, 'web.2'), restart(now - 3000, 'web.1')];
    expect(recentRestarts(rs, now, 'web.1')).toBe(2);
    expect(recentRestarts(rs, now, 'web.3')).toBe(0);
  });
});

describe('shouldRestart', () => {
  it.each([
    ['always', 'exited', 0, true], ['always', 'exited', 3, true], ['always', 'failed', null, true],
    ['never', 'exited', 0, false], ['never', 'exited', 3, false], ['never', 'failed', null, false],
    ['on-failure', 'exited', 0, false], ['on-failure', 'exited', 3, true], ['on-failure', 'exited', null, true], ['on-failure', 'failed', null, true], ['on-failure', 'failed', 0, true],
  ] as const)('%s, %s(%j) → %j', (policy, state, exitCode, want) => {
    expect(shouldRestart(policy, { state, exitCode })).toBe(want);
  });
});
