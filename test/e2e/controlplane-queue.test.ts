import Database from 'better-sqlite3';
import { execFileSync } from 'node:child_process';
import { request as httpsRequest } from 'node:https';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { ADMIN_TOKEN, DEPLOYER_TOKEN, READER_TOKEN, signJwt, TestServer, writeFakePackage } from './cp-helpers.js';

/** CP-2…4 without VMs: the queue runs a fake runner that only records each job's effect. */
describe('control plane: durable queue, idempotency, auth, TLS', () => {
  const servers: TestServer[] = [];
  afterAll(async () => {
    for (const s of servers) {
      await s.stop();
      s.cleanup();
    }
  });
  const server = (o: ConstructorParameters<typeof TestServer>[0]): TestServer => {
    const s = new TestServer(o);
    servers.push(s);
    return s;
  };

  it('kill -9 mid-queue: after a restart every one of 200 operations completes exactly once', async () => {
    const s = server({ runner: 'fake', workers: 4, extra: ['--fake-work-ms', '40'] });
    writeFakePackage(s.data, 'pkg');
    await s.start();
    const ids: string[] = [];
    for (let batch = 0; batch < 10; batch++) {
      const rs = await Promise.all(Array.from({ length: 20 }, (_, i) => s.api('/v1/deployments', { json: { source: { package: 'pkg' }, name: `job-${batch * 20 + i}` } })));
      for (const r of rs) {
        expect(r.status).toBe(202);
        ids.push(((await r.json()) as { operationId: string }).operationId);
      }
    }
    expect(new Set(ids).size).toBe(200);
    // let some finish, then crash the server in the middle of the queue
    const journal = join(s.data, 'journal.db');
    const done = (): number => {
      const db = new Database(journal, { readonly: true });
      try { return (db.prepare("SELECT COUNT(*) AS n FROM jobs WHERE state = 'succeeded'").get() as { n: number }).n; } finally { db.close(); }
    };
    const deadline = Date.now() + 30_000;
    while (done() < 20 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
    await s.kill9();
    const atCrash = done();
    expect(atCrash).toBeGreaterThan(0);
    expect(atCrash).toBeLessThan(200);

    await s.start(); // same data dir: replays queued and in-flight jobs
    const deadline2 = Date.now() + 60_000;
    while (done() < 200 && Date.now() < deadline2) await new Promise((r) => setTimeout(r, 100));
    const db = new Database(journal, { readonly: true });
    try {
      const states = db.prepare('SELECT state, COUNT(*) AS n FROM jobs GROUP BY state').all() as Array<{ state: string; n: number }>;
      expect(states).toEqual([{ state: 'succeeded', n: 200 }]);
      const effects = db.prepare('SELECT job_id FROM fake_effects').all() as Array<{ job_id: string }>;
      expect(effects.map((e) => e.job_id).sort()).toEqual([...ids].sort()); // none lost, none duplicated
    } finally {
      db.close();
    }
  });

  it('the same deploy sent 20 times concurrently with one key creates one operation; another body with it is a 409', async () => {
    const s = server({ runner: 'fake' });
    writeFakePackage(s.data, 'pkg');
    await s.start();
    const body = { source: { package: 'pkg' }, name: 'once' };
    const rs = await Promise.all(Array.from({ length: 20 }, () => s.api('/v1/deployments', { json: body, headers: { 'idempotency-key': 'k-20' } })));
    const results = await Promise.all(rs.map((r) => r.json() as Promise<{ operationId: string; name: string }>));
    expect(rs.map((r) => r.status)).toEqual(Array(20).fill(202));
    expect(new Set(results.map((r) => r.operationId)).size).toBe(1);
    const conflict = await s.api('/v1/deployments', { json: { ...body, env: ['X=1'] }, headers: { 'idempotency-key': 'k-20' } });
    expect(conflict.status).toBe(409);
    expect(((await conflict.json()) as { code: string }).code).toBe('E_IDEMPOTENCY_CONFLICT');
    const db = new Database(join(s.data, 'journal.db'), { readonly: true });
    try {
      expect((db.prepare("SELECT COUNT(*) AS n FROM jobs WHERE kind = 'deploy'").get() as { n: number }).n).toBe(1);
    } finally {
      db.close();
    }
  });

  it('auth matrix: 401 vs 403 with stable codes, trace ids on every response, /healthz open', async () => {
    const s = server({ runner: 'fake' });
    writeFakePackage(s.data, 'pkg');
    await s.start();
    const jwt = (claims: Record<string, unknown>, exp: string | number = '5m'): Promise<string> => signJwt(claims, { exp });
    const b64 = (o: unknown): string => Buffer.from(JSON.stringify(o)).toString('base64url');
    const algNone = `${b64({ alg: 'none', typ: 'JWT' })}.${b64({ sub: 'x', iss: 'unikctl-tests', aud: 'unikctld', scope: 'admin', exp: Math.floor(Date.now() / 1000) + 300 })}.`;

    const cases: Array<[string, string | null, number, string]> = [
      ['no token', null, 401, 'E_UNAUTHENTICATED'],
      ['wrong token', 'unik_wrong_token_0123456789abcdef', 401, 'E_TOKEN_INVALID'],
      ['expired JWT', await jwt({ scope: 'admin' }, Math.floor(Date.now() / 1000) - 60), 401, 'E_TOKEN_EXPIRED'],
      ['alg:none JWT', algNone, 401, 'E_TOKEN_INVALID'],
      ['read-only token deploying', READER_TOKEN, 403, 'E_FORBIDDEN'],
      ['JWT without the deploy scope', await jwt({ scope: 'read logs' }), 403, 'E_FORBIDDEN'],
    ];
    for (const [what, token, status, code] of cases) {
      const r = await s.api('/v1/deployments', { token, json: { source: { package: 'pkg' } } });
      expect(r.status, what).toBe(status);
      const body = (await r.json()) as { code: string; message: string; trace_id: string };
      expect(body.code, what).toBe(code);
      expect(body.trace_id, what).toBe(r.headers.get('x-trace-id'));
    }
    const ok = await s.api('/v1/deployments', { token: await jwt({ scope: 'deploy' }), json: { source: { package: 'pkg' } }, headers: { 'x-trace-id': 'my-trace-1' } });
    expect(ok.status).toBe(202);
    expect(ok.headers.get('x-trace-id')).toBe('my-trace-1');
    expect((await s.api('/v1/status', { token: DEPLOYER_TOKEN })).status).toBe(200);
    expect((await s.api('/v1/destroy', { token: DEPLOYER_TOKEN, json: { names: ['pkg'] } })).status).toBe(403);
    const health = await s.api('/healthz', { token: null });
    expect(health.status).toBe(200);
    expect(health.headers.get('x-trace-id')).toBeTruthy();
    for (const path of ['/openapi.json', '/v1/metrics', '/v1/status', '/v1/logs/pkg']) expect((await s.api(path, { token: null })).status, path).toBe(401);
    // malformed JSON and unknown routes: stable codes too
    const bad = await fetch(`${s.url}/v1/deployments`, { method: 'POST', headers: { authorization: `Bearer ${ADMIN_TOKEN}`, 'content-type': 'application/json' }, body: '{"source":' });
    expect([bad.status, ((await bad.json()) as { code: string }).code]).toEqual([400, 'E_BAD_JSON']);
    const schema = await s.api('/v1/deployments', { json: { source: { package: 'pkg' }, name: 'Not_Valid' } });
    expect([schema.status, ((await schema.json()) as { code: string }).code]).toEqual([400, 'E_VALIDATION']);
    const unknown = await s.api('/v1/destroy', { json: { names: ['nope'] } });
    expect([unknown.status, ((await unknown.json()) as { code: string }).code]).toEqual([404, 'E_UNKNOWN_APP']);
  });

  it('TLS mode answers over HTTPS only', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'unikctld-tls-'));
    const cert = join(dir, 'cert.pem');
    const key = join(dir, 'key.pem');
    execFileSync('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', key, '-out', cert, '-days', '1', '-subj', '/CN=127.0.0.1', '-addext', 'subjectAltName=IP:127.0.0.1'], { stdio: 'ignore' });
    const s = server({ runner: 'fake', tls: { cert, key } });
    await s.start();
    expect(s.url.startsWith('https://')).toBe(true);
    const body = await new Promise<string>((resolve, reject) => {
      const req = httpsRequest(`${s.url}/v1/status`, { ca: readFileSync(cert), headers: { authorization: `Bearer ${ADMIN_TOKEN}` } }, (res) => {
        let data = '';
        res.on('data', (c: Buffer) => { data += c.toString(); });
        res.on('end', () => resolve(`${res.statusCode} ${data}`));
      });
      req.on('error', reject);
      req.end();
    });
    expect(body).toMatch(/^200 \{"deployments":\[\]/);
    await expect(fetch(s.url.replace('https://', 'http://') + '/healthz')).rejects.toThrow();
  });
});
