import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { UserError } from '../errors.js';
import type { HomeLayout } from '../paths.js';
import { envMs } from '../util/proc.js';
import { kvmAccessible } from './qemu.js';
import type { Accel } from './vmm.js';

export type AccelRequest = 'auto' | 'kvm' | 'tcg';

export interface AccelPlan {
  /** what to try first */
  accel: Accel;
  /** when KVM is tried without proof that it boots guests here: fall back to TCG if no app start within this time */
  probeTimeoutMs: number | null;
  why: string;
}

interface Verdict { kvm: 'works' | 'hangs'; checkedAt: number; }

const verdictFile = (layout: HomeLayout): string => join(layout.home, 'accel.json');
/** A KVM verdict is re-checked after a day: a host may get fixed. */
const VERDICT_TTL_MS = 24 * 3600 * 1000;

export function accelRequest(env: NodeJS.ProcessEnv = process.env): AccelRequest {
  const v = (env.UNIKCTL_ACCEL ?? 'auto').toLowerCase();
  if (v === 'auto' || v === 'kvm' || v === 'tcg') return v;
  throw new UserError('E_INVALID_ARGUMENT', `UNIKCTL_ACCEL=${env.UNIKCTL_ACCEL} is not one of auto, kvm, tcg`);
}

function readVerdict(layout: HomeLayout): Verdict | null {
  try {
    const v = JSON.parse(readFileSync(verdictFile(layout), 'utf8')) as Verdict;
    return Date.now() - v.checkedAt < VERDICT_TTL_MS ? v : null;
  } catch {
    return null;
  }
}

export function recordKvmVerdict(layout: HomeLayout, kvm: Verdict['kvm']): void {
  const file = verdictFile(layout);
  mkdirSync(dirname(file), { recursive: true });
  writeFileSync(file, JSON.stringify({ kvm, checkedAt: Date.now() } satisfies Verdict));
}

/**
 * RT-1: KVM when it works, TCG otherwise. /dev/kvm may exist and still hang a guest, so under `auto`
 * an unproven KVM gets a boot deadline; the outcome is remembered in $UNIKCTL_HOME/accel.json.
 */
export function planAccel(layout: HomeLayout, request: AccelRequest, kvmOk = kvmAccessible(), env: NodeJS.ProcessEnv = process.env): AccelPlan {
  if (request === 'tcg') return { accel: 'tcg', probeTimeoutMs: null, why: 'UNIKCTL_ACCEL=tcg' };
  if (request === 'kvm') return { accel: 'kvm', probeTimeoutMs: null, why: 'UNIKCTL_ACCEL=kvm' };
  if (!kvmOk) return { accel: 'tcg', probeTimeoutMs: null, why: '/dev/kvm is not accessible' };
  const verdict = readVerdict(layout);
  if (verdict?.kvm === 'hangs') return { accel: 'tcg', probeTimeoutMs: null, why: 'KVM hung a guest on this host earlier (see accel.json)' };
  if (verdict?.kvm === 'works') return { accel: 'kvm', probeTimeoutMs: null, why: 'KVM booted guests on this host before' };
  const probe = envMs(env, 'UNIKCTL_KVM_PROBE_TIMEOUT_MS', 10_000);
  return { accel: 'kvm', probeTimeoutMs: probe, why: 'trying KVM (falls back to TCG if the guest does not boot)' };
}
