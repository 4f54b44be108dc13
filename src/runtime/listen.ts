/**
 * The listener check: what the app listens on inside the guest (reported by the guest init, guest/init.c) against
 * the guest ports a deploy publishes. Platforms like Heroku, Render and Fly route traffic to $PORT on every
 * interface; an app that binds 127.0.0.1 (a framework's development default) or never listens runs, yet serves
 * nobody. This says so, with a fix, instead of calling such a deployment healthy.
 */
import type { ListenStatus, ListenWarning, Listener } from '../store/types.js';
import { envMs } from '../util/proc.js';

/** How long after the app starts a published port may stay without a listener before it is `not-listening`. */
export const DEFAULT_LISTEN_TIMEOUT_MS = 90_000;

export function listenTimeoutMs(env: NodeJS.ProcessEnv): number {
  return envMs(env, 'UNIKCTL_LISTEN_TIMEOUT_MS', DEFAULT_LISTEN_TIMEOUT_MS);
}

/** The `addrs=` field of the init's `listen` marker: `0.0.0.0:8080,[::1]:9000` (empty: nothing listens). */
export function parseListeners(addrs: string): Listener[] {
  const out: Listener[] = [];
  for (const item of addrs.split(',')) {
    const m = /^(?:\[([0-9a-fA-F:.]+)\]|(\d{1,3}(?:\.\d{1,3}){3})):(\d{1,5})$/.exec(item.trim());
    if (!m) continue; // an empty list, or text an old or foreign init wrote: not a listener
    const port = Number(m[3]);
    if (port > 0 && port < 65536) out.push({ address: (m[1] ?? m[2])!, port });
  }
  return out;
}

export const formatListener = (l: Listener): string => (l.address.includes(':') ? `[${l.address}]:${l.port}` : `${l.address}:${l.port}`);

/** 127.0.0.0/8, ::1 and their IPv4-mapped forms: addresses a connection forwarded into the VM never reaches. */
export function isLoopback(address: string): boolean {
  const a = address.toLowerCase();
  return a === '::1' || /^(::ffff:)?127\./.test(a);
}

/** How to listen on every interface, in the words of the pack's usual frameworks. */
export function bindFix(pack: string | null, port: number): string {
  switch (pack) {
    case 'node':
      return `listen on all interfaces: server.listen(process.env.PORT, '0.0.0.0') — a framework that reads HOST (Next.js, Nuxt, Astro, …): deploy -e HOST=0.0.0.0`;
    case 'python':
      return 'bind 0.0.0.0: uvicorn/flask run --host 0.0.0.0, gunicorn --bind 0.0.0.0:$PORT, or app.run(host="0.0.0.0")';
    case 'go':
      return 'listen on ":" + os.Getenv("PORT") (every interface), not "localhost:…" or "127.0.0.1:…"';
    case 'rust':
      return 'bind 0.0.0.0 instead of 127.0.0.1: Rocket: address = "0.0.0.0" in Rocket.toml or deploy -e ROCKET_ADDRESS=0.0.0.0; an address in the app\'s own config file: set it to 0.0.0.0';
    case 'java':
      return 'bind 0.0.0.0: Spring Boot: deploy -e SERVER_ADDRESS=0.0.0.0; Micronaut: -e MICRONAUT_SERVER_HOST=0.0.0.0';
    case 'dotnet':
      return `listen on every interface: deploy -e ASPNETCORE_URLS=http://0.0.0.0:${port}`;
    default:
      return 'bind 0.0.0.0 (every interface) instead of 127.0.0.1/localhost: the framework\'s HOST variable (deploy -e HOST=0.0.0.0) or its --host 0.0.0.0 flag';
  }
}

export interface ListenInput {
  /** the published guest ports */
  ports: number[];
  /** what the guest init last reported; null: no report (yet) */
  listeners: Listener[] | null;
  /** the app has run longer than the listen deadline */
  pastDeadline: boolean;
  deadlineMs: number;
  /** the image's pack, for the fix's wording */
  pack: string | null;
}

/** The health of a running app's listeners (see ListenHealth). `since` is set by the caller when the health changes. */
export function assessListen(i: ListenInput, now = Date.now()): ListenStatus {
  const ports = [...new Set(i.ports)].sort((a, b) => a - b);
  const base = { ports, listeners: i.listeners, since: now };
  if (ports.length === 0) return { ...base, health: 'no-ports', warning: null };
  if (i.listeners === null) return { ...base, health: i.pastDeadline ? 'unknown' : 'checking', warning: null };
  const listeners = i.listeners;
  const on = (p: number): Listener[] => listeners.filter((l) => l.port === p);
  const loopbackOnly = ports.filter((p) => on(p).length > 0 && on(p).every((l) => isLoopback(l.address)));
  const missing = ports.filter((p) => on(p).length === 0);
  if (loopbackOnly.length === 0 && missing.length === 0) return { ...base, health: 'listening', warning: null };
  if (loopbackOnly.length === 0 && !i.pastDeadline) return { ...base, health: 'checking', warning: null };

  const messages: string[] = [];
  const fixes: string[] = [];
  if (loopbackOnly.length > 0) {
    const where = loopbackOnly.flatMap(on).map(formatListener).join(', ');
    messages.push(`the app listens on ${where} only: a published port forwards connections from outside the VM, which a loopback address never accepts`);
    fixes.push(bindFix(i.pack, loopbackOnly[0]!));
  }
  if (missing.length > 0 && i.pastDeadline) {
    const elsewhere = listeners.filter((l) => !ports.includes(l.port) && !isLoopback(l.address));
    const listening = listeners.length > 0 ? `the app listens on ${listeners.map(formatListener).join(', ')}` : 'the app listens on no TCP port';
    messages.push(`nothing listens on guest port ${missing.join(', ')} ${Math.round(i.deadlineMs / 1000)} s after the app started; ${listening}`);
    fixes.push(elsewhere.length > 0
      ? `publish the port the app uses (deploy -p HOST:${elsewhere[0]!.port}) or make it listen on $PORT (the VM sets PORT to the first published guest port)`
      : `make the app listen on 0.0.0.0:$PORT (the VM sets PORT to the first published guest port, ${ports[0]}); an app that serves nothing is deployed without -p`);
  }
  const warning: ListenWarning = {
    code: loopbackOnly.length > 0 ? 'E_LISTENING_LOCALHOST_ONLY' : 'E_NOT_LISTENING', message: messages.join('; '), fix: fixes.join('; '),
  };
  return { ...base, health: loopbackOnly.length > 0 ? 'localhost-only' : 'not-listening', warning };
}

/** Whether two assessments say the same thing (then the store and the log are left alone). */
export function sameListen(a: ListenStatus | null, b: ListenStatus): boolean {
  return a !== null && a.health === b.health && a.warning?.message === b.warning?.message
    && JSON.stringify(a.listeners) === JSON.stringify(b.listeners) && JSON.stringify(a.ports) === JSON.stringify(b.ports);
}
