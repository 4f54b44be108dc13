#!/usr/bin/env node
import { CommanderError } from 'commander';
import { createServerProgram } from '../dist/cli/daemon.js';

const program = createServerProgram().exitOverride();
program.parseAsync(process.argv).catch((e) => {
  if (e instanceof CommanderError) {
    process.exitCode = e.code === 'commander.helpDisplayed' || e.code === 'commander.version' ? 0 : 2;
    return;
  }
  process.stderr.write(`error [${e.code ?? 'E_INTERNAL'}]: ${e.message}\n${e.hint ? `  fix: ${e.hint}\n` : ''}`);
  process.exitCode = 1;
});
