import { UserError } from '../errors.js';
import type { UnikYamlCheck, UnikYamlDeploy } from '../image/unikyaml.js';
import {
  RESTART_POLICIES, ROLLOUT_STRATEGIES, type CheckSpec, type RestartPolicy, type RolloutPolicy, type RolloutStrategy, type ServicePolicy,
} from '../store/service-types.js';
import { durationMs, formatDuration, parseDuration } from '../util/duration.js';
import type { PortMapping } from '../util/port.js';

/**
 * A service's settings (replicas, health check, restart policy, rollout), parsed, defaulted and printed only here:
 * the deploy flags and unik.yaml's deploy:/check:/restart: keys (src/image/unikyaml.ts checks their shape) are
 * combined by resolveServicePolicy, flags first. Codes: E_INVALID_REPLICAS, E_INVALID_CHECK, E_INVALID_ROLLOUT,
 * E_INVALID_DURATION (a flag's duration), E_INVALID_ARGUMENT (--restart).
 */

export const MAX_REPLICAS = 64;
export const CHECK_DEFAULTS = { intervalMs: 2000, timeoutMs: 1000, graceMs: 5000, failures: 3 } as const;
/** checks closer together than this would load the app more than they tell */
export const MIN_CHECK_INTERVAL_MS = 100;
export const MAX_CHECK_FAILURES = 100;
export const ROLLOUT_DEFAULTS = {
  strategy: 'rolling', maxSurge: 1, maxUnavailable: 0, canary: 1,
  minHealthyMs: { rolling: 1000, canary: 10_000, immediate: 1000 },
  healthyDeadlineMs: 300_000, autoRevert: true,
} as const satisfies Omit<RolloutPolicy, 'minHealthyMs'> & { minHealthyMs: Record<RolloutStrategy, number> };
export const RESTART_DEFAULT: RestartPolicy = 'on-failure';

const CHECK_FORM = 'tcp:PORT or http:PORT/PATH, optionally followed by ,interval=2s,timeout=1s,grace=5s,failures=3 (or none for no check)';
const CHECK_OPTIONS = ['interval', 'timeout', 'grace', 'failures'] as const;

/** A check without its defaults applied: the parsed flag or unik.yaml's map form. */
type CheckParts = UnikYamlCheck;

const badCheck = (from: string, what: string, hint = `write ${CHECK_FORM}`): UserError =>
  new UserError('E_INVALID_CHECK', `${from}: ${what}`, { hint });

/** The timeout a check gets when none is written: 1s, or the interval when that is shorter. */
const defaultTimeout = (intervalMs: number): number => Math.min(CHECK_DEFAULTS.timeoutMs, intervalMs);

/** Applies the defaults and checks the ranges; `from` names the setting in errors (`--check`, `unik.yaml check`). */
function checkFrom(p: CheckParts, from: string): CheckSpec {
  if (!Number.isInteger(p.port) || p.port < 1 || p.port > 65535) throw badCheck(from, `port ${p.port} is not a port number (1-65535)`);
  const intervalMs = p.intervalMs ?? CHECK_DEFAULTS.intervalMs;
  const timeoutMs = p.timeoutMs ?? defaultTimeout(intervalMs);
  const graceMs = p.graceMs ?? CHECK_DEFAULTS.graceMs;
  const failures = p.failures ?? CHECK_DEFAULTS.failures;
  if (intervalMs < MIN_CHECK_INTERVAL_MS) throw badCheck(from, `interval ${formatDuration(intervalMs)} is shorter than ${formatDuration(MIN_CHECK_INTERVAL_MS)}`);
  if (timeoutMs <= 0 || timeoutMs > intervalMs) {
    throw badCheck(from, `timeout ${formatDuration(timeoutMs)} must be above 0 and at most the interval (${formatDuration(intervalMs)})`, 'a check ends before the next one starts: make the timeout at most the interval');
  }
  if (!Number.isInteger(failures) || failures < 1 || failures > MAX_CHECK_FAILURES) throw badCheck(from, `failures=${failures} must be an integer from 1 to ${MAX_CHECK_FAILURES}`);
  const spec: CheckSpec = { kind: p.kind, port: p.port, intervalMs, timeoutMs, graceMs, failures };
  if (p.kind === 'http') {
    const path = p.path ?? '/';
    // a comma separates the flag's options; blanks and control characters cannot be sent in a request line
    if (!/^\/[^\s,]*$/.test(path) || [...path].some((ch) => ch.charCodeAt(0) < 0x21 || ch.charCodeAt(0) === 0x7f)) {
      throw badCheck(from, `path ${JSON.stringify(path)} must start with / and hold no blanks or commas`);
    }
    spec.path = path;
  } else if (p.path !== undefined) {
    throw badCheck(from, `a tcp check has no path (got ${JSON.stringify(p.path)}); use http:${p.port}${p.path} to request it`);
  }
  return spec;
}

/** `tcp:8080`, `http:8080/healthz,interval=2s,timeout=1s,grace=10s,failures=3`; `none` is null (no check). */
export function parseCheck(spec: string): CheckSpec | null {
  return parseCheckFrom(spec, '--check');
}

function parseCheckFrom(spec: string, from: string): CheckSpec | null {
  const text = spec.trim();
  if (text === 'none') return null;
  const [head = '', ...options] = text.split(',');
  const m = /^(tcp|http):(\d+)(\/.*)?$/.exec(head);
  if (!m) {
    const kind = /^([a-z]+):/i.exec(head)?.[1];
    if (kind !== undefined && kind !== 'tcp' && kind !== 'http') throw badCheck(from, `unknown check kind "${kind}" in ${JSON.stringify(spec)}`);
    throw badCheck(from, `${JSON.stringify(head)} is not a check`);
  }
  const kind = m[1] as 'tcp' | 'http';
  const parts: CheckParts = { kind, port: Number(m[2]) };
  if (m[3] !== undefined) parts.path = m[3];
  const seen = new Set<string>();
  for (const option of options) {
    const eq = option.indexOf('=');
    const key = eq === -1 ? option : option.slice(0, eq);
    const value = eq === -1 ? '' : option.slice(eq + 1);
    if (!(CHECK_OPTIONS as readonly string[]).includes(key) || eq === -1) {
      throw badCheck(from, `"${option}" is not an option (options: ${CHECK_OPTIONS.map((o) => `${o}=…`).join(', ')})`);
    }
    if (seen.has(key)) throw badCheck(from, `${key} is given twice`);
    seen.add(key);
    if (key === 'failures') {
      if (!/^\d+$/.test(value)) throw badCheck(from, `failures=${value} must be an integer from 1 to ${MAX_CHECK_FAILURES}`);
      parts.failures = Number(value);
      continue;
    }
    const ms = durationMs(value);
    if (ms === null) throw badCheck(from, `${key}=${value}: ${JSON.stringify(value)} is not a duration`, `write durations like 500ms, 2s, 1m30s; the form is ${CHECK_FORM}`);
    if (key === 'interval') parts.intervalMs = ms;
    else if (key === 'timeout') parts.timeoutMs = ms;
    else parts.graceMs = ms;
  }
  return checkFrom(parts, from);
}

/** The --check form of a check (defaults left out), which parseCheck reads back; null is `none`. */
export function formatCheck(c: CheckSpec | null): string {
  if (c === null) return 'none';
  let out = `${c.kind}:${c.port}${c.kind === 'http' ? (c.path ?? '/') : ''}`;
  if (c.intervalMs !== CHECK_DEFAULTS.intervalMs) out += `,interval=${formatDuration(c.intervalMs)}`;
  if (c.timeoutMs !== defaultTimeout(c.intervalMs)) out += `,timeout=${formatDuration(c.timeoutMs)}`;
  if (c.graceMs !== CHECK_DEFAULTS.graceMs) out += `,grace=${formatDuration(c.graceMs)}`;
  if (c.failures !== CHECK_DEFAULTS.failures) out += `,failures=${c.failures}`;
  return out;
}

export interface ServiceFlags {
  replicas?: string;
  check?: string;
  restart?: string;
  strategy?: string;
  maxSurge?: string;
  maxUnavailable?: string;
  canary?: string;
  minHealthy?: string;
  healthyDeadline?: string;
  /** pass it only when the user gave --auto-revert / --no-auto-revert (a given flag asks for a service) */
  autoRevert?: boolean;
}

const SERVICE_FLAGS = ['replicas', 'check', 'restart', 'strategy', 'maxSurge', 'maxUnavailable', 'canary', 'minHealthy', 'healthyDeadline', 'autoRevert'] as const satisfies readonly (keyof ServiceFlags)[];

export interface ServicePolicyInput {
  flags: ServiceFlags;
  yaml: UnikYamlDeploy | undefined;
  /** the deploy's published ports: a check must name one of their guest ports */
  ports: PortMapping[];
}

/** A value and the words that name where it came from, for errors. */
interface Sourced<T> { value: T; from: string; }

function pick<F, Y>(flag: F | undefined, flagName: string, yaml: Y | undefined, yamlKey: string): Sourced<F> | Sourced<Y> | undefined {
  if (flag !== undefined) return { value: flag, from: flagName };
  if (yaml !== undefined) return { value: yaml, from: `unik.yaml ${yamlKey}` };
  return undefined;
}

/** An integer setting: a flag's text (digits only) or unik.yaml's number. */
function integerOf(v: string | number, from: string, code: 'E_INVALID_REPLICAS' | 'E_INVALID_ROLLOUT', rule: string): number {
  const n = typeof v === 'number' ? v : /^\s*\d+\s*$/.test(v) ? Number(v) : NaN;
  if (!Number.isSafeInteger(n)) throw new UserError(code, `${from}: ${JSON.stringify(v)} is not an integer`, { hint: rule });
  return n;
}

/** max surge / max unavailable: an integer ≥ 0 or a percentage of the replicas (surge rounds up, unavailable down, as Kubernetes does). */
function countOf(v: string | number, from: string, replicas: number, round: 'up' | 'down'): number {
  const text = typeof v === 'number' ? String(v) : v.trim();
  const pct = /^(\d+)%$/.exec(text);
  if (pct) {
    const exact = (Number(pct[1]) * replicas) / 100;
    return round === 'up' ? Math.ceil(exact) : Math.floor(exact);
  }
  if (/^\d+$/.test(text)) return Number(text);
  throw new UserError('E_INVALID_ROLLOUT', `${from}: ${JSON.stringify(v)} is not a count`, { hint: 'write an integer of replicas (0, 1, 2…) or a percentage of the replicas (25%)' });
}

function durationOf(v: string | number, from: string): number {
  return typeof v === 'number' ? v : parseDuration(v, from);
}

/**
 * The service a deploy asks for — flags over unik.yaml over the defaults — or null when neither asks for one (no
 * service flag given and no deploy:/check:/restart: in unik.yaml: a plain deployment).
 */
export function resolveServicePolicy(input: ServicePolicyInput): ServicePolicy | null {
  const { flags, ports } = input;
  const yaml: UnikYamlDeploy = input.yaml ?? {};
  // the known keys only: a caller may hand over a wider options object (commander's) typed as ServiceFlags
  const flagGiven = SERVICE_FLAGS.some((k) => flags[k] !== undefined);
  if (!flagGiven && input.yaml === undefined) return null;

  // replicas
  const replicasIn = pick(flags.replicas, '--replicas', yaml.replicas, 'deploy.replicas');
  const replicasRule = `a service runs 1 to ${MAX_REPLICAS} replicas`;
  const replicas = replicasIn ? integerOf(replicasIn.value, replicasIn.from, 'E_INVALID_REPLICAS', replicasRule) : 1;
  if (replicas < 1 || replicas > MAX_REPLICAS) {
    throw new UserError('E_INVALID_REPLICAS', `${replicasIn?.from ?? '--replicas'}: ${replicas} replicas is out of range`, { hint: replicasRule });
  }

  // check
  let check: CheckSpec | null = null;
  const checkIn = pick(flags.check, '--check', yaml.check, 'check');
  if (checkIn) {
    check = typeof checkIn.value === 'string' ? parseCheckFrom(checkIn.value, checkIn.from) : checkFrom(checkIn.value, checkIn.from);
  }
  if (check && !ports.some((p) => p.guestPort === check.port)) {
    const published = [...new Set(ports.map((p) => p.guestPort))];
    throw badCheck(
      checkIn?.from ?? '--check',
      `port ${check.port} is not a published guest port (published: ${published.length ? published.join(', ') : 'none'})`,
      `the controller checks each replica through the loopback forward of a published port, so check one of the published guest ports${published.length ? ` (${published.join(', ')})` : ''}, or publish this one with -p HOST:${check.port}`,
    );
  }

  // restart
  const restartIn = pick(flags.restart, '--restart', yaml.restart, 'restart');
  let restart: RestartPolicy = RESTART_DEFAULT;
  if (restartIn) {
    if (!(RESTART_POLICIES as readonly string[]).includes(restartIn.value)) {
      throw new UserError('E_INVALID_ARGUMENT', `${restartIn.from}: unknown restart policy ${JSON.stringify(restartIn.value)}`, { hint: `use one of ${RESTART_POLICIES.join(', ')}` });
    }
    restart = restartIn.value as RestartPolicy;
  }

  // rollout
  const strategyIn = pick(flags.strategy, '--strategy', yaml.strategy, 'deploy.strategy');
  let strategy: RolloutStrategy = ROLLOUT_DEFAULTS.strategy;
  if (strategyIn) {
    if (!(ROLLOUT_STRATEGIES as readonly string[]).includes(strategyIn.value)) {
      throw new UserError('E_INVALID_ROLLOUT', `${strategyIn.from}: unknown strategy ${JSON.stringify(strategyIn.value)}`, { hint: `use one of ${ROLLOUT_STRATEGIES.join(', ')}` });
    }
    strategy = strategyIn.value as RolloutStrategy;
  }
  const rolloutError = (from: string, what: string, hint: string): UserError => new UserError('E_INVALID_ROLLOUT', `${from}: ${what}`, { hint });

  const surgeIn = pick(flags.maxSurge, '--max-surge', yaml.maxSurge, 'deploy.max_surge');
  const unavailableIn = pick(flags.maxUnavailable, '--max-unavailable', yaml.maxUnavailable, 'deploy.max_unavailable');
  const maxSurge = surgeIn ? countOf(surgeIn.value, surgeIn.from, replicas, 'up') : ROLLOUT_DEFAULTS.maxSurge;
  const maxUnavailable = unavailableIn ? countOf(unavailableIn.value, unavailableIn.from, replicas, 'down') : ROLLOUT_DEFAULTS.maxUnavailable;
  if (strategy === 'rolling') {
    const names = `${surgeIn?.from ?? '--max-surge'} and ${unavailableIn?.from ?? '--max-unavailable'}`;
    if (maxSurge === 0 && maxUnavailable === 0) {
      throw rolloutError(names, 'both are 0 (after rounding percentages), so a rolling update could never replace a replica', 'allow one extra replica (max surge 1, the default) or one replica out of rotation (max unavailable 1)');
    }
    if (maxUnavailable >= replicas) {
      throw rolloutError(unavailableIn?.from ?? '--max-unavailable', `${maxUnavailable} of ${replicas} replicas may be unavailable, so the service could stop serving`, `keep it below the replica count (at most ${replicas - 1}), or use --strategy immediate to replace every replica at once`);
    }
  }

  const canaryIn = pick(flags.canary, '--canary', yaml.canary, 'deploy.canary');
  const canaryRule = `the canary is 1 to ${replicas} replicas of the new version (at most the replica count)`;
  const canary = canaryIn ? integerOf(canaryIn.value, canaryIn.from, 'E_INVALID_ROLLOUT', canaryRule) : ROLLOUT_DEFAULTS.canary;
  if (canary < 1 || (strategy === 'canary' && canary > replicas)) throw rolloutError(canaryIn?.from ?? '--canary', `${canary} canary replicas with ${replicas} replicas`, canaryRule);

  const minHealthyIn = pick(flags.minHealthy, '--min-healthy', yaml.minHealthyMs, 'deploy.min_healthy');
  const deadlineIn = pick(flags.healthyDeadline, '--healthy-deadline', yaml.healthyDeadlineMs, 'deploy.healthy_deadline');
  const minHealthyMs = minHealthyIn ? durationOf(minHealthyIn.value, minHealthyIn.from) : ROLLOUT_DEFAULTS.minHealthyMs[strategy];
  const healthyDeadlineMs = deadlineIn ? durationOf(deadlineIn.value, deadlineIn.from) : ROLLOUT_DEFAULTS.healthyDeadlineMs;
  if (healthyDeadlineMs <= minHealthyMs) {
    throw rolloutError(
      deadlineIn?.from ?? minHealthyIn?.from ?? '--healthy-deadline',
      `the healthy deadline (${formatDuration(healthyDeadlineMs)}) must be longer than the time a replica must stay healthy (${formatDuration(minHealthyMs)})`,
      'raise --healthy-deadline or lower --min-healthy',
    );
  }
  const autoRevertIn = pick(flags.autoRevert, '--auto-revert', yaml.autoRevert, 'deploy.auto_revert');
  const autoRevert = autoRevertIn ? autoRevertIn.value : ROLLOUT_DEFAULTS.autoRevert;

  return { replicas, check, restart, rollout: { strategy, maxSurge, maxUnavailable, canary, minHealthyMs, healthyDeadlineMs, autoRevert } };
}
