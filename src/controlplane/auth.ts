/**
 * Control-plane authentication and authorization (docs/spec.md §4 CP-3/CP-4, §5), framework-agnostic: the HTTP
 * server calls `Authenticator.authenticate()` from its request hook (every endpoint but `/healthz`) and
 * `Authenticator.authorize()` with the scope the route needs. Failures are `ApiAuthError`s carrying a
 * stable code and the HTTP status (401 or 403) plus an RFC 6750 `WWW-Authenticate` challenge.
 *
 * Credentials: `Authorization: Bearer <value>` where the value is either
 *   - an opaque token (`unik_…`, see `generateToken()`), looked up by SHA-256 in the token table with a
 *     constant-time comparison; tokens are only ever held hashed in memory, or
 *   - an HS256 JWT, when `jwt` is configured, the value has the compact form `a.b.c` (two dots) and it is not
 *     a configured opaque token (those are matched exactly first, so a static token with two dots still works).
 *     The algorithm is pinned to HS256 (so `alg: none`, HS384/HS512, RS256… are rejected), `exp` and
 *     `sub` are required, `iss`/`aud` are checked when configured. Scopes come from the OAuth-style
 *     `scope` claim (space-separated string) and/or a `scopes` array claim (scopes this server does not
 *     know are ignored); the tenant from a `tenant` claim.
 * Scopes: deploy, destroy, read, logs, nodes, admin — `admin` implies every scope.
 *
 * Config file (`.yaml`/`.yml` parsed as YAML, `.json` as JSON; unknown keys are rejected):
 *
 *   tokens:
 *     - name: ci                       # unique; becomes the principal's subject
 *       token: unik_xxx                # plain token (≥ 16 chars, hashed on load)  — or —
 *       sha256: <64 hex chars>         # pre-hashed: `printf %s "$TOKEN" | sha256sum`
 *       scopes: [deploy, destroy, read, logs]
 *       tenant: team-a                 # optional
 *   jwt:                               # optional: accept HS256 JWTs
 *     secret_file: /path/to/secret     # relative paths are relative to this file; trailing newlines are
 *                                      #   stripped — or —
 *     secret_env: UNIKCTLD_JWT_SECRET  # name of an environment variable holding the secret
 *                                      # the shared secret must be ≥ 32 bytes
 *     issuer: https://issuer.example   # optional: required `iss`
 *     audience: unikctld               # optional: required `aud`
 *     clock_tolerance_sec: 30          # optional, default 0, at most 300
 *
 * At least one token or the jwt section must be present. Any problem → UserError `E_AUTH_CONFIG`
 * naming the file and the field.
 */
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { dirname, extname, resolve } from 'node:path';
import { errors as joseErrors, jwtVerify, type JWTPayload } from 'jose';
import { parse as parseYaml } from 'yaml';
import { ERROR_CODES, UserError, type ErrorCode } from '../errors.js';

export type Scope = 'deploy' | 'destroy' | 'read' | 'logs' | 'nodes' | 'admin';
export const SCOPES: readonly Scope[] = Object.freeze(['deploy', 'destroy', 'read', 'logs', 'nodes', 'admin'] as const);

export interface Principal {
  subject: string;
  scopes: Scope[];
  via: 'token' | 'jwt';
  tenant?: string;
}

export interface AuthConfig {
  /** tokens stored hashed: `sha256` is the lowercase hex SHA-256 of the token's UTF-8 bytes */
  tokens: Array<{ name: string; sha256: string; scopes: Scope[]; tenant?: string }>;
  jwt?: { secret: Uint8Array; issuer?: string; audience?: string; clockToleranceSec?: number };
}

/** The stable codes this module produces; their summaries and HTTP statuses live in the error table (src/errors.ts). */
export type AuthErrorCode = Extract<ErrorCode, 'E_UNAUTHENTICATED' | 'E_TOKEN_INVALID' | 'E_TOKEN_EXPIRED' | 'E_TOKEN_NOT_YET_VALID' | 'E_FORBIDDEN' | 'E_AUTH_CONFIG'>;

export const MIN_JWT_SECRET_BYTES = 32;
export const MIN_PLAIN_TOKEN_LENGTH = 16;
/** Longer bearer values are rejected before hashing or parsing. */
export const MAX_BEARER_LENGTH = 8192;
const MAX_CLOCK_TOLERANCE_SEC = 300;
const REALM = 'unikctld';

export class ApiAuthError extends UserError {
  /** 401 or 403, from the error table */
  readonly status: number;
  /** Value for the `WWW-Authenticate` response header (RFC 6750 §3). */
  readonly challenge: string;

  constructor(
    code: Exclude<AuthErrorCode, 'E_AUTH_CONFIG'>,
    message: string,
    opts: { hint?: string; details?: Record<string, unknown>; cause?: unknown; scope?: Scope } = {},
  ) {
    super(code, message, opts);
    this.name = 'ApiAuthError';
    this.status = ERROR_CODES[code].status;
    if (this.status === 403) this.challenge = `Bearer realm="${REALM}", error="insufficient_scope"${opts.scope ? `, scope="${opts.scope}"` : ''}`;
    else if (code === 'E_UNAUTHENTICATED') this.challenge = `Bearer realm="${REALM}"`;
    else this.challenge = `Bearer realm="${REALM}", error="invalid_token"`;
  }
}

/** Lowercase hex SHA-256 of the token's UTF-8 bytes — the form tokens are stored in. */
export function hashToken(token: string): string {
  return createHash('sha256').update(token, 'utf8').digest('hex');
}

/** A new opaque token: `unik_` + 32 random bytes in base64url (43 chars). */
export function generateToken(): string {
  return `unik_${randomBytes(32).toString('base64url')}`;
}

/** True when the principal holds `scope` directly or through `admin`. */
export function hasScope(p: Principal, scope: Scope): boolean {
  return p.scopes.includes('admin') || p.scopes.includes(scope);
}

const SHA256_HEX = /^[0-9a-f]{64}$/i;
/** RFC 6750 b64token */
const B64TOKEN = /^[A-Za-z0-9\-._~+/]+=*$/;
const JWT_SHAPE = /^[^.]*\.[^.]*\.[^.]*$/;
const NAME_RE = /^[A-Za-z0-9][A-Za-z0-9._@:-]{0,127}$/;

const TOKEN_HINT = "send 'Authorization: Bearer <token>' (the CLI reads UNIKCTL_TOKEN)";

export function invalidToken(message: string, opts: { cause?: unknown; details?: Record<string, unknown>; hint?: string } = {}): ApiAuthError {
  return new ApiAuthError('E_TOKEN_INVALID', message, { hint: 'check the token, or ask an administrator for a new one', ...opts });
}

/**
 * The credential of an `Authorization: Bearer <value>` header, checked for shape only; ApiAuthError (401) when the
 * header is missing, not Bearer, empty, too long or not an RFC 6750 b64token.
 */
export function bearerValue(authorizationHeader: string | undefined): string {
  if (authorizationHeader === undefined || authorizationHeader.trim() === '') {
    throw new ApiAuthError('E_UNAUTHENTICATED', 'authentication required: no Authorization header', { hint: TOKEN_HINT });
  }
  const m = /^\s*(\S+)(?:[ \t]+(.*))?$/.exec(authorizationHeader);
  const scheme = m?.[1] ?? '';
  if (scheme.toLowerCase() !== 'bearer') {
    throw new ApiAuthError('E_UNAUTHENTICATED', `authentication required: the Authorization scheme must be Bearer (got ${JSON.stringify(scheme.slice(0, 32))})`, { hint: TOKEN_HINT });
  }
  const value = (m?.[2] ?? '').trim();
  if (value === '') throw new ApiAuthError('E_UNAUTHENTICATED', 'authentication required: the Bearer credential is empty', { hint: TOKEN_HINT });
  if (value.length > MAX_BEARER_LENGTH) throw invalidToken(`malformed bearer token: longer than ${MAX_BEARER_LENGTH} characters`);
  if (!B64TOKEN.test(value)) throw invalidToken('malformed bearer token: it contains characters a bearer token cannot have');
  return value;
}

/** True when `presented` (a credential) hashes to `sha256Hex`, compared in constant time. */
export function matchesHash(presented: string, sha256Hex: string): boolean {
  const stored = Buffer.from(sha256Hex, 'hex');
  const digest = createHash('sha256').update(presented, 'utf8').digest();
  return stored.length === digest.length && timingSafeEqual(digest, stored);
}

interface StoredToken {
  name: string;
  hash: Buffer;
  scopes: Scope[];
  tenant?: string;
}

export class Authenticator {
  private readonly tokens: StoredToken[];
  private readonly jwt: AuthConfig['jwt'];

  constructor(config: AuthConfig) {
    this.tokens = config.tokens.map((t, i) => {
      if (!SHA256_HEX.test(t.sha256)) throw configError('AuthConfig', `tokens[${i}].sha256 must be 64 hex characters`);
      for (const s of t.scopes) if (!SCOPES.includes(s)) throw configError('AuthConfig', `tokens[${i}].scopes: unknown scope ${JSON.stringify(s)}`);
      return { name: t.name, hash: Buffer.from(t.sha256, 'hex'), scopes: [...new Set(t.scopes)], ...(t.tenant !== undefined ? { tenant: t.tenant } : {}) };
    });
    if (config.jwt && config.jwt.secret.byteLength < MIN_JWT_SECRET_BYTES) {
      throw configError('AuthConfig', `jwt.secret must be at least ${MIN_JWT_SECRET_BYTES} bytes (got ${config.jwt.secret.byteLength})`);
    }
    this.jwt = config.jwt ? { ...config.jwt, secret: new Uint8Array(config.jwt.secret) } : undefined;
  }

  /** Throws ApiAuthError (401) for a missing/malformed/unknown/expired/invalid credential. */
  async authenticate(authorizationHeader: string | undefined): Promise<Principal> {
    const value = bearerValue(authorizationHeader);

    // A configured static token is matched exactly first: a static token may contain two dots (B64TOKEN allows
    // them), and must keep working once a jwt section exists. Only a value that is no static token is tried as a JWT.
    const token = this.matchToken(value);
    if (token) return { subject: token.name, scopes: [...token.scopes], via: 'token', ...(token.tenant !== undefined ? { tenant: token.tenant } : {}) };
    if (this.jwt && JWT_SHAPE.test(value)) return this.verifyJwt(value, this.jwt);
    const looksJwt = !this.jwt && JWT_SHAPE.test(value);
    throw invalidToken('invalid bearer token: unknown token', looksJwt ? { hint: 'the value looks like a JWT, but this control plane has no jwt section in its auth config' } : {});
  }

  /** Throws ApiAuthError (403) when the principal lacks the scope. */
  authorize(p: Principal, scope: Scope): void {
    if (hasScope(p, scope)) return;
    throw new ApiAuthError('E_FORBIDDEN', `${p.via === 'jwt' ? 'JWT subject' : 'token'} ${JSON.stringify(p.subject)} lacks the "${scope}" scope this request needs`, {
      scope,
      hint: `use a credential granted the "${scope}" (or "admin") scope`,
      details: { required_scope: scope, granted_scopes: [...p.scopes] },
    });
  }

  private matchToken(value: string): StoredToken | undefined {
    const presented = createHash('sha256').update(value, 'utf8').digest();
    // Compare against every entry, without an early exit, so timing says nothing about which matched.
    let found: StoredToken | undefined;
    for (const t of this.tokens) {
      if (timingSafeEqual(presented, t.hash) && !found) found = t;
    }
    return found;
  }

  private async verifyJwt(value: string, jwt: NonNullable<AuthConfig['jwt']>): Promise<Principal> {
    let payload: JWTPayload;
    try {
      ({ payload } = await jwtVerify(value, jwt.secret, {
        algorithms: ['HS256'],
        requiredClaims: ['exp', 'sub'],
        clockTolerance: jwt.clockToleranceSec ?? 0,
        ...(jwt.issuer !== undefined ? { issuer: jwt.issuer } : {}),
        ...(jwt.audience !== undefined ? { audience: jwt.audience } : {}),
      }));
    } catch (e) {
      throw mapJoseError(e);
    }
    if (typeof payload.sub !== 'string' || payload.sub === '') throw invalidToken('invalid JWT: the "sub" claim must be a non-empty string', { details: { claim: 'sub' } });
    const scopes = new Set<Scope>();
    const addScope = (s: string): void => {
      if ((SCOPES as readonly string[]).includes(s)) scopes.add(s as Scope);
    };
    const { scope, scopes: scopesClaim, tenant } = payload as JWTPayload & { scope?: unknown; scopes?: unknown; tenant?: unknown };
    if (scope !== undefined) {
      if (typeof scope !== 'string') throw invalidToken('invalid JWT: the "scope" claim must be a space-separated string', { details: { claim: 'scope' } });
      for (const s of scope.split(/\s+/)) if (s) addScope(s);
    }
    if (scopesClaim !== undefined) {
      if (!Array.isArray(scopesClaim) || !scopesClaim.every((s) => typeof s === 'string')) {
        throw invalidToken('invalid JWT: the "scopes" claim must be an array of strings', { details: { claim: 'scopes' } });
      }
      for (const s of scopesClaim as string[]) addScope(s);
    }
    if (tenant !== undefined && (typeof tenant !== 'string' || tenant === '')) {
      throw invalidToken('invalid JWT: the "tenant" claim must be a non-empty string', { details: { claim: 'tenant' } });
    }
    return { subject: payload.sub, scopes: [...scopes], via: 'jwt', ...(typeof tenant === 'string' ? { tenant } : {}) };
  }
}

function mapJoseError(e: unknown): ApiAuthError {
  if (e instanceof joseErrors.JWTExpired) {
    return new ApiAuthError('E_TOKEN_EXPIRED', 'the JWT has expired', { cause: e, hint: 'obtain a fresh token from the issuer' });
  }
  if (e instanceof joseErrors.JWTClaimValidationFailed) {
    if (e.claim === 'nbf') {
      return new ApiAuthError('E_TOKEN_NOT_YET_VALID', 'the JWT is not valid yet ("nbf" is in the future)', {
        cause: e,
        hint: 'check the clocks of the issuer and the control plane, or set jwt.clock_tolerance_sec',
      });
    }
    const reason = e.reason === 'missing' ? `the "${e.claim}" claim is missing` : `the "${e.claim}" claim is not acceptable (${e.message})`;
    return invalidToken(`invalid JWT: ${reason}`, { cause: e, details: { claim: e.claim } });
  }
  if (e instanceof joseErrors.JOSEAlgNotAllowed) {
    return invalidToken('invalid JWT: only HS256-signed tokens are accepted', { cause: e, details: { reason: 'alg' } });
  }
  if (e instanceof joseErrors.JWSSignatureVerificationFailed) {
    return invalidToken('invalid JWT: signature verification failed', { cause: e, details: { reason: 'signature' } });
  }
  // JWSInvalid, JWTInvalid, JOSENotSupported, or anything else from parsing untrusted input: never a 500.
  return invalidToken(`invalid JWT: malformed token${e instanceof Error ? ` (${e.message})` : ''}`, { cause: e, details: { reason: 'malformed' } });
}

// ───────────────────────────── config file ─────────────────────────────

function configError(file: string, message: string, cause?: unknown): UserError {
  return new UserError('E_AUTH_CONFIG', `${file}: ${message}`, {
    hint: 'fix the auth config; the format is documented at the top of src/controlplane/auth.ts',
    ...(cause !== undefined ? { cause } : {}),
  });
}

type Obj = Record<string, unknown>;

function isObj(v: unknown): v is Obj {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function checkKeys(o: Obj, allowed: readonly string[], where: string, file: string): void {
  for (const k of Object.keys(o)) {
    if (!allowed.includes(k)) throw configError(file, `${where}${where ? '.' : ''}${k}: unknown key (allowed: ${allowed.join(', ')})`);
  }
}

function optString(o: Obj, key: string, where: string, file: string): string | undefined {
  const v = o[key];
  if (v === undefined || v === null) return undefined;
  if (typeof v !== 'string' || v.trim() === '') throw configError(file, `${where}.${key} must be a non-empty string`);
  return v;
}

/**
 * Reads and validates an auth config file (format above). Plain tokens are hashed here and never kept;
 * the JWT secret is read from `secret_file` (relative to the config file) or the `secret_env` variable.
 */
export function loadAuthConfig(file: string, env: NodeJS.ProcessEnv = process.env): AuthConfig {
  const ext = extname(file).toLowerCase();
  if (!['.yaml', '.yml', '.json'].includes(ext)) throw configError(file, 'the auth config must be a .yaml, .yml or .json file');
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (e) {
    throw configError(file, `cannot read the auth config (${(e as NodeJS.ErrnoException).code ?? String(e)})`, e);
  }
  let raw: unknown;
  try {
    raw = ext === '.json' ? JSON.parse(text) : parseYaml(text);
  } catch (e) {
    throw configError(file, `not valid ${ext === '.json' ? 'JSON' : 'YAML'}: ${e instanceof Error ? e.message.split('\n')[0] : String(e)}`, e);
  }
  if (!isObj(raw)) throw configError(file, 'the auth config must be a mapping with "tokens" and/or "jwt"');
  checkKeys(raw, ['tokens', 'jwt'], '', file);

  const tokens: AuthConfig['tokens'] = [];
  if (raw.tokens !== undefined && raw.tokens !== null) {
    if (!Array.isArray(raw.tokens)) throw configError(file, 'tokens must be a list');
    const names = new Set<string>();
    const hashes = new Map<string, string>();
    raw.tokens.forEach((t: unknown, i) => {
      const where = `tokens[${i}]`;
      if (!isObj(t)) throw configError(file, `${where} must be a mapping with name, token or sha256, and scopes`);
      checkKeys(t, ['name', 'token', 'sha256', 'scopes', 'tenant'], where, file);

      const name = optString(t, 'name', where, file);
      if (name === undefined) throw configError(file, `${where}.name is required`);
      if (!NAME_RE.test(name)) throw configError(file, `${where}.name ${JSON.stringify(name)} must be letters, digits, ".", "_", "-", "@" or ":" (at most 128)`);
      if (names.has(name)) throw configError(file, `${where}.name ${JSON.stringify(name)} is used by another token`);
      names.add(name);

      if (t.token !== undefined && t.sha256 !== undefined) throw configError(file, `${where}: give either token or sha256, not both`);
      let sha256: string;
      if (t.token !== undefined) {
        if (typeof t.token !== 'string') throw configError(file, `${where}.token must be a string`);
        if (t.token.length < MIN_PLAIN_TOKEN_LENGTH) throw configError(file, `${where}.token must be at least ${MIN_PLAIN_TOKEN_LENGTH} characters (generate one with generateToken())`);
        if (t.token.length > MAX_BEARER_LENGTH || !B64TOKEN.test(t.token)) throw configError(file, `${where}.token contains characters a bearer token cannot have`);
        sha256 = hashToken(t.token);
      } else if (t.sha256 !== undefined) {
        if (typeof t.sha256 !== 'string' || !SHA256_HEX.test(t.sha256.trim())) throw configError(file, `${where}.sha256 must be 64 hex characters (the SHA-256 of the token)`);
        sha256 = t.sha256.trim().toLowerCase();
      } else {
        throw configError(file, `${where}: token or sha256 is required`);
      }
      const other = hashes.get(sha256);
      if (other !== undefined) throw configError(file, `${where}: the same token is already configured as ${JSON.stringify(other)}`);
      hashes.set(sha256, name);

      if (!Array.isArray(t.scopes) || t.scopes.length === 0) throw configError(file, `${where}.scopes must be a non-empty list of ${SCOPES.join(', ')}`);
      const scopes: Scope[] = [];
      t.scopes.forEach((s: unknown, j) => {
        if (typeof s !== 'string' || !(SCOPES as readonly string[]).includes(s)) {
          throw configError(file, `${where}.scopes[${j}]: unknown scope ${JSON.stringify(s)} (known: ${SCOPES.join(', ')})`);
        }
        if (!scopes.includes(s as Scope)) scopes.push(s as Scope);
      });

      const tenant = optString(t, 'tenant', where, file);
      if (tenant !== undefined && !NAME_RE.test(tenant)) throw configError(file, `${where}.tenant ${JSON.stringify(tenant)} must be letters, digits, ".", "_", "-", "@" or ":"`);
      tokens.push({ name, sha256, scopes, ...(tenant !== undefined ? { tenant } : {}) });
    });
  }

  let jwt: AuthConfig['jwt'];
  if (raw.jwt !== undefined && raw.jwt !== null) {
    const j = raw.jwt;
    if (!isObj(j)) throw configError(file, 'jwt must be a mapping');
    checkKeys(j, ['secret_file', 'secret_env', 'issuer', 'audience', 'clock_tolerance_sec'], 'jwt', file);
    const secretFile = optString(j, 'secret_file', 'jwt', file);
    const secretEnv = optString(j, 'secret_env', 'jwt', file);
    if (secretFile !== undefined && secretEnv !== undefined) throw configError(file, 'jwt: give either secret_file or secret_env, not both');
    let secret: Uint8Array;
    let source: string;
    if (secretFile !== undefined) {
      const path = resolve(dirname(file), secretFile);
      source = `jwt.secret_file (${path})`;
      if (!existsSync(path)) throw configError(file, `${source} does not exist`);
      let buf: Buffer;
      try {
        buf = readFileSync(path);
      } catch (e) {
        throw configError(file, `${source} cannot be read (${(e as NodeJS.ErrnoException).code ?? String(e)})`, e);
      }
      let end = buf.length;
      while (end > 0 && (buf[end - 1] === 0x0a || buf[end - 1] === 0x0d)) end--;
      secret = new Uint8Array(buf.subarray(0, end));
    } else if (secretEnv !== undefined) {
      source = `jwt.secret_env (${secretEnv})`;
      const v = env[secretEnv];
      if (v === undefined || v === '') throw configError(file, `${source}: the environment variable is not set`);
      secret = new Uint8Array(Buffer.from(v, 'utf8'));
    } else {
      throw configError(file, 'jwt: secret_file or secret_env is required (HS256 shared secret)');
    }
    if (secret.byteLength < MIN_JWT_SECRET_BYTES) {
      throw configError(file, `${source}: the HS256 secret must be at least ${MIN_JWT_SECRET_BYTES} bytes (got ${secret.byteLength}); generate one with \`openssl rand -hex 32\``);
    }
    const issuer = optString(j, 'issuer', 'jwt', file);
    const audience = optString(j, 'audience', 'jwt', file);
    let clockToleranceSec: number | undefined;
    if (j.clock_tolerance_sec !== undefined && j.clock_tolerance_sec !== null) {
      const c = j.clock_tolerance_sec;
      if (typeof c !== 'number' || !Number.isInteger(c) || c < 0 || c > MAX_CLOCK_TOLERANCE_SEC) {
        throw configError(file, `jwt.clock_tolerance_sec must be an integer from 0 to ${MAX_CLOCK_TOLERANCE_SEC}`);
      }
      clockToleranceSec = c;
    }
    jwt = {
      secret,
      ...(issuer !== undefined ? { issuer } : {}),
      ...(audience !== undefined ? { audience } : {}),
      ...(clockToleranceSec !== undefined ? { clockToleranceSec } : {}),
    };
  }

  if (tokens.length === 0 && !jwt) throw configError(file, 'no credentials configured: add at least one entry under tokens, or a jwt section');
  return { tokens, ...(jwt ? { jwt } : {}) };
}
