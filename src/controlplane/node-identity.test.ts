import { createReadStream, existsSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { FastifyInstance } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { identityFile, runAgent } from '../agent/agent.js';
import { packBundle } from '../engine/bundle.js';
import type { Client } from '../engine/client.js';
import { homeLayout } from '../paths.js';
import { buildApp } from './app.js';
import { ArtifactStore } from '../store/artifacts.js';
import { Authenticator, hashToken } from './auth.js';
import { SloSamples } from './slo-samples.js';
import { DEFAULT_OBJECTIVES, DEFAULT_PRICES } from '../engine/slo.js';
import { Journal } from './journal.js';
import { Metrics } from './metrics.js';
import { NodeAuthenticator } from './node-identity.js';
import { NodeRegistry } from './nodes.js';
import { TenantRegistry } from './tenants.js';
import { Queue } from './queue.js';
import { ControlPlane } from './service.js';

/**
 * Finding 3 of the hardening issue, written as the attacks: with one shared node token, anyone holding it could take
 * over a node's name (and receive its deploys and secrets), heartbeat for any node, download every artifact and call
 * any agent directly. Each test here is an attack that must be refused.
 */

const JOIN = 'unik_test_join_0123456789abcdef';
const ADMIN = 'unik_test_admin_0123456789abcdef';
const OPS = 'unik_test_ops_0123456789abcdef'; // the `nodes` scope: cordon, drain, remove
const dirs: string[] = [];
const tmp = (): string => {
  const d = mkdtempSync(join(tmpdir(), 'unikctl-node-identity-'));
  dirs.push(d);
  return d;
};

/** A control plane on a journal file (reopening the file is a restart), with no VMs behind it. */
async function controlPlane(journalFile: string, artifactsDir: string): Promise<{ app: FastifyInstance; nodes: NodeRegistry; artifacts: ArtifactStore; close(): Promise<void> }> {
  const journal = new Journal(journalFile);
  const nodes = new NodeRegistry(journal.database, 60_000);
  const artifacts = new ArtifactStore({ dir: artifactsDir, maxUploadBytes: 1 << 20, maxExtractedBytes: 1 << 22, maxEntries: 100 });
  const node = { status: async () => ({ deployments: [], operations: [] }), close() {} } as unknown as Client;
  const queue = new Queue(journal, { run: async () => null, holds: async () => false }, { concurrency: 1, owner: 'test' });
  const cp = new ControlPlane({ journal, queue, node, fleet: null, host: null, nodeLayout: homeLayout({ UNIKCTL_HOME: tmp() }), artifacts, maxAttempts: 1 });
  const auth = new Authenticator({ tokens: [{ name: 'admin', sha256: hashToken(ADMIN), scopes: ['admin'] }, { name: 'ops', sha256: hashToken(OPS), scopes: ['nodes'] }] });
  const app = await buildApp({ cp, auth, artifacts, metrics: new Metrics(journal, node), nodes, nodeAuth: new NodeAuthenticator(nodes, JOIN), version: 'test', tenants: TenantRegistry.fixed([]),
    slo: { source: new SloSamples(journal.database, 3600_000), config: { prices: DEFAULT_PRICES, objectives: DEFAULT_OBJECTIVES } } });
  return { app, nodes, artifacts, async close() { await app.close(); await journal.close(); } };
}

const bearer = (token: string): Record<string, string> => ({ authorization: `Bearer ${token}` });

afterAll(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

describe('node identity: the control plane', () => {
  const dir = tmp();
  const journalFile = join(dir, 'journal.db');
  let cp: Awaited<ReturnType<typeof controlPlane>>;
  const creds: Record<string, string> = {};
  let artifactOfB = '';
  const call = async (method: 'GET' | 'POST' | 'DELETE', url: string, token: string, payload?: unknown): Promise<{ status: number; body: { code?: string; [k: string]: unknown } }> => {
    const r = await cp.app.inject({ method, url, headers: bearer(token), ...(payload !== undefined ? { payload: payload as object } : {}) });
    return { status: r.statusCode, body: (String(r.headers['content-type'] ?? '').includes('json') ? r.json() : {}) as { code?: string } };
  };

  beforeAll(async () => {
    cp = await controlPlane(journalFile, join(dir, 'artifacts'));
    for (const name of ['node-a', 'node-b']) {
      const r = await call('POST', '/v1/nodes/join', JOIN, { name, address: `http://${name}:7171`, capacity: { cpus: 2, memoryMiB: 1024 } });
      expect(r.status, JSON.stringify(r.body)).toBe(201);
      creds[name] = r.body.credential as string;
      expect(r.body.agentKey).toEqual(expect.any(String));
    }
    // an artifact placed on node-b (what ClusterClient.deploy records before it asks the node to run it)
    const src = tmp();
    writeFileSync(join(src, 'app.txt'), 'secret build input');
    const bundle = await packBundle(src, { exclude: [] });
    artifactOfB = (await cp.artifacts.put(createReadStream(bundle.file))).id;
    bundle.cleanup();
    await cp.nodes.grantArtifact({ node: 'node-b', deployment: 'web', artifact: artifactOfB });
  });
  afterAll(async () => cp.close());

  it('stores only hashes of node credentials', async () => {
    const id = await cp.nodes.identity('node-a');
    expect(id?.credentialSha256).toBe(hashToken(creds['node-a'] ?? ''));
    const files = [journalFile, `${journalFile}-wal`].filter((x) => existsSync(x)).map((f) => readFileSync(f));
    for (const f of files) expect(f.includes(Buffer.from(creds['node-a'] ?? 'x'))).toBe(false);
    // the check above looks where the rows are: the WAL, or the main file once the checkpointer has copied them there
    expect(files.some((f) => f.includes(Buffer.from(id?.credentialSha256 ?? 'x')))).toBe(true);
  });

  it('an impostor with the join token cannot take over node-b: join under its name is E_NODE_NAME_TAKEN, register with the join token is 401', async () => {
    const join = await call('POST', '/v1/nodes/join', JOIN, { name: 'node-b', address: 'http://evil:7171' });
    expect([join.status, join.body.code]).toEqual([409, 'E_NODE_NAME_TAKEN']);
    const reg = await call('POST', '/v1/nodes/register', JOIN, { name: 'node-b', address: 'http://evil:7171' });
    expect([reg.status, reg.body.code]).toEqual([401, 'E_TOKEN_INVALID']);
    expect((await cp.nodes.get('node-b'))?.address).toBe('http://node-b:7171');
  });

  it('node-a\'s credential cannot register or heartbeat as node-b (E_NODE_IDENTITY), but works as node-a', async () => {
    const reg = await call('POST', '/v1/nodes/register', creds['node-a'] ?? '', { name: 'node-b', address: 'http://evil:7171' });
    expect([reg.status, reg.body.code]).toEqual([403, 'E_NODE_IDENTITY']);
    const hb = await call('POST', '/v1/nodes/heartbeat', creds['node-a'] ?? '', { name: 'node-b', capacity: { cpus: 64 } });
    expect([hb.status, hb.body.code]).toEqual([403, 'E_NODE_IDENTITY']);
    expect(await cp.nodes.get('node-b')).toMatchObject({ address: 'http://node-b:7171', capacity: { cpus: 2 } });
    expect((await call('POST', '/v1/nodes/heartbeat', creds['node-a'] ?? '', { name: 'node-a', capacity: { cpus: 2 } })).status).toBe(200);
    expect((await call('POST', '/v1/nodes/register', creds['node-a'] ?? '', { name: 'node-a', address: 'http://node-a:7272' })).status).toBe(200);
  });

  it('operator tokens (even admin) and forged credentials are not node credentials', async () => {
    for (const token of [ADMIN, OPS, `unikn_node-b.${'A'.repeat(43)}`, `${creds['node-a']?.replace('node-a', 'node-b') ?? ''}`]) {
      const r = await call('POST', '/v1/nodes/heartbeat', token, { name: 'node-b' });
      expect([r.status, r.body.code], token).toEqual([401, 'E_TOKEN_INVALID']);
    }
  });

  it('a node fetches only artifacts placed on it; the join token and the nodes scope fetch nothing; admin can', async () => {
    const url = `/v1/artifacts/${artifactOfB}`;
    expect(await call('GET', url, creds['node-a'] ?? '')).toMatchObject({ status: 403, body: { code: 'E_FORBIDDEN' } });
    expect((await call('GET', url, JOIN)).status).toBe(401);
    expect((await call('GET', url, OPS)).status).toBe(403);
    expect((await call('GET', url, creds['node-b'] ?? '')).status).toBe(200);
    expect((await call('GET', url, ADMIN)).status).toBe(200);
    // an unknown id says nothing more to a node than a foreign one
    expect(await call('GET', '/v1/artifacts/art_0000000000000000', creds['node-b'] ?? '')).toMatchObject({ status: 403 });
  });

  it('credentials survive a control-plane restart', async () => {
    await cp.close();
    cp = await controlPlane(journalFile, join(dir, 'artifacts'));
    expect((await call('POST', '/v1/nodes/heartbeat', creds['node-b'] ?? '', { name: 'node-b' })).status).toBe(200);
    expect((await call('GET', `/v1/artifacts/${artifactOfB}`, creds['node-b'] ?? '')).status).toBe(200);
    expect((await call('POST', '/v1/nodes/join', JOIN, { name: 'node-b' })).body.code).toBe('E_NODE_NAME_TAKEN');
  });

  it('an administrator removes node-b: its credential is refused at once; the name can join again with a new identity', async () => {
    expect((await call('DELETE', '/v1/nodes/node-b', creds['node-a'] ?? '')).status).toBe(401); // nodes cannot remove nodes
    const r = await call('DELETE', '/v1/nodes/node-b', OPS);
    expect(r).toMatchObject({ status: 200, body: { node: 'node-b', rescheduled: 0 } });
    expect((await call('DELETE', '/v1/nodes/node-b', OPS)).body.code).toBe('E_UNKNOWN_NODE');
    for (const [method, url, payload] of [['POST', '/v1/nodes/heartbeat', { name: 'node-b' }], ['POST', '/v1/nodes/register', { name: 'node-b' }], ['GET', `/v1/artifacts/${artifactOfB}`, undefined]] as const) {
      const res = await call(method, url, creds['node-b'] ?? '', payload);
      expect([res.status, res.body.code], url).toEqual([401, 'E_TOKEN_INVALID']);
    }
    const again = await call('POST', '/v1/nodes/join', JOIN, { name: 'node-b', address: 'http://node-b2:7171' });
    expect(again.status).toBe(201);
    expect(again.body.credential).not.toBe(creds['node-b']);
    expect((await call('GET', `/v1/artifacts/${artifactOfB}`, again.body.credential as string)).status).toBe(403); // grants went with the node
  });

  it('a join with a bad body is a 400, a join with a wrong token a 401', async () => {
    expect((await call('POST', '/v1/nodes/join', JOIN, {})).body.code).toBe('E_VALIDATION');
    expect((await call('POST', '/v1/nodes/join', ADMIN, { name: 'node-c' })).status).toBe(401);
    expect((await call('POST', '/v1/nodes/join', creds['node-a'] ?? '', { name: 'node-c' })).status).toBe(401);
  });
});

describe('node identity: the agent', () => {
  const dir = tmp();
  let cp: Awaited<ReturnType<typeof controlPlane>>;
  let cpUrl = '';
  const agentData = tmp();
  const start = (joinToken: string | null) => runAgent({
    controlPlane: cpUrl, name: 'agent-1', joinToken, listen: '127.0.0.1:0', advertise: 'http://127.0.0.1:1', publishAddress: '127.0.0.1', labels: {},
    data: agentData, heartbeatMs: 3_600_000, capacity: { cpus: 1, memoryMiB: 512 }, logLevel: 'silent', version: 'test', buildSandbox: null,
  });

  beforeAll(async () => {
    cp = await controlPlane(join(dir, 'journal.db'), join(dir, 'artifacts'));
    cpUrl = await cp.app.listen({ host: '127.0.0.1', port: 0 });
  });
  afterAll(async () => cp.close());

  it('joins once, keeps its credential (0600) and only the hash of the control plane\'s key', async () => {
    await expect(start(null)).rejects.toMatchObject({ code: 'E_INVALID_ARGUMENT' }); // never joined: needs the join token
    const agent = await start(JOIN);
    await agent.close();
    const file = identityFile(agentData);
    expect(statSync(file).mode & 0o777).toBe(0o600);
    const id = JSON.parse(readFileSync(file, 'utf8')) as { credential: string; controlPlaneKeySha256: string };
    const stored = await cp.nodes.identity('agent-1');
    expect(id.credential.startsWith('unikn_agent-1.')).toBe(true);
    expect(id.controlPlaneKeySha256).toBe(hashToken(stored?.agentKey ?? ''));
    expect(readFileSync(file, 'utf8')).not.toContain(stored?.agentKey);
  });

  it('accepts only the control plane: node credentials, the join token and operator tokens are refused; a bad body is a 400', async () => {
    const agent = await start(null); // a restart: its stored identity, no join token needed
    try {
      const inject = (token: string, url: string, payload: object) => agent.app.inject({ method: 'POST', url, headers: bearer(token), payload });
      const id = JSON.parse(readFileSync(identityFile(agentData), 'utf8')) as { credential: string };
      const deploy = { name: 'x', source: { artifact: 'art_0000000000000000', kind: 'project' }, ports: [], env: ['SECRET=1'], debug: false, labels: [], idempotencyKey: 'k' };
      for (const token of [id.credential, JOIN, ADMIN]) {
        const r = await inject(token, '/v1/agent/deploy', deploy);
        expect([r.statusCode, r.json<{ code: string }>().code]).toEqual([401, 'E_TOKEN_INVALID']);
      }
      const key = (await cp.nodes.identity('agent-1'))?.agentKey ?? '';
      for (const url of ['/v1/agent/deploy', '/v1/agent/destroy']) {
        const r = await inject(key, url, {});
        expect([r.statusCode, r.json<{ code: string }>().code], url).toEqual([400, 'E_VALIDATION']);
      }
      expect((await inject(key, '/v1/agent/deploy', { ...deploy, name: '../x' })).statusCode).toBe(400);
      expect((await agent.app.inject({ method: 'GET', url: '/v1/agent/logs/x?tail=abc', headers: bearer(key) })).statusCode).toBe(400);
      expect((await agent.app.inject({ method: 'GET', url: '/v1/agent/status', headers: bearer(key) })).statusCode).toBe(200);
    } finally {
      await agent.close();
    }
  });

  it('a removed node stays removed: its agent cannot register again with the old credential', async () => {
    expect((await cp.app.inject({ method: 'DELETE', url: '/v1/nodes/agent-1', headers: bearer(OPS) })).statusCode).toBe(200);
    await expect(start(JOIN)).rejects.toMatchObject({ code: 'E_TOKEN_INVALID' });
  });
});
