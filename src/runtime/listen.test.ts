import { describe, expect, it } from 'vitest';
import { assessListen, bindFix, isLoopback, parseListeners, sameListen, type ListenInput } from './listen.js';

const input = (over: Partial<ListenInput>): ListenInput => ({ ports: [8080], listeners: [], pastDeadline: false, deadlineMs: 90_000, pack: null, ...over });

describe('parseListeners (the init\'s addrs= field)', () => {
  it('reads IPv4 and bracketed IPv6 listeners; an empty list is no listener', () => {
    expect(parseListeners('0.0.0.0:8080,127.0.0.1:9000,[::1]:9001,[::]:80')).toEqual([
      { address: '0.0.0.0', port: 8080 }, { address: '127.0.0.1', port: 9000 }, { address: '::1', port: 9001 }, { address: '::', port: 80 },
    ]);
    expect(parseListeners('')).toEqual([]);
  });

  it('skips what is not a listener (text of another init, port 0 or out of range)', () => {
    expect(parseListeners('nonsense,1.2.3.4:0,1.2.3.4:70000,::1:80,10.0.2.15:443')).toEqual([{ address: '10.0.2.15', port: 443 }]);
  });
});

describe('isLoopback', () => {
  it('knows 127.0.0.0/8, ::1 and IPv4-mapped loopback; the wildcards and the guest address are reachable', () => {
    for (const a of ['127.0.0.1', '127.1.2.3', '::1', '::ffff:127.0.0.1']) expect(isLoopback(a), a).toBe(true);
    for (const a of ['0.0.0.0', '::', '10.0.2.15', '::ffff:10.0.2.15', 'fe80::1']) expect(isLoopback(a), a).toBe(false);
  });
});

describe('assessListen', () => {
  it('no published port: nothing to check, whatever the app listens on', () => {
    expect(assessListen(input({ ports: [], listeners: [{ address: '127.0.0.1', port: 80 }], pastDeadline: true }))).toMatchObject({ health: 'no-ports', warning: null });
  });

  it('checking until the init reports; unknown past the deadline without any report (an image with an older init)', () => {
    expect(assessListen(input({ listeners: null })).health).toBe('checking');
    expect(assessListen(input({ listeners: null, pastDeadline: true }))).toMatchObject({ health: 'unknown', warning: null });
  });

  it('listening once every published guest port has a non-loopback listener (wildcard, IPv6 wildcard or the guest address)', () => {
    for (const address of ['0.0.0.0', '::', '10.0.2.15']) {
      expect(assessListen(input({ listeners: [{ address, port: 8080 }] })), address).toMatchObject({ health: 'listening', warning: null });
    }
    const two = input({ ports: [8080, 9090, 8080], listeners: [{ address: '0.0.0.0', port: 8080 }] });
    expect(assessListen(two)).toMatchObject({ health: 'checking', ports: [8080, 9090] });
    expect(assessListen({ ...two, listeners: [{ address: '0.0.0.0', port: 8080 }, { address: '0.0.0.0', port: 9090 }] }).health).toBe('listening');
  });

  it('a loopback-only listener is a warning at once (no deadline), with the pack\'s fix', () => {
    const s = assessListen(input({ listeners: [{ address: '127.0.0.1', port: 8080 }, { address: '::1', port: 8080 }], pack: 'python' }));
    expect(s.health).toBe('localhost-only');
    expect(s.warning?.code).toBe('E_LISTENING_LOCALHOST_ONLY');
    expect(s.warning?.message).toContain('127.0.0.1:8080, [::1]:8080 only');
    expect(s.warning?.fix).toContain('--host 0.0.0.0');
    // a wildcard next to the loopback one serves the port
    expect(assessListen(input({ listeners: [{ address: '127.0.0.1', port: 8080 }, { address: '0.0.0.0', port: 8080 }] })).health).toBe('listening');
  });

  it('nothing on the port: checking before the deadline, then not-listening naming what the app does listen on', () => {
    expect(assessListen(input({ listeners: [] })).health).toBe('checking');
    const none = assessListen(input({ listeners: [], pastDeadline: true }));
    expect(none).toMatchObject({ health: 'not-listening', warning: { code: 'E_NOT_LISTENING' } });
    expect(none.warning?.message).toBe('nothing listens on guest port 8080 90 s after the app started; the app listens on no TCP port');
    expect(none.warning?.fix).toContain('0.0.0.0:$PORT');
    const elsewhere = assessListen(input({ listeners: [{ address: '0.0.0.0', port: 3000 }], pastDeadline: true }));
    expect(elsewhere.warning?.message).toContain('the app listens on 0.0.0.0:3000');
    expect(elsewhere.warning?.fix).toContain('deploy -p HOST:3000');
  });

  it('both problems at once: the loopback code wins, both messages are kept', () => {
    const s = assessListen(input({ ports: [8080, 9090], listeners: [{ address: '127.0.0.1', port: 8080 }], pastDeadline: true }));
    expect(s.warning?.code).toBe('E_LISTENING_LOCALHOST_ONLY');
    expect(s.warning?.message).toContain('127.0.0.1:8080 only');
    expect(s.warning?.message).toContain('nothing listens on guest port 9090');
  });

  it('every pack has its own bind fix; an unknown pack gets the generic one', () => {
    const fixes = ['node', 'python', 'go', 'rust', 'java', 'dotnet', null].map((p) => bindFix(p, 8080));
    expect(new Set(fixes).size).toBe(fixes.length);
    expect(bindFix('dotnet', 5000)).toContain('http://0.0.0.0:5000');
    expect(bindFix('rust', 8000)).toContain('ROCKET_ADDRESS=0.0.0.0');
  });

  it('sameListen ignores the time, not the listeners', () => {
    const a = assessListen(input({ listeners: [{ address: '0.0.0.0', port: 8080 }] }), 1);
    expect(sameListen(a, { ...a, since: 2 })).toBe(true);
    expect(sameListen(a, { ...a, listeners: [] })).toBe(false);
    expect(sameListen(null, a)).toBe(false);
  });
});
