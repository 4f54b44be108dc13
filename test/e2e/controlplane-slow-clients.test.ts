import { spawn, type ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { connect, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { packBundle } from '../../src/engine/bundle.js';
import { ADMIN_TOKEN, TestServer } from './cp-helpers.js';
import { freePort, ROOT } from './helpers.js';

/**
 * Finding 4 (slowloris): a client that trickles its headers or its body is cut off within the configured bounds,
 * the cut-off upload leaves no temp file, and a normal upload still works. Small bounds keep the test short.
 */
const HEADERS_MS = 1000;
const IDLE_MS = 1500;
const MIN_RATE = 1000; // bytes/s
const FLAGS = ['--headers-timeout-ms', String(HEADERS_MS), '--body-idle-timeout-ms', String(IDLE_MS), '--body-min-rate', String(MIN_RATE)];

interface Cut { ms: number; response: string }

/** Opens a raw socket, runs `drip` (which writes slowly, forever), and reports when the server closed it. */
function slowClient(port: number, drip: (s: Socket) => void, giveUpMs = 15_000): Promise<Cut> {
  return new Promise((resolve, reject) => {
    const s = connect(port, '127.0.0.1');
    const t0 = Date.now();
    let response = '';
    const giveUp = setTimeout(() => { s.destroy(); reject(new Error(`still connected after ${giveUpMs} ms`)); }, giveUpMs);
    s.on('connect', () => drip(s));
    s.on('data', (c: Buffer) => { response += c.toString(); });
    s.on('error', () => {}); // a reset is a cut-off too
    s.on('close', () => { clearTimeout(giveUp); resolve({ ms: Date.now() - t0, response }); });
  });
}

/** Writes one piece every `everyMs` while the socket is open. */
function trickle(s: Socket, pieces: () => string | Buffer, everyMs: number): void {
  const t = setInterval(() => {
    if (s.destroyed || !s.writable) { clearInterval(t); return; }
    s.write(pieces());
  }, everyMs);
  s.on('close', () => clearInterval(t));
}

const uploadTemps = (data: string): string[] => {
  const tmp = join(data, 'artifacts', '.tmp');
  return existsSync(tmp) ? readdirSync(tmp) : [];
};

const uploadHead = (port: number, length: number): string =>
  `POST /v1/artifacts HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\nAuthorization: Bearer ${ADMIN_TOKEN}\r\nContent-Type: application/gzip\r\nContent-Length: ${length}\r\n\r\n`;

describe('control plane: slow clients are cut off', () => {
  const server = new TestServer({ runner: 'fake', extra: FLAGS });
  let port = 0;
  beforeAll(async () => {
    await server.start();
    port = await server.port;
  });
  afterAll(async () => server.stop());

  it('a client trickling its headers is cut off after --headers-timeout-ms with 408 E_REQUEST_TIMEOUT', async () => {
    const cut = await slowClient(port, (s) => {
      s.write(`GET /v1/status HTTP/1.1\r\nHost: x\r\n`);
      let i = 0;
      trickle(s, () => `X-Slow-${i++}: y\r\n`, 200); // never finishes the header block
    });
    expect(cut.ms).toBeGreaterThanOrEqual(HEADERS_MS - 100);
    expect(cut.ms).toBeLessThan(HEADERS_MS + 2000);
    expect(cut.response).toMatch(/^HTTP\/1\.1 408/);
    expect(cut.response).toContain('"code":"E_REQUEST_TIMEOUT"');
  });

  it('an upload trickling one byte every 300 ms (never idle for long) is cut off by the minimum rate; its temp file is removed', async () => {
    const cut = await slowClient(port, (s) => {
      s.write(uploadHead(port, 100_000));
      trickle(s, () => Buffer.from([0x1f]), 300);
    });
    // the body deadline is IDLE_MS plus 1 s per MIN_RATE bytes: a few bytes buy nothing
    expect(cut.ms).toBeLessThan(IDLE_MS + 2500);
    expect(cut.response).toMatch(/^HTTP\/1\.1 408/);
    expect(cut.response).toContain('"code":"E_REQUEST_TIMEOUT"');
    await new Promise((r) => setTimeout(r, 200));
    expect(uploadTemps(server.data).filter((n) => n.startsWith('upload-'))).toEqual([]);
  });

  it('an upload that sends part of its body and then stalls is cut off after --body-idle-timeout-ms; its temp file is removed', async () => {
    let sawTemp = false;
    const cut = await slowClient(port, (s) => {
      s.write(uploadHead(port, 1_000_000) + 'x'.repeat(4000)); // well above the rate: only the pause trips
      setTimeout(() => { sawTemp = uploadTemps(server.data).some((n) => n.startsWith('upload-')); }, 500);
    });
    expect(sawTemp).toBe(true); // the upload was in progress on disk
    expect(cut.ms).toBeGreaterThanOrEqual(IDLE_MS - 100);
    expect(cut.ms).toBeLessThan(IDLE_MS + 2000);
    expect(cut.response).toContain('"code":"E_REQUEST_TIMEOUT"');
    await new Promise((r) => setTimeout(r, 200));
    expect(uploadTemps(server.data).filter((n) => n.startsWith('upload-'))).toEqual([]);
  });

  it('a client rejected before its body was read (401) is disconnected at once, not left trickling', async () => {
    const cut = await slowClient(port, (s) => {
      s.write(`POST /v1/artifacts HTTP/1.1\r\nHost: x\r\nContent-Type: application/gzip\r\nContent-Length: 100000\r\n\r\n`);
      trickle(s, () => Buffer.alloc(2000), 100); // fast enough for every body bound: only the close ends it
    });
    expect(cut.ms).toBeLessThan(IDLE_MS);
    expect(cut.response).toMatch(/^HTTP\/1\.1 401/);
  });

  it('a request answered without reading the body it announced (no Content-Type: 415) does not trip the body guard later', async () => {
    const answered = await slowClient(port, (s) => {
      s.write(`DELETE /v1/artifacts/art_0000000000000000 HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${ADMIN_TOKEN}\r\nContent-Length: 10\r\n\r\n`);
    });
    expect(answered.ms).toBeLessThan(IDLE_MS);
    expect(answered.response).toMatch(/^HTTP\/1\.1 4\d\d/);
    // past the body deadline the server is still up (the guard once fired with no reader and crashed it)
    await new Promise((r) => setTimeout(r, IDLE_MS + 700));
    expect((await fetch(`${server.url}/healthz`)).status).toBe(200);
  });

  it('a normal upload and a normal JSON request still work', async () => {
    const src = mkdtempSync(join(tmpdir(), 'unikctld-slow-src-'));
    writeFileSync(join(src, 'hello.txt'), 'hello\n');
    const bundle = await packBundle(src, { exclude: [] });
    const body = readFileSync(bundle.file);
    bundle.cleanup();
    rmSync(src, { recursive: true, force: true });
    const res = await fetch(`${server.url}/v1/artifacts`, { method: 'POST', headers: { authorization: `Bearer ${ADMIN_TOKEN}`, 'content-type': 'application/gzip' }, body });
    expect(res.status).toBe(201);
    expect(((await res.json()) as { id: string }).id).toMatch(/^art_/);
    expect((await server.api('/v1/status')).status).toBe(200);
  });
});

/** the key the control plane presents to the agent (the agent keeps only its hash, as after a join) */
const AGENT_KEY = 'unik_test_agent_key_0123456789abcdef';

describe('node agent: slow clients are cut off', () => {
  let agent: ChildProcess | null = null;
  let data = '';
  let port = 0;
  beforeAll(async () => {
    data = mkdtempSync(join(tmpdir(), 'unikctld-agent-slow-'));
    port = await freePort();
    // no control plane: an agent that has joined before serves its API while it keeps retrying registration
    writeFileSync(join(data, 'node-identity.json'), JSON.stringify({
      name: 'slow', controlPlane: 'http://127.0.0.1:9', credential: 'unikn_slow.0123456789abcdef', controlPlaneKeySha256: createHash('sha256').update(AGENT_KEY).digest('hex'),
    }));
    agent = spawn(process.execPath, [join(ROOT, 'bin', 'unikctld.js'), 'agent', '--control-plane', 'http://127.0.0.1:9', '--name', 'slow',
      '--listen', `127.0.0.1:${port}`, '--data', data, '--log-level', 'error', ...FLAGS], { stdio: 'ignore' });
    const deadline = Date.now() + 20_000;
    while (!(await fetch(`http://127.0.0.1:${port}/healthz`).then((r) => r.ok, () => false))) {
      if (Date.now() > deadline) throw new Error('the agent did not come up');
      await new Promise((r) => setTimeout(r, 100));
    }
  });
  afterAll(() => {
    agent?.kill('SIGKILL');
    rmSync(data, { recursive: true, force: true });
  });

  it('headers and body trickles are cut off with E_REQUEST_TIMEOUT', async () => {
    const headers = await slowClient(port, (s) => {
      s.write('GET /v1/agent/status HTTP/1.1\r\n');
      trickle(s, () => 'X: y\r\n', 200);
    });
    expect(headers.ms).toBeLessThan(HEADERS_MS + 2000);
    expect(headers.response).toContain('"code":"E_REQUEST_TIMEOUT"');
    const body = await slowClient(port, (s) => {
      s.write(`POST /v1/agent/destroy HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${AGENT_KEY}\r\nContent-Type: application/json\r\nContent-Length: 5000\r\n\r\n{`);
      trickle(s, () => ' ', 300);
    });
    expect(body.ms).toBeLessThan(IDLE_MS + 2500);
    expect(body.response).toContain('"code":"E_REQUEST_TIMEOUT"');
  });
});
