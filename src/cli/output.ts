import { isUserError, toUserError, type UserError } from '../errors.js';
import { formatElapsed } from '../util/duration.js';

export interface GlobalOptions { json?: boolean; verbose?: boolean; color?: boolean; }

/** CLI-7: data on stdout, progress and diagnostics on stderr; colors only on a TTY without NO_COLOR. */
export class Output {
  readonly json: boolean;
  readonly verbose: boolean;
  readonly color: boolean;
  readonly stderrTty: boolean;

  constructor(opts: GlobalOptions, env: NodeJS.ProcessEnv = process.env) {
    this.json = Boolean(opts.json);
    this.verbose = Boolean(opts.verbose) || env.UNIKCTL_DEBUG === '1';
    this.stderrTty = Boolean(process.stderr.isTTY);
    this.color = opts.color !== false && !env.NO_COLOR && Boolean(process.stdout.isTTY) && !this.json;
  }

  data(text: string): void {
    process.stdout.write(text.endsWith('\n') ? text : `${text}\n`);
  }

  jsonData(value: unknown): void {
    process.stdout.write(`${JSON.stringify(value, null, 2)}\n`);
  }

  progress(text: string): void {
    process.stderr.write(`${text}\n`);
  }

  paint(text: string, code: 'red' | 'green' | 'yellow' | 'dim' | 'bold' | 'cyan'): string {
    if (!this.color) return text;
    const codes = { red: 31, green: 32, yellow: 33, dim: 2, bold: 1, cyan: 36 } as const;
    return `\x1b[${codes[code]}m${text}\x1b[0m`;
  }

  /** The central error printer: what failed, why, how to fix (CLI-8). */
  error(e: unknown): void {
    const err: UserError = toUserError(e);
    if (this.json) {
      process.stdout.write(`${JSON.stringify({ error: err.toJSON() }, null, 2)}\n`);
    } else {
      process.stderr.write(`${this.paint('error', 'red')} [${err.code}]: ${err.message}\n`);
      if (err.hint) process.stderr.write(`  fix: ${err.hint}\n`);
    }
    if (this.verbose || !isUserError(e)) {
      if (this.verbose && e instanceof Error && e.stack) process.stderr.write(`${e.stack}\n`);
    }
  }
}

export function table(rows: string[][], header: string[]): string {
  const all = [header, ...rows];
  const widths = header.map((_, i) => Math.max(...all.map((r) => visibleLength(r[i] ?? ''))));
  return all.map((r) => r.map((c, i) => (i === r.length - 1 ? c : c + ' '.repeat((widths[i] ?? 0) - visibleLength(c)))).join('  ').trimEnd()).join('\n');
}

// eslint-disable-next-line no-control-regex -- strips our own ANSI color codes
const visibleLength = (s: string): number => s.replace(/\x1b\[[0-9;]*m/g, '').length;

export function ago(iso: string | number, now = Date.now()): string {
  const t = typeof iso === 'number' ? iso : Date.parse(iso);
  return `${formatElapsed(now - t)} ago`;
}
