import { Command, CommanderError } from 'commander';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { UserError } from '../errors.js';
import { projectRoot } from '../paths.js';
import { registerBuild } from './commands/build.js';
import { registerDeploy } from './commands/deploy.js';
import { registerDestroy } from './commands/destroy.js';
import { registerLogs } from './commands/logs.js';
import { registerStatus } from './commands/status.js';
import { Output, type GlobalOptions } from './output.js';

const version = (JSON.parse(readFileSync(join(projectRoot, 'package.json'), 'utf8')) as { version: string }).version;

export function createProgram(): { program: Command; output: () => Output } {
  const program = new Command('unikctl');
  let output: Output | null = null;
  const out = (): Output => (output ??= new Output(program.opts<GlobalOptions>()));
  program
    .description('Turn an app into a unikernel-style VM (a specialized Linux kernel + only its runtime closure) and run it on QEMU.')
    .version(version, '-V, --version')
    .option('--json', 'print only JSON on stdout')
    .option('-v, --verbose', 'show stack traces for errors (also UNIKCTL_DEBUG=1)')
    .option('--no-color', 'no colors (also NO_COLOR=1)')
    .showSuggestionAfterError(true)
    .showHelpAfterError('(run unikctl --help for usage)')
    .enablePositionalOptions(false)
    .helpCommand(false)
    .exitOverride()
    .configureOutput({ writeErr: (s) => process.stderr.write(s) })
    .addHelpText('after', `
Environment:
  UNIKCTL_HOME     state, packages and kernels (default ~/.local/state/unikctl)
  UNIKCTL_ACCEL    auto | kvm | tcg (default auto: KVM when it boots guests, else TCG)
  NO_COLOR         disable colors

Examples:
  unikctl build examples/go-http
  unikctl deploy examples/go-http -p 8080:8080
  unikctl logs -f go-http
  unikctl status
  unikctl destroy go-http`);
  for (const register of [registerBuild, registerDeploy, registerLogs, registerStatus, registerDestroy]) register(program, out);
  for (const cmd of program.commands) {
    cmd.exitOverride().showSuggestionAfterError(true).configureOutput({ writeErr: (s) => process.stderr.write(s) });
    // --json etc. are accepted after the command name too
    cmd.option('--json', 'print only JSON on stdout').option('-v, --verbose', 'show stack traces for errors');
    cmd.hook('preAction', (_this, action) => {
      const o = action.opts<GlobalOptions>();
      if (o.json) program.setOptionValue('json', true);
      if (o.verbose) program.setOptionValue('verbose', true);
    });
  }
  return { program, output: out };
}

export async function main(argv: string[]): Promise<number> {
  const { program, output } = createProgram();
  try {
    if (argv.length <= 2) {
      program.outputHelp();
      return 2;
    }
    await program.parseAsync(argv);
    return typeof process.exitCode === 'number' ? process.exitCode : 0;
  } catch (e) {
    if (e instanceof CommanderError) {
      if (e.code === 'commander.helpDisplayed' || e.code === 'commander.version' || e.code === 'commander.help') return 0;
      // commander already printed its message (with a suggestion); in --json mode say it as JSON too
      if (argv.includes('--json')) process.stdout.write(`${JSON.stringify({ error: { code: 'E_USAGE', message: e.message.replace(/^error: /, '') } }, null, 2)}\n`);
      return 2;
    }
    output().error(e);
    return e instanceof UserError && e.code === 'E_USAGE' ? 2 : 1;
  }
}
