import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parse } from 'yaml';
import { UserError } from '../errors.js';
import { RESTART_POLICIES, ROLLOUT_STRATEGIES, type RestartPolicy, type RolloutStrategy } from '../store/service-types.js';
import { durationMs } from '../util/duration.js';
import { parseSizeMiB } from '../util/size.js';

/**
 * unik.yaml: the universal pack (build.command + artifact.path) for any language, and run settings
 * that also apply on top of a detected native pack.
 *
 *   name: hello                # image/deployment name (default: directory name)
 *   pack: python               # force a pack when the project matches several
 *   build:
 *     command: make hello      # a string runs with /bin/sh -c in the project dir; a list runs as argv
 *     env: { CC: gcc }
 *   artifact:
 *     path: hello              # file or directory produced by the build, relative to the project
 *   run:
 *     command: [/app/hello, --port, "8080"]   # default: the artifact (a file) placed at /app/<name>
 *     env: { GREETING: hi }
 *     workdir: /app
 *     ports: [8080]
 *     memory: 64M              # or a number of MiB
 *   rootfs: extra-root/        # a directory merged into the image root (never a Dockerfile)
 *   process: worker            # the Procfile process type to start (default web)
 *   include: [config.toml, templates/]   # project files the compiled packs copy next to the binary (/app)
 *   module: app                # the build module that produces the runnable program (Maven module, Gradle subproject)
 *   main: ./cmd/api          # the program to build when the project has several (Go main package, Rust binary)
 *
 * Service settings (docs/unik-yaml.md "Services"; deploy flags override each one):
 *   deploy:
 *     replicas: 3              # --replicas
 *     strategy: rolling        # rolling | canary | immediate (--strategy)
 *     max_surge: 1             # an integer or a percentage of the replicas: 25% (--max-surge)
 *     max_unavailable: 0       # likewise (--max-unavailable)
 *     canary: 1                # --canary
 *     min_healthy: 10s         # --min-healthy
 *     healthy_deadline: 5m     # --healthy-deadline
 *     auto_revert: true        # --no-auto-revert
 *   check: http:8080/healthz,interval=2s    # the --check form, `none`, or a map:
 *   #  check: { http: 8080, path: /healthz, interval: 2s, timeout: 1s, grace: 5s, failures: 3 }   (or tcp: 8080)
 *   restart: on-failure        # always | on-failure | never (--restart)
 */
export interface UnikYaml {
  name?: string;
  /** force a pack when a project matches several (e.g. node + python) */
  pack?: string;
  build?: { command: string | string[]; env: Record<string, string> };
  artifact?: { path: string };
  run: { command?: string[]; env: Record<string, string>; workdir?: string; ports?: number[]; memoryMiB?: number };
  rootfs?: string;
  /** the Procfile process type to start instead of `web` */
  process?: string;
  /** project paths (files or directories) placed under /app next to a compiled binary */
  include?: string[];
  /** the Maven module / Gradle subproject (a directory relative to the project) whose output runs */
  module?: string;
  /**
   * the program to build when the project (a Go module or workspace, a Cargo workspace) has several: a Go main
   * package directory (./cmd/api), import path or binary name; a Rust binary target name
   */
  main?: string;
  /** the service settings of the keys deploy:, check: and restart: (absent when none is written) */
  deploy?: UnikYamlDeploy;
}

/**
 * unik.yaml's service settings: shapes and types checked, durations in ms, nothing defaulted or combined yet —
 * src/engine/service-policy.ts resolveServicePolicy combines them with the deploy flags, applies the defaults and
 * checks the ranges.
 */
export interface UnikYamlDeploy {
  replicas?: number;
  strategy?: RolloutStrategy;
  /** an integer or a percentage of the replicas */
  maxSurge?: number | `${number}%`;
  maxUnavailable?: number | `${number}%`;
  canary?: number;
  minHealthyMs?: number;
  healthyDeadlineMs?: number;
  autoRevert?: boolean;
  /** `check:` in the --check flag's form (`http:8080/healthz,interval=2s`, `none`) or its map form */
  check?: string | UnikYamlCheck;
  restart?: RestartPolicy;
}

/** The map form of `check:` (`{ http: 8080, path: /healthz, interval: 2s }`); what is left out takes the flag's defaults. */
export interface UnikYamlCheck {
  kind: 'tcp' | 'http';
  port: number;
  path?: string;
  intervalMs?: number;
  timeoutMs?: number;
  graceMs?: number;
  failures?: number;
}

const invalid = (file: string, msg: string): UserError =>
  new UserError('E_UNIKYAML_INVALID', `${file}: ${msg}`, { hint: 'fix unik.yaml; the format is documented in docs/unik-yaml.md' });

function parseMemory(v: unknown, where: string, file: string): number {
  const mib = parseSizeMiB(v);
  if (mib === null) throw invalid(file, `${where} must be a size like 128M or 1G (got ${JSON.stringify(v)})`);
  return mib;
}

function stringMap(v: unknown, where: string, file: string): Record<string, string> {
  if (v === undefined || v === null) return {};
  if (typeof v !== 'object' || Array.isArray(v)) throw invalid(file, `${where} must be a map of KEY: value`);
  const out: Record<string, string> = {};
  for (const [k, val] of Object.entries(v as Record<string, unknown>)) {
    if (!/^[A-Za-z_][A-Za-z0-9_]*$/.test(k)) throw invalid(file, `${where}: "${k}" is not a valid environment variable name`);
    if (typeof val !== 'string' && typeof val !== 'number' && typeof val !== 'boolean') throw invalid(file, `${where}.${k} must be a string`);
    out[k] = String(val);
  }
  return out;
}

function stringList(v: unknown, where: string, file: string): string[] {
  if (typeof v === 'string') return [v];
  if (Array.isArray(v) && v.length > 0 && v.every((x) => typeof x === 'string' || typeof x === 'number')) return v.map(String);
  throw invalid(file, `${where} must be a non-empty list of strings`);
}

function rejectUnknown(section: Record<string, unknown>, known: string[], where: string, file: string): void {
  for (const k of Object.keys(section)) {
    if (!known.includes(k)) throw invalid(file, `unknown key "${where}.${k}" (known: ${known.join(', ')})`);
  }
}

function integer(v: unknown, where: string, file: string): number {
  if (typeof v !== 'number' || !Number.isSafeInteger(v)) throw invalid(file, `${where} must be an integer (got ${JSON.stringify(v)})`);
  return v;
}

function duration(v: unknown, where: string, file: string): number {
  const ms = typeof v === 'string' ? durationMs(v) : null;
  if (ms === null) throw invalid(file, `${where} must be a duration like 500ms, 2s, 1m30s or 1h (got ${JSON.stringify(v)})`);
  return ms;
}

function count(v: unknown, where: string, file: string): number | `${number}%` {
  if (typeof v === 'string' && /^\d+%$/.test(v.trim())) return v.trim() as `${number}%`;
  if (typeof v === 'number' && Number.isSafeInteger(v)) return v;
  throw invalid(file, `${where} must be an integer or a percentage of the replicas like 25% (got ${JSON.stringify(v)})`);
}

function oneOf<T extends string>(v: unknown, values: readonly T[], where: string, file: string): T {
  if (typeof v !== 'string' || !(values as readonly string[]).includes(v)) throw invalid(file, `${where} must be one of ${values.join(', ')} (got ${JSON.stringify(v)})`);
  return v as T;
}

function mapping(v: unknown, where: string, file: string): Record<string, unknown> {
  if (typeof v !== 'object' || v === null || Array.isArray(v)) throw invalid(file, `${where} must be a mapping`);
  return v as Record<string, unknown>;
}

/** The keys deploy:, check: and restart:, or undefined when none is written. */
function serviceSettings(y: Record<string, unknown>, file: string): UnikYamlDeploy | undefined {
  if (y.deploy === undefined && y.check === undefined && y.restart === undefined) return undefined;
  const out: UnikYamlDeploy = {};
  if (y.deploy !== undefined) {
    const d = mapping(y.deploy, 'deploy', file);
    rejectUnknown(d, ['replicas', 'strategy', 'max_surge', 'max_unavailable', 'canary', 'min_healthy', 'healthy_deadline', 'auto_revert'], 'deploy', file);
    if (d.replicas !== undefined) out.replicas = integer(d.replicas, 'deploy.replicas', file);
    if (d.strategy !== undefined) out.strategy = oneOf(d.strategy, ROLLOUT_STRATEGIES, 'deploy.strategy', file);
    if (d.max_surge !== undefined) out.maxSurge = count(d.max_surge, 'deploy.max_surge', file);
    if (d.max_unavailable !== undefined) out.maxUnavailable = count(d.max_unavailable, 'deploy.max_unavailable', file);
    if (d.canary !== undefined) out.canary = integer(d.canary, 'deploy.canary', file);
    if (d.min_healthy !== undefined) out.minHealthyMs = duration(d.min_healthy, 'deploy.min_healthy', file);
    if (d.healthy_deadline !== undefined) out.healthyDeadlineMs = duration(d.healthy_deadline, 'deploy.healthy_deadline', file);
    if (d.auto_revert !== undefined) {
      if (typeof d.auto_revert !== 'boolean') throw invalid(file, `deploy.auto_revert must be true or false (got ${JSON.stringify(d.auto_revert)})`);
      out.autoRevert = d.auto_revert;
    }
  }
  if (y.check !== undefined) {
    if (typeof y.check === 'string') {
      if (y.check.trim() === '') throw invalid(file, 'check is empty (write none for no check)');
      out.check = y.check.trim();
    } else {
      if (typeof y.check !== 'object' || y.check === null || Array.isArray(y.check)) {
        throw invalid(file, `check must be a string like http:8080/healthz (or none) or a mapping like { http: 8080, path: /healthz } (got ${JSON.stringify(y.check)})`);
      }
      const c = y.check as Record<string, unknown>;
      rejectUnknown(c, ['tcp', 'http', 'path', 'interval', 'timeout', 'grace', 'failures'], 'check', file);
      if ((c.tcp === undefined) === (c.http === undefined)) throw invalid(file, 'check needs exactly one of tcp: PORT or http: PORT');
      const kind = c.tcp !== undefined ? 'tcp' : 'http';
      const check: UnikYamlCheck = { kind, port: integer(c[kind], `check.${kind}`, file) };
      if (c.path !== undefined) {
        if (kind !== 'http') throw invalid(file, 'check.path is for http checks (tcp checks have no path)');
        if (typeof c.path !== 'string') throw invalid(file, `check.path must be a request path like /healthz (got ${JSON.stringify(c.path)})`);
        check.path = c.path;
      }
      if (c.interval !== undefined) check.intervalMs = duration(c.interval, 'check.interval', file);
      if (c.timeout !== undefined) check.timeoutMs = duration(c.timeout, 'check.timeout', file);
      if (c.grace !== undefined) check.graceMs = duration(c.grace, 'check.grace', file);
      if (c.failures !== undefined) check.failures = integer(c.failures, 'check.failures', file);
      out.check = check;
    }
  }
  if (y.restart !== undefined) out.restart = oneOf(y.restart, RESTART_POLICIES, 'restart', file);
  return out;
}

const KNOWN_TOP = new Set(['name', 'pack', 'build', 'artifact', 'run', 'rootfs', 'process', 'include', 'module', 'main', 'deploy', 'check', 'restart']);

export function loadUnikYaml(dir: string): UnikYaml | null {
  const file = join(dir, 'unik.yaml');
  const alt = join(dir, 'unik.yml');
  const path = existsSync(file) ? file : existsSync(alt) ? alt : null;
  if (!path) return null;
  let doc: unknown;
  try {
    doc = parse(readFileSync(path, 'utf8'));
  } catch (e) {
    throw invalid(path, `not valid YAML: ${(e as Error).message.split('\n')[0]}`);
  }
  if (doc === null || typeof doc !== 'object' || Array.isArray(doc)) throw invalid(path, 'the document must be a mapping');
  const y = doc as Record<string, unknown>;
  for (const k of Object.keys(y)) if (!KNOWN_TOP.has(k)) throw invalid(path, `unknown key "${k}" (known: ${[...KNOWN_TOP].join(', ')})`);

  const out: UnikYaml = { run: { env: {} } };
  if (y.name !== undefined) {
    if (typeof y.name !== 'string' || !/^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/.test(y.name)) {
      throw invalid(path, 'name must be lowercase letters, digits and dashes (at most 63)');
    }
    out.name = y.name;
  }
  if (y.pack !== undefined) {
    if (typeof y.pack !== 'string') throw invalid(path, 'pack must be a pack name (go, rust, node, python, java, dotnet, unik.yaml)');
    out.pack = y.pack;
  }
  if (y.build !== undefined) {
    const b = y.build as Record<string, unknown>;
    if (typeof b !== 'object' || b === null || Array.isArray(b) || b.command === undefined) throw invalid(path, 'build.command is required when build: is present');
    rejectUnknown(b, ['command', 'env'], 'build', path);
    const command = typeof b.command === 'string' ? b.command : stringList(b.command, 'build.command', path);
    if (typeof command === 'string' && command.trim() === '') throw invalid(path, 'build.command is empty');
    out.build = { command, env: stringMap(b.env, 'build.env', path) };
  }
  if (y.artifact !== undefined) {
    const a = y.artifact as Record<string, unknown>;
    if (typeof a !== 'object' || a === null || typeof a.path !== 'string' || a.path === '') throw invalid(path, 'artifact.path must be a path');
    rejectUnknown(a, ['path'], 'artifact', path);
    if (a.path.startsWith('/') || a.path.split('/').includes('..')) throw invalid(path, 'artifact.path must stay inside the project directory');
    out.artifact = { path: a.path };
  }
  if (out.build && !out.artifact) throw invalid(path, 'artifact.path is required with build.command (what does the build produce?)');
  if (y.run !== undefined) {
    const r = y.run as Record<string, unknown>;
    if (typeof r !== 'object' || r === null || Array.isArray(r)) throw invalid(path, 'run must be a mapping');
    rejectUnknown(r, ['command', 'env', 'workdir', 'ports', 'memory'], 'run', path);
    if (r.command !== undefined) out.run.command = stringList(r.command, 'run.command', path);
    out.run.env = stringMap(r.env, 'run.env', path);
    if (r.workdir !== undefined) {
      if (typeof r.workdir !== 'string' || !r.workdir.startsWith('/')) throw invalid(path, 'run.workdir must be an absolute path in the guest');
      out.run.workdir = r.workdir;
    }
    if (r.ports !== undefined) {
      if (!Array.isArray(r.ports) || !r.ports.every((p) => Number.isInteger(p) && p > 0 && p < 65536)) throw invalid(path, 'run.ports must be a list of port numbers');
      out.run.ports = r.ports as number[];
    }
    if (r.memory !== undefined) out.run.memoryMiB = parseMemory(r.memory, 'run.memory', path);
  }
  if (y.rootfs !== undefined) {
    if (typeof y.rootfs !== 'string') throw invalid(path, 'rootfs must be a directory path');
    out.rootfs = y.rootfs;
  }
  if (y.process !== undefined) {
    if (typeof y.process !== 'string' || !/^[A-Za-z0-9_-]+$/.test(y.process)) throw invalid(path, 'process must be a Procfile process type (letters, digits, _ and -)');
    out.process = y.process;
  }
  if (y.include !== undefined) {
    const list = stringList(y.include, 'include', path);
    for (const p of list) {
      if (p === '' || p.startsWith('/') || p.split('/').includes('..')) throw invalid(path, `include: ${JSON.stringify(p)} must be a path inside the project directory`);
    }
    out.include = list;
  }
  if (y.module !== undefined) {
    if (typeof y.module !== 'string' || y.module === '' || y.module.startsWith('/') || y.module.split('/').includes('..')) {
      throw invalid(path, 'module must be a directory inside the project (the Maven module or Gradle subproject to run, e.g. app)');
    }
    out.module = y.module.replace(/\/+$/, '');
  }
  if (y.main !== undefined) {
    if (typeof y.main !== 'string' || y.main.trim() === '' || y.main.startsWith('/') || y.main.split('/').includes('..')) {
      throw invalid(path, `main: ${JSON.stringify(y.main)} must name a program of the project (a Go package directory like ./cmd/api, or a binary name)`);
    }
    out.main = y.main.trim();
  }
  const deploy = serviceSettings(y, path);
  if (deploy) out.deploy = deploy;
  return out;
}
