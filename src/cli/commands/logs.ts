import type { Command } from 'commander';
import { UserError } from '../../errors.js';
import type { Output } from '../output.js';
import { makeClient } from '../context.js';

export function registerLogs(program: Command, out: () => Output): void {
  program
    .command('logs')
    .description("print the app's output captured from the VM's serial console")
    .argument('<app>', 'deployment name; a service merges its replicas (APP.N selects one)')
    .option('-f, --follow', 'keep printing new output until the app ends (Ctrl-C to stop)')
    .option('-n, --tail <n>', 'only the last N lines')
    .option('--since <when>', 'only lines newer than a duration (10m, 1h30m) or an ISO timestamp')
    .option('-t, --timestamps', 'prefix each line with its time (RFC 3339)')
    .addHelpText('after', '\nKernel messages are included only for --debug deployments.\n\nExamples:\n  unikctl logs web\n  unikctl logs -f --tail 20 web')
    .action(async (app: string, f: { follow?: boolean; tail?: string; since?: string; timestamps?: boolean }) => {
      const o = out();
      let tail: number | undefined;
      if (f.tail !== undefined) {
        tail = Number(f.tail);
        if (!Number.isInteger(tail) || tail < 0) throw new UserError('E_INVALID_ARGUMENT', `--tail ${f.tail} is not a non-negative integer`);
      }
      const client = makeClient();
      const abort = new AbortController();
      const onSigint = (): void => abort.abort();
      process.on('SIGINT', onSigint);
      try {
        for await (const e of client.logs({ name: app, follow: Boolean(f.follow), signal: abort.signal, ...(tail !== undefined ? { tail } : {}), ...(f.since ? { since: f.since } : {}) })) {
          // a service's merged lines name their replica (or the app, for its controller's own lines)
          if (o.json) process.stdout.write(`${JSON.stringify({ time: new Date(e.t).toISOString(), stream: e.s, message: e.m, ...(e.src ? { source: e.src } : {}) })}\n`);
          else {
            const m = e.src ? `[${e.src}] ${e.m}` : e.m;
            o.data(f.timestamps ? `${new Date(e.t).toISOString()} ${m}` : m);
          }
        }
      } finally {
        process.off('SIGINT', onSigint);
        client.close();
      }
    });
}
