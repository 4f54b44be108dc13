import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SignJWT, type JWTPayload } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { UserError } from '../errors.js';
import { ApiAuthError, Authenticator, SCOPES, generateToken, hashToken, hasScope, loadAuthConfig, type AuthConfig, type Principal } from './auth.js';

const SECRET = new TextEncoder().encode('0123456789abcdef0123456789abcdef-test-secret');
const OTHER_SECRET = new TextEncoder().encode('fedcba9876543210fedcba9876543210-other-secret');
const ISSUER = 'https://issuer.example';
const AUDIENCE = 'unikctld';

const CI_TOKEN = generateToken();
const ADMIN_TOKEN = generateToken();

const config: AuthConfig = {
  tokens: [
    { name: 'ci', sha256: hashToken(CI_TOKEN), scopes: ['deploy', 'destroy', 'read', 'logs'], tenant: 'team-a' },
    { name: 'root', sha256: hashToken(ADMIN_TOKEN), scopes: ['admin'] },
  ],
  jwt: { secret: SECRET, issuer: ISSUER, audience: AUDIENCE },
};
const auth = new Authenticator(config);

const now = (): number => Math.floor(Date.now() / 1000);

async function jwt(claims: JWTPayload, opts: { alg?: string; secret?: Uint8Array; iss?: string | null; aud?: string | null; exp?: number | null } = {}): Promise<string> {
  let b = new SignJWT(claims).setProtectedHeader({ alg: opts.alg ?? 'HS256', typ: 'JWT' }).setIssuedAt();
  if (opts.iss !== null) b = b.setIssuer(opts.iss ?? ISSUER);
  if (opts.aud !== null) b = b.setAudience(opts.aud ?? AUDIENCE);
  if (opts.exp !== null) b = b.setExpirationTime(opts.exp ?? now() + 600);
  return b.sign(opts.secret ?? SECRET);
}

async function authError(p: Promise<unknown>): Promise<ApiAuthError> {
  try {
    await p;
  } catch (e) {
    expect(e).toBeInstanceOf(ApiAuthError);
    expect(e).toBeInstanceOf(UserError);
    return e as ApiAuthError;
  }
  throw new Error('expected an ApiAuthError');
}

function syncError(fn: () => unknown): UserError {
  try {
    fn();
  } catch (e) {
    expect(e).toBeInstanceOf(UserError);
    return e as UserError;
  }
  throw new Error('expected a UserError');
}

describe('token helpers', () => {
  it('generateToken: unik_ + 32 random bytes base64url', () => {
    const t = generateToken();
    expect(t).toMatch(/^unik_[A-Za-z0-9_-]{43}$/);
    expect(Buffer.from(t.slice(5), 'base64url')).toHaveLength(32);
    expect(generateToken()).not.toBe(t);
  });

  it('hashToken: sha256 hex', () => {
    expect(hashToken('abc')).toBe('ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad');
  });

  it('SCOPES lists every scope', () => {
    expect([...SCOPES].sort()).toEqual(['admin', 'deploy', 'destroy', 'logs', 'nodes', 'read']);
  });
});

describe('a static token with two dots (finding 11)', () => {
  // a valid RFC 6750 b64token that has the compact-JWT shape a.b.c
  const DOTTED = 'team.deploy.0123456789abcdef';
  const dotted = new Authenticator({ tokens: [{ name: 'dotted', sha256: hashToken(DOTTED), scopes: ['deploy'] }], jwt: { secret: SECRET, issuer: ISSUER, audience: AUDIENCE } });

  it('authenticates as the static token even though a jwt section exists', async () => {
    expect(await dotted.authenticate(`Bearer ${DOTTED}`)).toEqual({ subject: 'dotted', scopes: ['deploy'], via: 'token' });
  });

  it('still verifies real JWTs, and an unknown dotted value is an invalid JWT', async () => {
    const p = await dotted.authenticate(`Bearer ${await jwt({ sub: 'alice', scope: 'read' })}`);
    expect(p).toMatchObject({ subject: 'alice', via: 'jwt', scopes: ['read'] });
    const e = await authError(dotted.authenticate('Bearer team.deploy.0123456789abcdeX'));
    expect(e.code).toBe('E_TOKEN_INVALID');
    expect(e.status).toBe(401);
  });

  it('loads a dotted plain token from a config file that also has a jwt section', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'unik-auth-dots-'));
    try {
      writeFileSync(join(dir, 'secret'), 'x'.repeat(40));
      writeFileSync(join(dir, 'auth.yaml'), `tokens:\n  - name: dotted\n    token: ${DOTTED}\n    scopes: [read]\njwt:\n  secret_file: secret\n`);
      const a = new Authenticator(loadAuthConfig(join(dir, 'auth.yaml')));
      expect(await a.authenticate(`Bearer ${DOTTED}`)).toMatchObject({ subject: 'dotted', via: 'token' });
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('opaque bearer tokens', () => {
  it('accepts a valid token and returns its scopes and tenant', async () => {
    const p = await auth.authenticate(`Bearer ${CI_TOKEN}`);
    expect(p).toEqual({ subject: 'ci', scopes: ['deploy', 'destroy', 'read', 'logs'], via: 'token', tenant: 'team-a' });
  });

  it('accepts a case-insensitive scheme and extra whitespace', async () => {
    expect((await auth.authenticate(`bearer   ${ADMIN_TOKEN} `)).subject).toBe('root');
  });

  it('rejects an unknown token with E_TOKEN_INVALID (401) without echoing it', async () => {
    const wrong = generateToken();
    const e = await authError(auth.authenticate(`Bearer ${wrong}`));
    expect(e.status).toBe(401);
    expect(e.code).toBe('E_TOKEN_INVALID');
    expect(e.message).not.toContain(wrong);
    expect(e.challenge).toContain('error="invalid_token"');
  });

  it('rejects a missing header with E_UNAUTHENTICATED', async () => {
    for (const h of [undefined, '', '   ']) {
      const e = await authError(auth.authenticate(h));
      expect(e.status).toBe(401);
      expect(e.code).toBe('E_UNAUTHENTICATED');
      expect(e.challenge).toBe('Bearer realm="unikctld"');
    }
  });

  it('rejects a Basic header and an empty Bearer with E_UNAUTHENTICATED', async () => {
    const basic = await authError(auth.authenticate(`Basic ${Buffer.from('user:pass').toString('base64')}`));
    expect(basic.code).toBe('E_UNAUTHENTICATED');
    expect(basic.message).toContain('Bearer');
    expect((await authError(auth.authenticate('Bearer'))).code).toBe('E_UNAUTHENTICATED');
    expect((await authError(auth.authenticate('Bearer   '))).code).toBe('E_UNAUTHENTICATED');
    expect((await authError(auth.authenticate(CI_TOKEN))).code).toBe('E_UNAUTHENTICATED');
  });

  it('rejects malformed and oversized bearer values with E_TOKEN_INVALID', async () => {
    expect((await authError(auth.authenticate(`Bearer ${CI_TOKEN} extra`))).code).toBe('E_TOKEN_INVALID');
    expect((await authError(auth.authenticate('Bearer tök€n'))).code).toBe('E_TOKEN_INVALID');
    expect((await authError(auth.authenticate(`Bearer ${'a'.repeat(10_000)}`))).code).toBe('E_TOKEN_INVALID');
  });

  it('treats a JWT-shaped value as an opaque token when jwt is not configured', async () => {
    const tokenOnly = new Authenticator({ tokens: config.tokens });
    const e = await authError(tokenOnly.authenticate(`Bearer ${await jwt({ sub: 'alice', scope: 'admin' })}`));
    expect(e.code).toBe('E_TOKEN_INVALID');
    expect(e.hint).toMatch(/jwt/);
    // and a plain token with dots can be configured and used when jwt is off
    const dotted = 'aaaaaaaa.bbbbbbbb.cccccccc';
    const a = new Authenticator({ tokens: [{ name: 'dots', sha256: hashToken(dotted), scopes: ['read'] }] });
    expect((await a.authenticate(`Bearer ${dotted}`)).subject).toBe('dots');
  });
});

describe('authorize', () => {
  const ci: Principal = { subject: 'ci', scopes: ['deploy', 'read'], via: 'token' };

  it('allows a held scope', () => {
    expect(() => auth.authorize(ci, 'deploy')).not.toThrow();
    expect(hasScope(ci, 'read')).toBe(true);
  });

  it('admin implies every scope', async () => {
    const root = await auth.authenticate(`Bearer ${ADMIN_TOKEN}`);
    for (const s of SCOPES) expect(() => auth.authorize(root, s)).not.toThrow();
  });

  it('403 E_FORBIDDEN naming the missing scope', () => {
    let err: unknown;
    try {
      auth.authorize(ci, 'nodes');
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(ApiAuthError);
    const e = err as ApiAuthError;
    expect(e.status).toBe(403);
    expect(e.code).toBe('E_FORBIDDEN');
    expect(e.message).toContain('"nodes"');
    expect(e.message).toContain('ci');
    expect(e.details).toEqual({ required_scope: 'nodes', granted_scopes: ['deploy', 'read'] });
    expect(e.challenge).toBe('Bearer realm="unikctld", error="insufficient_scope", scope="nodes"');
    expect(e.toJSON()).toMatchObject({ code: 'E_FORBIDDEN' });
  });
});

describe('HS256 JWT', () => {
  it('accepts a valid JWT: sub, scope string, tenant', async () => {
    const p = await auth.authenticate(`Bearer ${await jwt({ sub: 'alice', scope: 'deploy read openid', tenant: 'team-b' })}`);
    expect(p).toEqual({ subject: 'alice', scopes: ['deploy', 'read'], via: 'jwt', tenant: 'team-b' });
    expect(() => auth.authorize(p, 'deploy')).not.toThrow();
    expect((() => { try { auth.authorize(p, 'destroy'); } catch (e) { return (e as ApiAuthError).code; } })()).toBe('E_FORBIDDEN');
  });

  it('accepts a scopes array claim (merged with scope)', async () => {
    const p = await auth.authenticate(`Bearer ${await jwt({ sub: 'bob', scopes: ['logs', 'nodes', 'unknown'], scope: 'read' })}`);
    expect(p.scopes.sort()).toEqual(['logs', 'nodes', 'read']);
    expect(p.tenant).toBeUndefined();
  });

  it('opaque tokens keep working next to JWT', async () => {
    expect((await auth.authenticate(`Bearer ${CI_TOKEN}`)).via).toBe('token');
  });

  it('expired JWT → E_TOKEN_EXPIRED', async () => {
    const e = await authError(auth.authenticate(`Bearer ${await jwt({ sub: 'alice', scope: 'read' }, { exp: now() - 3600 })}`));
    expect(e.status).toBe(401);
    expect(e.code).toBe('E_TOKEN_EXPIRED');
  });

  it('nbf in the future → E_TOKEN_NOT_YET_VALID; within clock tolerance → accepted', async () => {
    const early = await jwt({ sub: 'alice', scope: 'read', nbf: now() + 120 });
    const e = await authError(auth.authenticate(`Bearer ${early}`));
    expect(e.status).toBe(401);
    expect(e.code).toBe('E_TOKEN_NOT_YET_VALID');
    const tolerant = new Authenticator({ tokens: [], jwt: { ...config.jwt!, clockToleranceSec: 300 } });
    expect((await tolerant.authenticate(`Bearer ${early}`)).subject).toBe('alice');
  });

  it('wrong issuer or audience → E_TOKEN_INVALID naming the claim', async () => {
    const iss = await authError(auth.authenticate(`Bearer ${await jwt({ sub: 'a', scope: 'read' }, { iss: 'https://evil.example' })}`));
    expect(iss.code).toBe('E_TOKEN_INVALID');
    expect(iss.message).toContain('"iss"');
    const aud = await authError(auth.authenticate(`Bearer ${await jwt({ sub: 'a', scope: 'read' }, { aud: 'someone-else' })}`));
    expect(aud.code).toBe('E_TOKEN_INVALID');
    expect(aud.message).toContain('"aud"');
    const noIss = await authError(auth.authenticate(`Bearer ${await jwt({ sub: 'a', scope: 'read' }, { iss: null })}`));
    expect(noIss.code).toBe('E_TOKEN_INVALID');
  });

  it('issuer/audience are not checked when not configured', async () => {
    const lax = new Authenticator({ tokens: [], jwt: { secret: SECRET } });
    expect((await lax.authenticate(`Bearer ${await jwt({ sub: 'a' }, { iss: null, aud: null })}`)).scopes).toEqual([]);
  });

  it('alg:none JWT crafted by hand → E_TOKEN_INVALID', async () => {
    const b64 = (o: object): string => Buffer.from(JSON.stringify(o)).toString('base64url');
    const forged = `${b64({ alg: 'none', typ: 'JWT' })}.${b64({ sub: 'mallory', scope: 'admin', iss: ISSUER, aud: AUDIENCE, exp: now() + 600 })}.`;
    const e = await authError(auth.authenticate(`Bearer ${forged}`));
    expect(e.status).toBe(401);
    expect(e.code).toBe('E_TOKEN_INVALID');
  });

  it('HS512-signed JWT with the right secret → rejected (alg pinned to HS256)', async () => {
    const e = await authError(auth.authenticate(`Bearer ${await jwt({ sub: 'a', scope: 'admin' }, { alg: 'HS512' })}`));
    expect(e.code).toBe('E_TOKEN_INVALID');
    expect(e.message).toContain('HS256');
  });

  it('JWT signed with the wrong secret → E_TOKEN_INVALID', async () => {
    const e = await authError(auth.authenticate(`Bearer ${await jwt({ sub: 'a', scope: 'admin' }, { secret: OTHER_SECRET })}`));
    expect(e.code).toBe('E_TOKEN_INVALID');
    expect(e.message).toContain('signature');
  });

  it('tampered payload → E_TOKEN_INVALID', async () => {
    const [h, , s] = (await jwt({ sub: 'a', scope: 'read' })).split('.');
    const payload = Buffer.from(JSON.stringify({ sub: 'a', scope: 'admin', iss: ISSUER, aud: AUDIENCE, exp: now() + 600 })).toString('base64url');
    expect((await authError(auth.authenticate(`Bearer ${h}.${payload}.${s}`))).code).toBe('E_TOKEN_INVALID');
  });

  it('malformed JWT → E_TOKEN_INVALID', async () => {
    expect((await authError(auth.authenticate('Bearer aaaa.bbbb.cccc'))).code).toBe('E_TOKEN_INVALID');
    expect((await authError(auth.authenticate('Bearer ..'))).code).toBe('E_TOKEN_INVALID');
  });

  it('missing exp or sub, or ill-typed claims → E_TOKEN_INVALID', async () => {
    const noExp = await authError(auth.authenticate(`Bearer ${await jwt({ sub: 'a', scope: 'read' }, { exp: null })}`));
    expect(noExp.code).toBe('E_TOKEN_INVALID');
    expect(noExp.message).toContain('"exp"');
    expect((await authError(auth.authenticate(`Bearer ${await jwt({ scope: 'read' })}`))).code).toBe('E_TOKEN_INVALID');
    expect((await authError(auth.authenticate(`Bearer ${await jwt({ sub: 'a', scope: ['read'] })}`))).message).toContain('"scope"');
    expect((await authError(auth.authenticate(`Bearer ${await jwt({ sub: 'a', scopes: 'read' })}`))).message).toContain('"scopes"');
    expect((await authError(auth.authenticate(`Bearer ${await jwt({ sub: 'a', tenant: 7 })}`))).message).toContain('"tenant"');
  });
});

describe('Authenticator constructor validation', () => {
  it('rejects a short secret and a bad hash', () => {
    expect(syncError(() => new Authenticator({ tokens: [], jwt: { secret: new Uint8Array(16) } })).code).toBe('E_AUTH_CONFIG');
    expect(syncError(() => new Authenticator({ tokens: [{ name: 'x', sha256: 'abc', scopes: ['read'] }] })).code).toBe('E_AUTH_CONFIG');
  });
});

describe('loadAuthConfig', () => {
  let dir: string;
  const PLAIN = generateToken();
  const HASHED = generateToken();
  const SECRET_TEXT = 'a'.repeat(40);

  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), 'unikctl-auth-'));
    writeFileSync(join(dir, 'jwt.secret'), `${SECRET_TEXT}\n`);
    writeFileSync(join(dir, 'short.secret'), 'too-short\n');
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  const write = (name: string, text: string): string => {
    const f = join(dir, name);
    writeFileSync(f, text);
    return f;
  };
  const configErr = (f: string, env: NodeJS.ProcessEnv = {}): UserError => {
    const e = syncError(() => loadAuthConfig(f, env));
    expect(e.code).toBe('E_AUTH_CONFIG');
    expect(e.message).toContain(f);
    return e;
  };

  it('loads YAML with plain and pre-hashed tokens and a relative secret_file', async () => {
    const f = write(
      'auth.yaml',
      `tokens:
  - name: ci
    token: ${PLAIN}
    scopes: [deploy, destroy, read, logs]
    tenant: team-a
  - name: ops
    sha256: ${hashToken(HASHED).toUpperCase()}
    scopes: [nodes, read, read]
jwt:
  secret_file: jwt.secret
  issuer: ${ISSUER}
  audience: ${AUDIENCE}
  clock_tolerance_sec: 30
`,
    );
    const cfg = loadAuthConfig(f, {});
    expect(cfg.tokens).toEqual([
      { name: 'ci', sha256: hashToken(PLAIN), scopes: ['deploy', 'destroy', 'read', 'logs'], tenant: 'team-a' },
      { name: 'ops', sha256: hashToken(HASHED), scopes: ['nodes', 'read'] },
    ]);
    expect(JSON.stringify(cfg)).not.toContain(PLAIN);
    expect(Buffer.from(cfg.jwt!.secret).toString()).toBe(SECRET_TEXT);
    expect(cfg.jwt).toMatchObject({ issuer: ISSUER, audience: AUDIENCE, clockToleranceSec: 30 });

    const a = new Authenticator(cfg);
    expect(await a.authenticate(`Bearer ${PLAIN}`)).toMatchObject({ subject: 'ci', tenant: 'team-a' });
    expect((await a.authenticate(`Bearer ${HASHED}`)).subject).toBe('ops');
    const token = await new SignJWT({ sub: 'carol', scope: 'read' })
      .setProtectedHeader({ alg: 'HS256' })
      .setIssuer(ISSUER)
      .setAudience(AUDIENCE)
      .setExpirationTime('5m')
      .sign(new TextEncoder().encode(SECRET_TEXT));
    expect((await a.authenticate(`Bearer ${token}`)).subject).toBe('carol');
  });

  it('loads JSON with secret_env', () => {
    const f = write('auth.json', JSON.stringify({ tokens: [{ name: 'ci', sha256: hashToken(HASHED), scopes: ['admin'] }], jwt: { secret_env: 'TEST_JWT_SECRET' } }));
    const cfg = loadAuthConfig(f, { TEST_JWT_SECRET: 'x'.repeat(32) });
    expect(cfg.tokens).toHaveLength(1);
    expect(cfg.jwt!.secret.byteLength).toBe(32);
    expect(cfg.jwt!.issuer).toBeUndefined();
  });

  it('loads a jwt-only and a tokens-only config', () => {
    expect(loadAuthConfig(write('jwt-only.yml', 'jwt:\n  secret_file: jwt.secret\n'), {}).tokens).toEqual([]);
    expect(loadAuthConfig(write('tokens-only.yaml', `tokens:\n  - {name: a, token: ${PLAIN}, scopes: [read]}\n`), {}).jwt).toBeUndefined();
  });

  it('unknown scope → E_AUTH_CONFIG naming the field', () => {
    const e = configErr(write('bad-scope.yaml', `tokens:\n  - name: ci\n    token: ${PLAIN}\n    scopes: [read, deplyo]\n`));
    expect(e.message).toContain('tokens[0].scopes[1]');
    expect(e.message).toContain('deplyo');
  });

  it('short JWT secret (file or env) → E_AUTH_CONFIG', () => {
    expect(configErr(write('short.yaml', 'jwt:\n  secret_file: short.secret\n')).message).toMatch(/secret_file.*at least 32 bytes/);
    expect(configErr(write('short-env.json', '{"jwt":{"secret_env":"S"}}'), { S: 'short' }).message).toMatch(/secret_env.*at least 32 bytes/);
  });

  it('missing secret file or unset secret env → E_AUTH_CONFIG', () => {
    expect(configErr(write('nofile.yaml', 'jwt:\n  secret_file: /nonexistent/unikctl/secret\n')).message).toMatch(/secret_file.*does not exist/);
    expect(configErr(write('noenv.yaml', 'jwt:\n  secret_env: NOPE\n')).message).toMatch(/NOPE.*not set/);
    expect(configErr(write('nosecret.yaml', 'jwt:\n  issuer: x\n')).message).toContain('secret_file or secret_env');
    expect(configErr(write('both.yaml', 'jwt:\n  secret_file: jwt.secret\n  secret_env: X\n')).message).toContain('not both');
  });

  it('invalid token entries → E_AUTH_CONFIG naming the field', () => {
    const cases: Array<[string, string]> = [
      [`tokens:\n  - {name: a, token: ${PLAIN}, sha256: ${hashToken(PLAIN)}, scopes: [read]}\n`, 'tokens[0]: give either token or sha256'],
      ['tokens:\n  - {name: a, scopes: [read]}\n', 'tokens[0]: token or sha256 is required'],
      ['tokens:\n  - {name: a, sha256: abc123, scopes: [read]}\n', 'tokens[0].sha256'],
      ['tokens:\n  - {name: a, token: short, scopes: [read]}\n', 'tokens[0].token'],
      [`tokens:\n  - {token: ${PLAIN}, scopes: [read]}\n`, 'tokens[0].name is required'],
      [`tokens:\n  - {name: a, token: ${PLAIN}}\n`, 'tokens[0].scopes'],
      [`tokens:\n  - {name: a, token: ${PLAIN}, scopes: []}\n`, 'tokens[0].scopes'],
      [`tokens:\n  - {name: a, token: ${PLAIN}, scopes: [read]}\n  - {name: a, token: ${HASHED}, scopes: [read]}\n`, 'tokens[1].name'],
      [`tokens:\n  - {name: a, token: ${PLAIN}, scopes: [read]}\n  - {name: b, sha256: ${hashToken(PLAIN)}, scopes: [read]}\n`, 'already configured as "a"'],
      [`tokens:\n  - {name: a, token: ${PLAIN}, scope: [read]}\n`, 'tokens[0].scope: unknown key'],
      [`tokens:\n  - {name: a, token: ${PLAIN}, scopes: [read], tenant: 5}\n`, 'tokens[0].tenant'],
      ['tokens: {name: a}\n', 'tokens must be a list'],
      ['token: []\n', 'token: unknown key'],
      ['jwt:\n  secret_file: jwt.secret\n  clock_tolerance_sec: -1\n', 'jwt.clock_tolerance_sec'],
      ['jwt:\n  secret_file: jwt.secret\n  algorithm: HS512\n', 'jwt.algorithm: unknown key'],
      ['tokens: []\n', 'no credentials configured'],
      ['', 'must be a mapping'],
      ['tokens: [unclosed\n', 'not valid YAML'],
    ];
    cases.forEach(([text, fragment], i) => {
      expect(configErr(write(`case-${i}.yaml`, text)).message).toContain(fragment);
    });
    expect(configErr(write('broken.json', '{"tokens": [')).message).toContain('not valid JSON');
  });

  it('missing file or unsupported extension → E_AUTH_CONFIG', () => {
    expect(configErr(join(dir, 'missing.yaml')).message).toContain('ENOENT');
    expect(configErr(write('auth.toml', 'tokens = []')).message).toContain('.yaml, .yml or .json');
  });
});
