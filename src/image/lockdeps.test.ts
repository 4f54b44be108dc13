import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { lockedDependencies } from './lockdeps.js';

let dir = '';
const project = (files: Record<string, string>): string => {
  dir = mkdtempSync(join(tmpdir(), 'unikctl-locks-'));
  for (const [f, text] of Object.entries(files)) writeFileSync(join(dir, f), text);
  return dir;
};
afterEach(() => rmSync(dir, { recursive: true, force: true }));

// the readers of the ecosystems whose examples lock no dependency (the e2e validates the others on the examples)
describe('lock-file dependencies for the SBOM', () => {
  it('go.sum: module versions with their h1 digest, not the go.mod-only lines', () => {
    const deps = lockedDependencies(project({ 'go.sum': 'github.com/x/y v1.2.3 h1:abc=\ngithub.com/x/y v1.2.3/go.mod h1:def=\n' }));
    expect(deps).toEqual([{ ecosystem: 'golang', name: 'github.com/x/y', version: 'v1.2.3', purl: 'pkg:golang/github.com/x/y@v1.2.3', hashes: [], source: 'go.sum', properties: [{ name: 'unikctl:go:h1', value: 'h1:abc=' }] }]);
  });

  it('Cargo.lock: registry crates with their sha256 checksum; the workspace crate is not a dependency', () => {
    const sum = 'a'.repeat(64);
    const deps = lockedDependencies(project({ 'Cargo.lock': `version = 3\n\n[[package]]\nname = "app"\nversion = "0.1.0"\n\n[[package]]\nname = "itoa"\nversion = "1.0.11"\nsource = "registry+https://example.invalid/index"\nchecksum = "${sum}"\n` }));
    expect(deps).toEqual([{ ecosystem: 'cargo', name: 'itoa', version: '1.0.11', purl: 'pkg:cargo/itoa@1.0.11', source: 'Cargo.lock', hashes: [{ alg: 'SHA-256', content: sum }] }]);
  });

  it('packages.lock.json (NuGet): each resolved package once, contentHash as SHA-512 hex', () => {
    const hash = Buffer.alloc(64, 1).toString('base64');
    const lock = { version: 1, dependencies: { 'net8.0': { 'Newtonsoft.Json': { type: 'Direct', resolved: '13.0.3', contentHash: hash }, app2: { type: 'Project' } }, 'net8.0/linux-x64': { 'Newtonsoft.Json': { type: 'Direct', resolved: '13.0.3', contentHash: hash } } } };
    const deps = lockedDependencies(project({ 'packages.lock.json': JSON.stringify(lock) }));
    expect(deps).toEqual([{ ecosystem: 'nuget', name: 'Newtonsoft.Json', version: '13.0.3', purl: 'pkg:nuget/Newtonsoft.Json@13.0.3', source: 'packages.lock.json', hashes: [{ alg: 'SHA-512', content: '01'.repeat(64) }] }]);
  });

  it('pom.xml: declared runtime dependencies with ${property} versions; test scope left out', () => {
    const pom = '<project><properties><jackson.version>2.17.1</jackson.version></properties><dependencies>'
      + '<dependency><groupId>com.fasterxml.jackson.core</groupId><artifactId>jackson-databind</artifactId><version>${jackson.version}</version></dependency>'
      + '<dependency><groupId>junit</groupId><artifactId>junit</artifactId><version>4.13.2</version><scope>test</scope></dependency></dependencies></project>';
    expect(lockedDependencies(project({ 'pom.xml': pom }))).toMatchObject([{ ecosystem: 'maven', name: 'com.fasterxml.jackson.core:jackson-databind', version: '2.17.1', purl: 'pkg:maven/com.fasterxml.jackson.core/jackson-databind@2.17.1' }]);
  });

  it('requirements with --hash lines joined', () => {
    const sum = 'b'.repeat(64);
    expect(lockedDependencies(project({ 'requirements.lock': `Flask_Login==0.6.3 \\\n    --hash=sha256:${sum}\n# comment\n` }))).toEqual([
      { ecosystem: 'pypi', name: 'Flask_Login', version: '0.6.3', purl: 'pkg:pypi/flask-login@0.6.3', source: 'requirements.lock', hashes: [{ alg: 'SHA-256', content: sum }] },
    ]);
  });
});
