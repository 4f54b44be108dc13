import { UserError } from '../errors.js';

/** One published port: host address and port → guest port (TCP). Parsed and printed only here. */
export interface PortMapping { hostAddress: string; hostPort: number; guestPort: number; protocol: 'tcp'; }

/** `PORT`, `HOST:GUEST` or `ADDR:HOST:GUEST` (IPv4 address; an optional `/tcp` suffix on each port). */
export function parsePort(spec: string): PortMapping {
  const parts = spec.split(':');
  const bad = (): UserError => new UserError('E_INVALID_PORT', `"${spec}" is not a port mapping`, { hint: 'use -p HOST:GUEST (e.g. -p 8080:80) or -p ADDR:HOST:GUEST' });
  let hostAddress = '0.0.0.0';
  let host: string | undefined;
  let guest: string | undefined;
  if (parts.length === 1) {
    [host] = parts;
    guest = host;
  }
  else if (parts.length === 2) [host, guest] = parts;
  else if (parts.length === 3) [hostAddress = '', host, guest] = parts;
  else throw bad();
  const hostPort = Number((host ?? '').replace(/\/tcp$/, ''));
  const guestPort = Number((guest ?? '').replace(/\/tcp$/, ''));
  if (!/^\d+(\/tcp)?$/.test(host ?? '') || !/^\d+(\/tcp)?$/.test(guest ?? '')) throw bad();
  if (!(hostPort > 0 && hostPort < 65536 && guestPort > 0 && guestPort < 65536)) throw bad();
  if (!/^(\d{1,3}\.){3}\d{1,3}$/.test(hostAddress) || hostAddress.split('.').some((o) => Number(o) > 255)) throw bad();
  return { hostAddress, hostPort, guestPort, protocol: 'tcp' };
}

/** Parses a list of port specs; one host port is published once whatever the address (0.0.0.0 overlaps every address). */
export function parsePorts(specs: string[]): PortMapping[] {
  const ports = specs.map(parsePort);
  const seen = new Map<number, string>();
  for (const [i, p] of ports.entries()) {
    const prior = seen.get(p.hostPort);
    if (prior !== undefined) {
      throw new UserError('E_INVALID_PORT', `host port ${p.hostPort} is published twice (-p ${prior} and -p ${specs[i]})`, {
        hint: 'publish each host port once; to reach one guest port on several host ports use different host ports',
      });
    }
    seen.set(p.hostPort, specs[i] ?? '');
  }
  return ports;
}

/** The printed form of a mapping, as `status` shows it: `8080->80/tcp`, `127.0.0.1:8080->80/tcp`. */
export function formatPort(p: PortMapping): string {
  return `${p.hostAddress === '0.0.0.0' ? '' : `${p.hostAddress}:`}${p.hostPort}->${p.guestPort}/tcp`;
}
