import { describe, expect, it } from 'vitest';
import { UserError, type ErrorCode } from '../errors.js';
import type { UnikYamlDeploy } from '../image/unikyaml.js';
import type { CheckSpec } from '../store/service-types.js';
import { parsePorts } from '../util/port.js';
import { formatCheck, parseCheck, resolveServicePolicy, type ServiceFlags } from './service-policy.js';

function failure(f: () => unknown): UserError {
  try {
    f();
  } catch (e) {
    expect(e).toBeInstanceOf(UserError);
    return e as UserError;
  }
  throw new Error('expected an error');
}

const DEFAULTS = { intervalMs: 2000, timeoutMs: 1000, graceMs: 5000, failures: 3 };

describe('parseCheck', () => {
  it.each([
    ['tcp:8080', { kind: 'tcp', port: 8080, ...DEFAULTS }],
    ['http:8080/healthz', { kind: 'http', port: 8080, path: '/healthz', ...DEFAULTS }],
    ['http:8080', { kind: 'http', port: 8080, path: '/', ...DEFAULTS }],
    ['http:8080/healthz,interval=5s,timeout=2s,grace=10s,failures=1', { kind: 'http', port: 8080, path: '/healthz', intervalMs: 5000, timeoutMs: 2000, graceMs: 10_000, failures: 1 }],
    ['http:3000/ready?full=1,grace=0s', { kind: 'http', port: 3000, path: '/ready?full=1', ...DEFAULTS, graceMs: 0 }],
    // an interval below 1s shortens the default timeout with it
    ['tcp:80,interval=500ms', { kind: 'tcp', port: 80, ...DEFAULTS, intervalMs: 500, timeoutMs: 500 }],
    [' tcp:80 ', { kind: 'tcp', port: 80, ...DEFAULTS }],
  ] as const)('%j', (spec, want) => {
    expect(parseCheck(spec)).toEqual(want);
  });

  it('none is no check', () => {
    expect(parseCheck('none')).toBeNull();
    expect(formatCheck(null)).toBe('none');
  });

  it.each([
    ['', 'is not a check'],
    ['8080', 'is not a check'],
    ['udp:53', 'unknown check kind "udp"'],
    ['grpc:50051', 'unknown check kind "grpc"'],
    ['tcp:', 'is not a check'],
    ['tcp:0', 'port 0 is not a port number'],
    ['http:70000/', 'port 70000 is not a port number'],
    ['tcp:8080/healthz', 'a tcp check has no path'],
    ['http:8080/a b', 'must start with / and hold no blanks'],
    ['http:8080/x,retries=3', '"retries=3" is not an option'],
    ['http:8080/x,interval', '"interval" is not an option'],
    ['http:8080/x,interval=2', 'interval=2: "2" is not a duration'],
    ['tcp:8080,failures=0', 'failures=0 must be an integer from 1 to 100'],
    ['tcp:8080,failures=x', 'failures=x must be an integer'],
    ['tcp:8080,interval=10ms', 'interval 10ms is shorter than 100ms'],
    ['tcp:8080,interval=1s,timeout=2s', 'timeout 2s must be above 0 and at most the interval (1s)'],
    ['tcp:8080,timeout=0s', 'timeout 0s must be above 0'],
    ['tcp:8080,grace=1s,grace=2s', 'grace is given twice'],
  ])('refuses %j with E_INVALID_CHECK naming the bad part', (spec, mentions) => {
    const e = failure(() => parseCheck(spec));
    expect(e.code).toBe('E_INVALID_CHECK');
    expect(e.message).toContain('--check');
    expect(e.message).toContain(mentions);
    expect(e.hint).toBeTruthy();
  });

  it('the form is in the hint', () => {
    expect(failure(() => parseCheck('bogus')).hint).toContain('http:PORT/PATH');
  });
});

describe('formatCheck', () => {
  it.each([
    ['tcp:8080', 'tcp:8080'],
    ['http:8080', 'http:8080/'],
    ['http:8080/healthz,interval=2s,timeout=1s,grace=5s,failures=3', 'http:8080/healthz'],
    ['http:8080/healthz,failures=5,grace=1m30s,timeout=1500ms,interval=3s', 'http:8080/healthz,interval=3s,timeout=1s500ms,grace=1m30s,failures=5'],
    ['tcp:80,interval=500ms', 'tcp:80,interval=500ms'],
    ['tcp:80,interval=500ms,timeout=200ms', 'tcp:80,interval=500ms,timeout=200ms'],
  ])('%j prints as %j and reads back the same', (spec, printed) => {
    const c = parseCheck(spec) as CheckSpec;
    expect(formatCheck(c)).toBe(printed);
    expect(parseCheck(formatCheck(c))).toEqual(c);
  });
});

const ports = parsePorts(['8080:8080', '9000:9090']);
const resolve = (flags: ServiceFlags, yaml?: UnikYamlDeploy, p = ports): ReturnType<typeof resolveServicePolicy> => resolveServicePolicy({ flags, yaml, ports: p });

describe('resolveServicePolicy', () => {
  it('is null when neither the flags nor unik.yaml ask for a service', () => {
    expect(resolve({})).toBeNull();
    expect(resolve({ replicas: undefined, check: undefined })).toBeNull();
    const wider = { name: 'web', memory: '64M' } as ServiceFlags; // e.g. commander's whole options object
    expect(resolve(wider)).toBeNull();
  });

  it('fills the defaults', () => {
    expect(resolve({ replicas: '3' })).toEqual({
      replicas: 3,
      check: null,
      restart: 'on-failure',
      rollout: { strategy: 'rolling', maxSurge: 1, maxUnavailable: 0, canary: 1, minHealthyMs: 1000, healthyDeadlineMs: 300_000, autoRevert: true },
    });
    // any service setting asks for a service of one replica
    expect(resolve({ restart: 'always' })).toMatchObject({ replicas: 1, restart: 'always' });
    expect(resolve({}, { check: 'tcp:8080' })).toMatchObject({ replicas: 1, check: { kind: 'tcp', port: 8080 } });
  });

  it('a canary rollout waits 10s of health by default', () => {
    expect(resolve({ replicas: '2', strategy: 'canary' })?.rollout).toMatchObject({ strategy: 'canary', minHealthyMs: 10_000 });
    expect(resolve({ strategy: 'immediate' })?.rollout).toMatchObject({ strategy: 'immediate', minHealthyMs: 1000 });
  });

  it('takes unik.yaml, and the flags over it', () => {
    const yaml: UnikYamlDeploy = {
      replicas: 4, strategy: 'rolling', maxSurge: '50%', maxUnavailable: 1, canary: 2, minHealthyMs: 3000, healthyDeadlineMs: 60_000, autoRevert: false,
      check: { kind: 'http', port: 8080, path: '/healthz', graceMs: 10_000 }, restart: 'always',
    };
    expect(resolve({}, yaml)).toEqual({
      replicas: 4,
      check: { kind: 'http', port: 8080, path: '/healthz', intervalMs: 2000, timeoutMs: 1000, graceMs: 10_000, failures: 3 },
      restart: 'always',
      rollout: { strategy: 'rolling', maxSurge: 2, maxUnavailable: 1, canary: 2, minHealthyMs: 3000, healthyDeadlineMs: 60_000, autoRevert: false },
    });
    expect(resolve({ replicas: '2', check: 'tcp:9090', restart: 'never', maxSurge: '0', minHealthy: '2s', healthyDeadline: '1m', autoRevert: true }, yaml)).toEqual({
      replicas: 2,
      check: { kind: 'tcp', port: 9090, ...DEFAULTS },
      restart: 'never',
      rollout: { strategy: 'rolling', maxSurge: 0, maxUnavailable: 1, canary: 2, minHealthyMs: 2000, healthyDeadlineMs: 60_000, autoRevert: true },
    });
    // --check none takes unik.yaml's check away
    expect(resolve({ check: 'none' }, yaml)?.check).toBeNull();
    // unik.yaml's check in the flag's form
    expect(resolve({}, { check: 'http:9090/up,failures=1' })?.check).toEqual({ kind: 'http', port: 9090, path: '/up', ...DEFAULTS, failures: 1 });
  });

  it('resolves percentages against the replicas: surge up, unavailable down', () => {
    expect(resolve({ replicas: '10', maxSurge: '25%', maxUnavailable: '25%' })?.rollout).toMatchObject({ maxSurge: 3, maxUnavailable: 2 });
    expect(resolve({ replicas: '1', maxSurge: '25%', maxUnavailable: '25%' })?.rollout).toMatchObject({ maxSurge: 1, maxUnavailable: 0 });
    expect(resolve({ replicas: '4', maxSurge: '100%' })?.rollout).toMatchObject({ maxSurge: 4 });
  });

  it.each<[string, ServiceFlags, UnikYamlDeploy | undefined, ErrorCode, string]>([
    ['replicas 0', { replicas: '0' }, undefined, 'E_INVALID_REPLICAS', '--replicas: 0 replicas is out of range'],
    ['replicas 65', { replicas: '65' }, undefined, 'E_INVALID_REPLICAS', 'out of range'],
    ['replicas that are no integer', { replicas: 'three' }, undefined, 'E_INVALID_REPLICAS', '--replicas: "three" is not an integer'],
    ['fractional replicas', { replicas: '1.5' }, undefined, 'E_INVALID_REPLICAS', 'not an integer'],
    ['negative replicas in unik.yaml', {}, { replicas: -1 }, 'E_INVALID_REPLICAS', 'unik.yaml deploy.replicas: -1 replicas is out of range'],
    ['an unknown strategy', { strategy: 'blue-green' }, undefined, 'E_INVALID_ROLLOUT', '--strategy: unknown strategy "blue-green"'],
    ['an unknown restart policy', { restart: 'sometimes' }, undefined, 'E_INVALID_ARGUMENT', '--restart: unknown restart policy "sometimes"'],
    ['surge and unavailable both 0', { replicas: '3', maxSurge: '0' }, undefined, 'E_INVALID_ROLLOUT', '--max-surge and --max-unavailable: both are 0'],
    ['both 0 after rounding', { replicas: '3', maxSurge: '0', maxUnavailable: '10%' }, undefined, 'E_INVALID_ROLLOUT', 'both are 0 (after rounding percentages)'],
    ['unavailable = replicas', { replicas: '2', maxUnavailable: '2' }, undefined, 'E_INVALID_ROLLOUT', '--max-unavailable: 2 of 2 replicas may be unavailable'],
    ['unavailable 100%', { replicas: '4', maxUnavailable: '100%' }, undefined, 'E_INVALID_ROLLOUT', '4 of 4 replicas'],
    ['a negative surge', { maxSurge: '-1' }, undefined, 'E_INVALID_ROLLOUT', '--max-surge: "-1" is not a count'],
    ['a negative surge in unik.yaml', {}, { maxSurge: -1 }, 'E_INVALID_ROLLOUT', 'unik.yaml deploy.max_surge: -1 is not a count'],
    ['canary 0', { strategy: 'canary', canary: '0' }, undefined, 'E_INVALID_ROLLOUT', '--canary: 0 canary replicas'],
    ['a canary above the replicas', { replicas: '2', strategy: 'canary', canary: '3' }, undefined, 'E_INVALID_ROLLOUT', '3 canary replicas with 2 replicas'],
    ['a bad --min-healthy', { minHealthy: '10' }, undefined, 'E_INVALID_DURATION', '--min-healthy: "10" is not a duration'],
    ['a deadline shorter than min healthy', { minHealthy: '1m', healthyDeadline: '30s' }, undefined, 'E_INVALID_ROLLOUT', 'the healthy deadline (30s) must be longer than the time a replica must stay healthy (1m)'],
    ['a bad check in unik.yaml', {}, { check: 'tcp:8080,retries=3' }, 'E_INVALID_CHECK', 'unik.yaml check: "retries=3" is not an option'],
    ['a bad check map in unik.yaml', {}, { check: { kind: 'http', port: 8080, path: 'healthz' } }, 'E_INVALID_CHECK', 'unik.yaml check: path "healthz" must start with /'],
  ])('refuses %s', (_what, flags, yaml, code, mentions) => {
    const e = failure(() => resolve(flags, yaml));
    expect(e.code).toBe(code);
    expect(e.message).toContain(mentions);
    expect(e.hint).toBeTruthy();
  });

  it('allows rolling settings that only the rolling strategy would refuse under the other strategies', () => {
    expect(resolve({ replicas: '1', strategy: 'immediate', maxSurge: '0' })?.rollout).toMatchObject({ maxSurge: 0, maxUnavailable: 0 });
    expect(resolve({ replicas: '1', strategy: 'rolling', canary: '5' })?.rollout).toMatchObject({ canary: 5 });
  });

  it('refuses a check of a port that is not published, saying why and what to do', () => {
    const e = failure(() => resolve({ check: 'http:3000/healthz' }));
    expect(e.code).toBe('E_INVALID_CHECK');
    expect(e.message).toBe('--check: port 3000 is not a published guest port (published: 8080, 9090)');
    expect(e.hint).toContain('loopback forward of a published port');
    expect(e.hint).toContain('-p HOST:3000');
    const none = failure(() => resolve({}, { check: { kind: 'tcp', port: 8080 } }, []));
    expect(none.message).toBe('unik.yaml check: port 8080 is not a published guest port (published: none)');
    // the guest port counts, not the host port
    expect(resolve({ check: 'tcp:9090' })?.check?.port).toBe(9090);
    expect(() => resolve({ check: 'tcp:9000' })).toThrow(expect.objectContaining({ code: 'E_INVALID_CHECK' }));
  });
});
