import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { UserError } from '../errors.js';
import { homeLayout, type HomeLayout } from '../paths.js';
import { accelRequest, planAccel, recordKvmVerdict } from './accel.js';

let tmp: string;
let layout: HomeLayout;

beforeEach(() => {
  tmp = mkdtempSync(join(tmpdir(), 'unik-accel-'));
  layout = homeLayout({ UNIKCTL_HOME: join(tmp, 'home') });
});
afterEach(() => {
  rmSync(tmp, { recursive: true, force: true });
});

describe('accelRequest', () => {
  it('defaults to auto', () => {
    expect(accelRequest({})).toBe('auto');
  });
  it.each([['auto', 'auto'], ['kvm', 'kvm'], ['tcg', 'tcg'], ['KVM', 'kvm'], ['Tcg', 'tcg']])('reads UNIKCTL_ACCEL=%s', (v, want) => {
    expect(accelRequest({ UNIKCTL_ACCEL: v })).toBe(want);
  });
  it.each(['xen', 'hvf', 'kvm,tcg'])('rejects UNIKCTL_ACCEL=%s with E_INVALID_ARGUMENT', (v) => {
    try {
      accelRequest({ UNIKCTL_ACCEL: v });
      expect.unreachable();
    } catch (e) {
      expect(e).toBeInstanceOf(UserError);
      expect((e as UserError).code).toBe('E_INVALID_ARGUMENT');
      expect((e as UserError).message).toContain(v);
    }
  });
});

describe('planAccel', () => {
  it('honours an explicit tcg or kvm request whatever the host', () => {
    expect(planAccel(layout, 'tcg', true, {})).toMatchObject({ accel: 'tcg', probeTimeoutMs: null });
    expect(planAccel(layout, 'kvm', false, {})).toMatchObject({ accel: 'kvm', probeTimeoutMs: null });
  });

  it('an explicit kvm request ignores a "hangs" verdict', () => {
    recordKvmVerdict(layout, 'hangs');
    expect(planAccel(layout, 'kvm', true, {})).toMatchObject({ accel: 'kvm', probeTimeoutMs: null });
  });

  it('auto without an accessible /dev/kvm uses TCG', () => {
    const p = planAccel(layout, 'auto', false, {});
    expect(p).toMatchObject({ accel: 'tcg', probeTimeoutMs: null });
    expect(p.why).toContain('/dev/kvm');
  });

  it('auto with KVM and no verdict tries KVM with the default probe deadline', () => {
    expect(planAccel(layout, 'auto', true, {})).toMatchObject({ accel: 'kvm', probeTimeoutMs: 10_000 });
  });

  it('the probe deadline comes from UNIKCTL_KVM_PROBE_TIMEOUT_MS', () => {
    expect(planAccel(layout, 'auto', true, { UNIKCTL_KVM_PROBE_TIMEOUT_MS: '2500' })).toMatchObject({ accel: 'kvm', probeTimeoutMs: 2500 });
  });

  it('a recorded "hangs" verdict means TCG', () => {
    recordKvmVerdict(layout, 'hangs');
    expect(planAccel(layout, 'auto', true, {})).toMatchObject({ accel: 'tcg', probeTimeoutMs: null });
  });

  it('a recorded "works" verdict means KVM without a probe', () => {
    recordKvmVerdict(layout, 'works');
    expect(planAccel(layout, 'auto', true, {})).toMatchObject({ accel: 'kvm', probeTimeoutMs: null });
  });

  it('a verdict does not override a missing /dev/kvm', () => {
    recordKvmVerdict(layout, 'works');
    expect(planAccel(layout, 'auto', false, {})).toMatchObject({ accel: 'tcg' });
  });

  it('the latest verdict wins', () => {
    recordKvmVerdict(layout, 'hangs');
    recordKvmVerdict(layout, 'works');
    expect(planAccel(layout, 'auto', true, {}).accel).toBe('kvm');
  });

  it('an expired verdict (older than a day) is probed again', () => {
    recordKvmVerdict(layout, 'hangs'); // creates the home directory
    writeFileSync(join(layout.home, 'accel.json'), JSON.stringify({ kvm: 'hangs', checkedAt: Date.now() - 25 * 3600 * 1000 }));
    expect(planAccel(layout, 'auto', true, {})).toMatchObject({ accel: 'kvm', probeTimeoutMs: 10_000 });
  });

  it('a corrupt verdict file is ignored', () => {
    recordKvmVerdict(layout, 'hangs');
    writeFileSync(join(layout.home, 'accel.json'), 'not json');
    expect(planAccel(layout, 'auto', true, {})).toMatchObject({ accel: 'kvm', probeTimeoutMs: 10_000 });
  });

  it('a non-numeric UNIKCTL_KVM_PROBE_TIMEOUT_MS is a clear error, never NaN', () => {
    expect(() => planAccel(layout, 'auto', true, { UNIKCTL_KVM_PROBE_TIMEOUT_MS: 'ten' })).toThrow(expect.objectContaining({ code: 'E_INVALID_ARGUMENT' }));
  });
});

describe('recordKvmVerdict', () => {
  it('creates $UNIKCTL_HOME and writes accel.json there', () => {
    expect(existsSync(layout.home)).toBe(false);
    const before = Date.now();
    recordKvmVerdict(layout, 'works');
    const v = JSON.parse(readFileSync(join(layout.home, 'accel.json'), 'utf8')) as { kvm: string; checkedAt: number };
    expect(v.kvm).toBe('works');
    expect(v.checkedAt).toBeGreaterThanOrEqual(before);
    expect(v.checkedAt).toBeLessThanOrEqual(Date.now());
  });
});
