import { spawn, spawnSync } from 'node:child_process';

export interface RunResult { code: number | null; signal: NodeJS.Signals | null; stdout: string; stderr: string; }

/** Runs argv (never a shell string) and collects output; `onLine` streams merged output lines as they come. */
export function run(
  argv: readonly string[],
  opts: { cwd?: string; env?: NodeJS.ProcessEnv; onLine?: (line: string) => void; signal?: AbortSignal } = {},
): Promise<RunResult> {
  const [cmd, ...args] = argv;
  if (!cmd) throw new Error('run: empty argv');
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { cwd: opts.cwd, env: opts.env ?? process.env, stdio: ['ignore', 'pipe', 'pipe'], signal: opts.signal });
    let stdout = '';
    let stderr = '';
    const lineBuf = { out: '', err: '' };
    const feed = (which: 'out' | 'err', chunk: string): void => {
      if (!opts.onLine) return;
      const text = lineBuf[which] + chunk;
      const lines = text.split('\n');
      lineBuf[which] = lines.pop() ?? '';
      for (const l of lines) opts.onLine(l);
    };
    child.stdout.setEncoding('utf8').on('data', (c: string) => { stdout += c; feed('out', c); });
    child.stderr.setEncoding('utf8').on('data', (c: string) => { stderr += c; feed('err', c); });
    child.on('error', reject);
    child.on('close', (code, signal) => {
      if (opts.onLine) for (const rest of [lineBuf.out, lineBuf.err]) if (rest) opts.onLine(rest);
      resolve({ code, signal, stdout, stderr });
    });
  });
}

/** True if `cmd` resolves on PATH (or is an existing path). */
export function which(cmd: string, env: NodeJS.ProcessEnv = process.env): string | null {
  const r = spawnSync('/bin/sh', ['-c', 'command -v "$1"', 'sh', cmd], { env, encoding: 'utf8' });
  if (r.error) return null;
  const out = (r.stdout ?? '').trim();
  return r.status === 0 && out ? out : null;
}
