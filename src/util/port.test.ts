import { describe, expect, it } from 'vitest';
import { formatPort, parsePort, parsePorts } from './port.js';

describe('parsePort / formatPort', () => {
  it.each([
    ['8080', '8080->8080/tcp'], ['8080:80', '8080->80/tcp'], ['127.0.0.1:8080:80', '127.0.0.1:8080->80/tcp'], ['8080/tcp:80/tcp', '8080->80/tcp'],
  ])('%s prints as %s, and the printed form parses back', (spec, printed) => {
    const p = parsePort(spec);
    expect(formatPort(p)).toBe(printed);
    const [host, guest] = printed.replace('/tcp', '').split('->');
    expect(parsePort(`${host}:${guest}`)).toEqual(p);
  });
  it.each(['', 'http', '0:80', '8080:0', '70000:80', '8080:80:90:100', '[::1]:8080:80', '::1:8080:80', 'fe80::1:80', '256.0.0.1:80:80', '1.2.3:80:80', '8080:80/udp', ' 8080:80'])('refuses %j with E_INVALID_PORT', (spec) => {
    expect(() => parsePort(spec)).toThrow(expect.objectContaining({ code: 'E_INVALID_PORT' }));
  });
});

describe('parsePorts', () => {
  it('refuses one host port published twice, whatever the address', () => {
    expect(() => parsePorts(['8080:80', '127.0.0.1:8080:81'])).toThrow(expect.objectContaining({ code: 'E_INVALID_PORT', message: expect.stringContaining('published twice') }));
  });
  it('accepts one guest port on two host ports', () => {
    expect(parsePorts(['8080:80', '8081:80']).map(formatPort)).toEqual(['8080->80/tcp', '8081->80/tcp']);
  });
});
