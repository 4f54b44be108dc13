import { describe, expect, it } from 'vitest';
import { formatEnv, MAX_ENV_BYTES, parseEnv } from './env.js';
import { formatLabels, parseLabels } from './labels.js';

describe('parseEnv / formatEnv', () => {
  it('splits at the first =: a value may hold = (k=v=w is k → v=w), and may be empty', () => {
    const env = parseEnv(['A=1', 'URL=postgres://u:p@h/db?x=y', 'EMPTY=', 'K=v=w']);
    expect(env).toEqual({ A: '1', URL: 'postgres://u:p@h/db?x=y', EMPTY: '', K: 'v=w' });
    expect(parseEnv(formatEnv(env))).toEqual(env);
  });
  it('a later duplicate wins', () => expect(parseEnv(['A=1', 'A=2'])).toEqual({ A: '2' }));
  it.each(['=v', 'noequals', '1A=x', 'A-B=x', ' A=x'])('refuses %j', (item) => {
    expect(() => parseEnv([item])).toThrow(expect.objectContaining({ code: 'E_INVALID_ARGUMENT' }));
  });
  it('refuses a NUL in a value and an environment larger than the kernel command line takes', () => {
    expect(() => parseEnv(['A=x\0B=y'])).toThrow(expect.objectContaining({ message: expect.stringContaining('NUL') }));
    expect(() => parseEnv([`A=${'x'.repeat(MAX_ENV_BYTES)}`])).toThrow(expect.objectContaining({ code: 'E_INVALID_ARGUMENT' }));
  });
});

describe('parseLabels / formatLabels', () => {
  it('keeps everything after the first = (k=v=w is k → v=w)', () => {
    const labels = parseLabels(['zone=a', 'k=v=w', 'empty=']);
    expect(labels).toEqual({ zone: 'a', k: 'v=w', empty: '' });
    expect(parseLabels(formatLabels(labels))).toEqual(labels);
  });
  it('names the flag in its error', () => {
    expect(() => parseLabels(['novalue'], '--labels')).toThrow(expect.objectContaining({ code: 'E_INVALID_ARGUMENT', message: expect.stringContaining('--labels "novalue"') }));
    expect(() => parseLabels(['=v'])).toThrow(expect.objectContaining({ code: 'E_INVALID_ARGUMENT' }));
  });
});
