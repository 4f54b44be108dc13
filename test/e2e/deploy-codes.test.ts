import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { TestHome } from './helpers.js';

/**
 * Local `deploy --wait` keeps each build failure's own code (it used to call everything that did not start with
 * E_BUILD "E_QEMU_FAILED"), in text and in --json, from the deployment's typed code field.
 */
describe('deploy --wait reports the typed code of a failed build', () => {
  const home = new TestHome();
  const scratch = mkdtempSync(join(tmpdir(), 'unikctl-codes-'));
  afterAll(async () => {
    await home.cleanup();
    rmSync(scratch, { recursive: true, force: true });
  });
  const project = (name: string, files: Record<string, string>): string => {
    const dir = join(scratch, name);
    mkdirSync(dir, { recursive: true });
    for (const [f, content] of Object.entries(files)) writeFileSync(join(dir, f), content);
    return dir;
  };

  it.each([
    ['E_BUILD_FAILED', 'ybuild', { 'unik.yaml': 'name: ybuild\nbuild:\n  command: "echo nope >&2; exit 4"\nartifact:\n  path: out\n' }],
    ['E_ARTIFACT_MISSING', 'noartifact', { 'unik.yaml': 'name: noartifact\nbuild:\n  command: "true"\nartifact:\n  path: out\n' }],
    ['E_LOCK_REQUIRED', 'nolock', { 'package.json': '{"name":"nolock","version":"1.0.0","main":"index.js","dependencies":{"left-pad":"1.3.0"}}', 'index.js': 'console.log(1)\n' }],
  ] as const)('%s', async (code, name, files) => {
    const dir = project(name, files);
    const json = await home.cli(['deploy', dir, '--name', name, '--wait', '--timeout', '120', '--json']);
    expect(json.code, json.stderr).toBe(1);
    const out = JSON.parse(json.stdout) as { state: string; code: string; reason: string };
    expect(out).toMatchObject({ state: 'failed', code });
    expect(out.reason).not.toMatch(/^E_/);
    const s = await home.status(name);
    expect(s.deployments[0]).toMatchObject({ state: 'failed', code });
    expect(s.operations.find((o) => o.kind === 'deploy')?.error?.code).toBe(code);
    await home.cli(['destroy', name, '--wait']);
    const text = await home.cli(['deploy', dir, '--name', name, '--wait', '--timeout', '120']);
    expect(text.code).toBe(1);
    expect(text.stderr).toContain(code);
    expect(text.stderr).not.toContain('E_QEMU_FAILED');
  });
  it('a used idempotency key whose deploy failed answers failed with the code, and says a retry takes a new key', async () => {
    const dir = project('keyed', { 'unik.yaml': 'name: keyed\nbuild:\n  command: "exit 5"\nartifact:\n  path: out\n' });
    const first = await home.cli(['deploy', dir, '--name', 'keyed', '--idempotency-key', 'local-k1', '--wait', '--timeout', '120']);
    expect(first.code).toBe(1);
    expect(first.stderr).toContain('E_BUILD_FAILED');
    const again = await home.cli(['deploy', dir, '--name', 'keyed', '--idempotency-key', 'local-k1', '--json']);
    expect(again.code).toBe(1);
    expect(JSON.parse(again.stdout)).toMatchObject({ reused: true, state: 'failed', error: { code: 'E_BUILD_FAILED' } });
    const text = await home.cli(['deploy', dir, '--name', 'keyed', '--idempotency-key', 'local-k1']);
    expect(text.code).toBe(1);
    expect(text.stderr).toContain('E_BUILD_FAILED');
    expect(text.stderr).toContain('new --idempotency-key');
    await home.cli(['destroy', 'keyed', '--wait']);
  });
});
