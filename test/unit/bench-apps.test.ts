// bench/lib/apps.ts: the framework examples' size verdict (issue 16: ≥ 3× smaller than the naive image and within
// the MB bound) and the skip reason of an example whose build tool cannot run here.
import { chmodSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { FRAMEWORK_APPS, sizeVerdict, unavailable, type FrameworkApp } from '../../bench/lib/apps.js';
import { projectRoot } from '../../src/paths.js';

const app = (over: Partial<FrameworkApp> = {}): FrameworkApp => ({ example: 'x', framework: 'X', route: '/', expect: 'x', ...over });
const tmp = mkdtempSync(join(tmpdir(), 'bench-apps-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

describe('sizeVerdict', () => {
  it('passes at ≥ 3× and within the bound, and says why it misses otherwise', () => {
    expect(sizeVerdict(app({ maxBytes: 30e6 }), 29e6, 3)).toEqual({ target: 'PASS', why: [] });
    expect(sizeVerdict(app({ maxBytes: 30e6 }), 31e6, 9.5)).toEqual({ target: 'MISS', why: ['31.0 MB > 30 MB'] });
    expect(sizeVerdict(app(), 50e6, 2.9)).toEqual({ target: 'MISS', why: ['ratio 2.9× < 3×'] });
    expect(sizeVerdict(app({ maxBytes: 5e6 }), 6e6, null)).toEqual({ target: 'MISS', why: ['no naive baseline', '6.0 MB > 5 MB'] });
    expect(sizeVerdict(app(), 500e6, 3.1).target).toBe('PASS'); // no MB bound named for this framework
  });

  it("carries the issue's bounds: FastAPI 30, Express 45, Spring Boot 80, axum 5 MB", () => {
    const bound = (ex: string): number | undefined => FRAMEWORK_APPS.find((a) => a.example === ex)?.maxBytes;
    expect([bound('python-fastapi-uv'), bound('node-express-pnpm'), bound('java-spring-boot'), bound('rust-axum-workspace')]).toEqual([30e6, 45e6, 80e6, 5e6]);
  });
});

describe('FRAMEWORK_APPS', () => {
  it('names only examples that exist, once each', () => {
    const examples = new Set(readdirSync(join(projectRoot, 'examples')));
    expect(FRAMEWORK_APPS.filter((a) => !examples.has(a.example))).toEqual([]);
    expect(new Set(FRAMEWORK_APPS.map((a) => a.example)).size).toBe(FRAMEWORK_APPS.length);
  });
});

describe('unavailable', () => {
  it('needs nothing for an app without a build-tool requirement', () => {
    expect(unavailable(app(), tmp, '')).toBeNull();
  });

  it('skips Gradle without gradle on PATH or a wrapper, and with a gradle that fails', () => {
    expect(unavailable(app({ needs: 'gradle' }), tmp, '')).toMatch(/gradle is not on PATH and the example has no gradlew/);
    const bin = mkdtempSync(join(tmp, 'bin-'));
    writeFileSync(join(bin, 'gradle'), '#!/bin/sh\nexit 3\n');
    chmodSync(join(bin, 'gradle'), 0o755);
    expect(unavailable(app({ needs: 'gradle' }), tmp, bin)).toMatch(/gradle --version fails \(exit 3\)/);
    writeFileSync(join(bin, 'gradle'), '#!/bin/sh\necho Gradle 8.10\n');
    expect(unavailable(app({ needs: 'gradle' }), tmp, bin)).toBeNull();
  });

  it('takes the project wrapper over PATH', () => {
    const proj = mkdtempSync(join(tmp, 'proj-'));
    writeFileSync(join(proj, 'gradlew'), '#!/bin/sh\n');
    expect(unavailable(app({ needs: 'gradle' }), proj, '')).toBeNull();
  });

  it('skips .NET without dotnet on PATH', () => {
    expect(unavailable(app({ needs: 'dotnet' }), tmp, '')).toMatch(/\.NET SDK \(dotnet\) is not on PATH/);
    const bin = mkdtempSync(join(tmp, 'dn-'));
    writeFileSync(join(bin, 'dotnet'), '#!/bin/sh\n');
    chmodSync(join(bin, 'dotnet'), 0o755);
    expect(unavailable(app({ needs: 'dotnet' }), tmp, bin)).toBeNull();
  });
});
