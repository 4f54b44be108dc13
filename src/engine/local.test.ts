import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { UserError } from '../errors.js';
import { homeLayout } from '../paths.js';
import type { DeployRequest } from './client.js';
import { LocalClient, parseEnv, parsePort } from './local.js';

function codeOf(fn: () => unknown): string | undefined {
  try {
    fn();
  } catch (e) {
    return e instanceof UserError ? e.code : `not a UserError: ${String(e)}`;
  }
  return undefined;
}

describe('parsePort', () => {
  it('parses HOST:GUEST on all addresses', () => {
    expect(parsePort('8080:80')).toEqual({ hostAddress: '0.0.0.0', hostPort: 8080, guestPort: 80, protocol: 'tcp' });
  });

  it('uses the same port on both sides for a single number', () => {
    expect(parsePort('8080')).toEqual({ hostAddress: '0.0.0.0', hostPort: 8080, guestPort: 8080, protocol: 'tcp' });
  });

  it('parses ADDR:HOST:GUEST', () => {
    expect(parsePort('127.0.0.1:8080:80')).toEqual({ hostAddress: '127.0.0.1', hostPort: 8080, guestPort: 80, protocol: 'tcp' });
  });

  it('accepts a /tcp suffix on either side', () => {
    expect(parsePort('8080/tcp:80')).toEqual({ hostAddress: '0.0.0.0', hostPort: 8080, guestPort: 80, protocol: 'tcp' });
    expect(parsePort('8080:80/tcp')).toEqual({ hostAddress: '0.0.0.0', hostPort: 8080, guestPort: 80, protocol: 'tcp' });
  });

  it('accepts the extreme valid ports', () => {
    expect(parsePort('1:65535')).toMatchObject({ hostPort: 1, guestPort: 65535 });
  });

  it.each(['0:80', '80:0', '70000:1', '1:65536', 'a:b', '1:2:3:4', '', ':80', '80:', '8080/udp:80', '-1:80', '1.5:80', 'localhost:8080:80', '1.2.3:8080:80'])(
    'rejects %j with E_INVALID_PORT',
    (spec) => {
      expect(codeOf(() => parsePort(spec))).toBe('E_INVALID_PORT');
    },
  );

  it('names the bad spec and gives a hint', () => {
    try {
      parsePort('a:b');
      expect.unreachable();
    } catch (e) {
      expect(e).toBeInstanceOf(UserError);
      expect((e as UserError).message).toContain('"a:b"');
      expect((e as UserError).hint).toContain('-p HOST:GUEST');
    }
  });

  it('rejects an IPv4 bind address with an octet above 255', () => {
    expect(codeOf(() => parsePort('300.0.0.1:8080:80'))).toBe('E_INVALID_PORT');
  });
});

describe('parseEnv', () => {
  it('parses KEY=VALUE items', () => {
    expect(parseEnv(['GREETING=hello', 'B_2=x'])).toEqual({ GREETING: 'hello', B_2: 'x' });
  });

  it('accepts an empty value', () => {
    expect(parseEnv(['EMPTY='])).toEqual({ EMPTY: '' });
  });

  it('keeps "=" inside the value', () => {
    expect(parseEnv(['URL=a=b=c', 'Q==x'])).toEqual({ URL: 'a=b=c', Q: '=x' });
  });

  it('keeps spaces and unicode in values', () => {
    expect(parseEnv(['MSG=hé llo '])).toEqual({ MSG: 'hé llo ' });
  });

  it('returns an empty map for no items', () => {
    expect(parseEnv([])).toEqual({});
  });

  it('lets a later item override an earlier one', () => {
    expect(parseEnv(['A=1', 'A=2'])).toEqual({ A: '2' });
  });

  it.each(['=value', 'NOVALUE', '1KEY=x', 'BAD-KEY=x', 'A B=x', '', '=', 'ключ=x'])('rejects %j with E_INVALID_ARGUMENT', (item) => {
    expect(codeOf(() => parseEnv([item]))).toBe('E_INVALID_ARGUMENT');
  });

  it('rejects the whole list when one item is bad', () => {
    expect(codeOf(() => parseEnv(['A=1', 'oops']))).toBe('E_INVALID_ARGUMENT');
  });
});

describe('LocalClient.deploy input validation (fails before anything is recorded or spawned)', () => {
  let tmp: string;
  let client: LocalClient;
  beforeEach(() => {
    tmp = mkdtempSync(join(tmpdir(), 'unik-local-'));
    client = new LocalClient(homeLayout({ UNIKCTL_HOME: join(tmp, 'home') }));
  });
  afterEach(() => {
    client.close();
    rmSync(tmp, { recursive: true, force: true });
  });

  const req = (over: Partial<DeployRequest>): DeployRequest => ({ target: process.execPath, ports: [], env: [], debug: false, labels: [], cwd: tmp, ...over });

  async function codeOfDeploy(over: Partial<DeployRequest>): Promise<string | undefined> {
    try {
      await client.deploy(req(over));
    } catch (e) {
      expect(client.store.listDeployments()).toEqual([]);
      expect(client.store.listOperations(10)).toEqual([]);
      return e instanceof UserError ? e.code : `not a UserError: ${String(e)}`;
    }
    return undefined;
  }

  it.each<[string, Partial<DeployRequest>, string]>([
    ['an invalid name', { name: 'Bad_Name' }, 'E_INVALID_NAME'],
    ['a bad port', { ports: ['a:b'] }, 'E_INVALID_PORT'],
    ['the same host port twice', { ports: ['8080:80', '8080:81'] }, 'E_INVALID_PORT'],
    ['a bad env item', { env: ['NOEQUALS'] }, 'E_INVALID_ARGUMENT'],
    ['a bad label', { labels: ['nolabel'] }, 'E_INVALID_ARGUMENT'],
    ['zero cpus', { cpus: 0 }, 'E_INVALID_ARGUMENT'],
    ['17 cpus', { cpus: 17 }, 'E_INVALID_ARGUMENT'],
    ['a missing target', { target: 'no-such-thing' }, 'E_PACKAGE_NOT_FOUND'],
  ])('rejects %s', async (_what, over, code) => {
    expect(await codeOfDeploy(over)).toBe(code);
  });

  it('reports a bad --memory as E_INVALID_ARGUMENT, not as a unik.yaml error', async () => {
    expect(await codeOfDeploy({ memory: '12X' })).toBe('E_INVALID_ARGUMENT');
  });
});
