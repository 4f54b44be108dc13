/**
 * The trust policy (docs/supply-chain.md): per scope, a mode (enforce | warn | off), the trusted public keys and
 * optionally the builder ids whose provenance is accepted. A YAML or JSON file:
 *
 *   local:                 # unikctl in local mode (UNIKCTL_TRUST_POLICY)
 *     mode: enforce
 *     keys: [release.pub.pem]          # PEM files (relative to the policy file) or inline PEM text
 *     builders: [urn:unikctl:builder:ci]
 *   controlplane:          # unikctld serve and its agents (--trust-policy)
 *     mode: warn
 *     keys: [...]
 *   tenants:               # per tenant of the control plane (docs/tenants.md): checked IN ADDITION to controlplane
 *     acme: { mode: enforce, keys: [acme.pub.pem] }
 *
 * A rule is resolved once (keys read, ids computed) into a plain JSON-able TrustRule, which travels with the
 * deployment record so the supervisor re-checks the image with the same rule right before boot.
 */
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { parse as parseYaml } from 'yaml';
import { isUserError, UserError } from '../errors.js';
import { verifyAttestation, type Verified } from './attest.js';
import { keyIdOf, parsePublicKey, publicKeyPem } from './dsse.js';
import { readImage, sha256File } from './image.js';
import { TENANT_NAME_RE, type TrustMode, type TrustRule } from '../store/types.js';

export type { TrustMode, TrustRule };

/**
 * Where a deploy is checked: on this host (local mode) or by the control plane (API, its local node and agents).
 * A tenant's rule (`tenants:` in the file) is checked at the control plane's admission in addition to the
 * controlplane scope's, so a tenant can require more (its own keys, enforce) but never less than the operator.
 */
export type TrustScope = 'local' | 'controlplane';
export const TRUST_SCOPES: readonly TrustScope[] = ['local', 'controlplane'];

export interface TrustPolicy { file: string; scopes: Partial<Record<TrustScope, TrustRule>>; tenants: Record<string, TrustRule>; }

export const OFF_RULE = (scope: string): TrustRule => ({ scope, mode: 'off', keys: [], builders: [] });

const bad = (file: string, msg: string): UserError =>
  new UserError('E_TRUST_CONFIG', `trust policy ${file}: ${msg}`, { hint: 'see docs/supply-chain.md for the policy format' });

export function loadTrustPolicy(file: string): TrustPolicy {
  let doc: unknown;
  try {
    doc = parseYaml(readFileSync(file, 'utf8'));
  } catch (e) {
    throw bad(file, `cannot be read (${(e as Error).message})`);
  }
  if (!doc || typeof doc !== 'object' || Array.isArray(doc)) throw bad(file, 'must be a map of scopes (local, controlplane)');
  const scopes: TrustPolicy['scopes'] = {};
  const tenants: TrustPolicy['tenants'] = {};
  for (const [name, raw] of Object.entries(doc as Record<string, unknown>)) {
    if (name === 'tenants') {
      if (!raw || typeof raw !== 'object' || Array.isArray(raw)) throw bad(file, 'tenants must be a map of tenant names to rules');
      for (const [tenant, r] of Object.entries(raw as Record<string, unknown>)) {
        if (!TENANT_NAME_RE.test(tenant)) throw bad(file, `tenants.${tenant} is not a tenant name (${TENANT_NAME_RE.source})`);
        tenants[tenant] = { ...readRule(file, `tenants.${tenant}`, r), scope: `tenant:${tenant}` };
      }
      continue;
    }
    if (!TRUST_SCOPES.includes(name as TrustScope)) throw bad(file, `unknown scope "${name}" (known: ${TRUST_SCOPES.join(', ')}, tenants)`);
    scopes[name as TrustScope] = readRule(file, name, raw);
  }
  return { file, scopes, tenants };
}

/** One scope's rule, its keys read and identified. */
function readRule(file: string, name: string, raw: unknown): TrustRule {
  const r = (raw ?? {}) as { mode?: unknown; keys?: unknown; builders?: unknown };
  if (r.mode !== 'enforce' && r.mode !== 'warn' && r.mode !== 'off') throw bad(file, `${name}.mode must be enforce, warn or off`);
  if (r.keys !== undefined && !Array.isArray(r.keys)) throw bad(file, `${name}.keys must be a list`);
  if (r.builders !== undefined && !(Array.isArray(r.builders) && r.builders.every((b) => typeof b === 'string'))) throw bad(file, `${name}.builders must be a list of builder ids`);
  const keys = ((r.keys ?? []) as unknown[]).map((k, i) => {
    if (typeof k !== 'string') throw bad(file, `${name}.keys[${i}] must be a PEM file path or PEM text`);
    const pem = k.includes('-----BEGIN') ? k : readKeyFile(resolve(dirname(file), k), file);
    const key = parsePublicKey(pem, `${name}.keys[${i}] of ${file}`);
    return { keyid: keyIdOf(key), publicKeyPem: publicKeyPem(key) };
  });
  if (r.mode !== 'off' && keys.length === 0) throw bad(file, `${name} is ${r.mode} but trusts no key`);
  return { scope: name, mode: r.mode, keys, builders: (r.builders ?? []) as string[] };
}

function readKeyFile(path: string, policy: string): string {
  if (!existsSync(path)) throw bad(policy, `key file ${path} does not exist`);
  return readFileSync(path, 'utf8');
}

/** The rule of a scope; a policy that does not name the scope (or no policy) leaves it off. */
export const ruleFor = (policy: TrustPolicy | null, scope: TrustScope): TrustRule => policy?.scopes[scope] ?? OFF_RULE(scope);

/** A tenant's own rule, or null when the policy has none for it (the controlplane scope alone applies). */
export const tenantRuleFor = (policy: TrustPolicy | null, tenant: string): TrustRule | null => policy?.tenants[tenant] ?? null;

/** The outcome of a check: the verified signer, or (warn mode) the failure that was let through. */
export interface TrustOutcome {
  mode: TrustMode;
  verified: Verified | null;
  /** warn mode: the check failed and the deploy goes on */
  warning: { code: UserError['code']; message: string } | null;
}

/**
 * Checks an image directory against a rule: enforce throws the failure's code, warn returns it, off checks nothing.
 * `expectManifestSha256`: the digest an earlier check recorded (the API's, when it accepted the deploy): another
 * manifest, or a kernel/rootfs file that is not the one that manifest names, is E_ARTIFACT_TAMPERED in every mode —
 * the accepted image is the only one that may boot.
 */
export function checkImage(dir: string, rule: TrustRule, expectManifestSha256?: string | null): TrustOutcome {
  const manifest = readImage(dir);
  if (expectManifestSha256) {
    const actual = sha256File(join(dir, 'manifest.json'));
    if (actual !== expectManifestSha256) {
      throw new UserError('E_ARTIFACT_TAMPERED', `the image in ${dir} is not the one checked when the deploy was accepted (manifest sha256 ${actual}, accepted ${expectManifestSha256})`, {
        hint: 'the package changed between admission and boot: deploy it again', details: { expected: expectManifestSha256, actual },
      });
    }
    for (const part of [manifest.kernel, manifest.rootfs]) {
      if (sha256File(join(dir, part.file)) !== part.sha256) {
        throw new UserError('E_ARTIFACT_TAMPERED', `${join(dir, part.file)} is not the file the accepted manifest names`, { hint: 'the package changed between admission and boot: deploy it again', details: { file: part.file } });
      }
    }
  }
  if (rule.mode === 'off') return { mode: 'off', verified: null, warning: null };
  try {
    const keys = rule.keys.map((k) => ({ keyid: k.keyid, key: parsePublicKey(k.publicKeyPem, `trusted key ${k.keyid}`) }));
    return { mode: rule.mode, verified: verifyAttestation(dir, keys, rule.builders), warning: null };
  } catch (e) {
    if (rule.mode === 'warn' && isUserError(e)) return { mode: 'warn', verified: null, warning: { code: e.code, message: e.message } };
    throw e;
  }
}

export const manifestDigest = (dir: string): string => sha256File(join(dir, 'manifest.json'));
