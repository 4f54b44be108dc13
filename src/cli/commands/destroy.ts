import type { Command } from 'commander';
import { UserError } from '../../errors.js';
import type { Output } from '../output.js';
import { makeClient } from '../context.js';

export function registerDestroy(program: Command, out: () => Output): void {
  program
    .command('destroy')
    .description('stop and remove deployments and their runtime artifacts (asynchronous)')
    .argument('<apps...>', 'deployment names')
    .option('--timeout <seconds>', 'grace period for the app to exit after SIGTERM before the VM is killed', '10')
    .option('--wait', 'block until the deployments are gone')
    .addHelpText('after', '\nExamples:\n  unikctl destroy web\n  unikctl destroy web worker --wait')
    .action(async (apps: string[], f: { timeout: string; wait?: boolean }) => {
      const o = out();
      const grace = Number(f.timeout);
      if (!Number.isFinite(grace) || grace < 0) throw new UserError('E_INVALID_ARGUMENT', `--timeout ${f.timeout} is not a number of seconds`);
      const client = makeClient();
      try {
        const results = await client.destroy(apps, { graceMs: grace * 1000 });
        if (f.wait) {
          for (const r of results) {
            const left = await client.waitFor(r.name, (d) => d === null, (grace + 30) * 1000);
            r.state = left ? 'destroying' : 'gone';
          }
        }
        if (o.json) o.jsonData(results);
        else for (const r of results) o.data(`${r.name} ${r.state} ${r.operationId}`);
      } finally {
        client.close();
      }
    });
}
