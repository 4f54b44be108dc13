import { describe, expect, it } from 'vitest';
import { Authenticator } from './controlplane/auth.js';
import { UPLOAD_ERROR_CODES } from './store/artifacts.js';
import { createBaseApp } from './controlplane/http.js';
import { backoffMs, isRetryable, operationErrorOf } from './controlplane/queue.js';
import { ERROR_CODES, errorSpec, isErrorCode, UserError, type ErrorCode } from './errors.js';

const codes = Object.keys(ERROR_CODES) as ErrorCode[];

describe('the error table', () => {
  it('gives every code a summary, an HTTP status, a fault and a retry rule', () => {
    expect(codes.length).toBeGreaterThan(50);
    for (const code of codes) {
      const s = ERROR_CODES[code];
      expect(code, code).toMatch(/^E_[A-Z_]+$/);
      expect(s.summary.length, code).toBeGreaterThan(5);
      expect(s.status >= 400 && s.status < 600, `${code} status ${s.status}`).toBe(true);
      expect(['user', 'platform'], code).toContain(s.fault);
      expect(typeof s.retryable, code).toBe('boolean');
      // a user error is never retried: the same request gets the same answer
      if (s.fault === 'user') expect(s.retryable, code).toBe(false);
      // a user error is a 4xx; the platform's are 5xx
      expect(s.fault === 'user' ? s.status < 500 : s.status >= 500, `${code}: ${s.fault} ${s.status}`).toBe(true);
    }
  });

  it('classifies the failure classes of a deployment', () => {
    const pick = (c: ErrorCode): [string, boolean] => [ERROR_CODES[c].fault, ERROR_CODES[c].retryable];
    expect(pick('E_QEMU_FAILED')).toEqual(['platform', true]);
    expect(pick('E_BOOT_TIMEOUT')).toEqual(['platform', true]);
    expect(pick('E_GUEST_CRASHED')).toEqual(['platform', true]);
    for (const c of ['E_BUILD_FAILED', 'E_LOCK_REQUIRED', 'E_APP_CRASHED', 'E_APP_EXITED', 'E_APP_START_FAILED', 'E_INVALID_ARGUMENT', 'E_VALIDATION'] as const) {
      expect(pick(c), c).toEqual(['user', false]);
    }
  });

  it('isErrorCode knows the table; an unknown code is treated as an internal platform failure', () => {
    expect(isErrorCode('E_QEMU_FAILED')).toBe(true);
    expect(isErrorCode('E_NEWER_PEER_CODE')).toBe(false);
    expect(isErrorCode('toString')).toBe(false);
    expect(errorSpec('E_NEWER_PEER_CODE')).toBe(ERROR_CODES.E_INTERNAL);
  });

  it('the upload codes are the table\'s E_UPLOAD_* entries', () => {
    expect(UPLOAD_ERROR_CODES).toEqual(Object.fromEntries(codes.filter((c) => c.startsWith('E_UPLOAD_')).map((c) => [c, ERROR_CODES[c]])));
  });
});

describe('the queue\'s retry decision comes from the table', () => {
  it.each(codes)('%s', (code) => {
    expect(isRetryable(new UserError(code, 'x'))).toBe(ERROR_CODES[code].retryable);
  });
  it('anything thrown that is not a UserError is E_INTERNAL: retried', () => {
    expect(operationErrorOf(new Error('boom'))).toEqual({ code: 'E_INTERNAL', message: 'boom' });
    expect(isRetryable(new Error('boom'))).toBe(true);
  });
  it('backs off exponentially with jitter, capped', () => {
    const p = { maxAttempts: 5, baseMs: 100, capMs: 1000 };
    expect([1, 2, 3, 4, 5].map((a) => backoffMs(a, p, () => 1))).toEqual([100, 200, 400, 800, 1000]);
    expect(backoffMs(3, p, () => 0)).toBe(200);
  });
});

describe('the HTTP status comes from the table', () => {
  it.each(codes)('%s', async (code) => {
    const app = await createBaseApp({ auth: new Authenticator({ tokens: [] }), version: 't', title: 't', description: 't' });
    app.get('/boom', { config: { public: true } }, async () => { throw new UserError(code, `failed with ${code}`); });
    const r = await app.inject({ method: 'GET', url: '/boom' });
    expect(r.statusCode).toBe(ERROR_CODES[code].status);
    expect(r.json()).toMatchObject({ code, message: `failed with ${code}` });
    await app.close();
  });
});
