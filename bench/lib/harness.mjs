// What every VM benchmark needs: the compiled runtime modules and a private unikctl home (never the user's state).
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { homedir, tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { onExit, run } from './proc.mjs';

export const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
export const CLI = join(ROOT, 'bin', 'unikctl.js');

/** The runtime's own argv builder, kernel command line, console parser and image helpers, from dist/. */
export async function loadRuntime() {
  for (const f of ['dist/runtime/qemu.js', 'dist/runtime/cmdline.js', 'dist/runtime/console.js', 'dist/image/image.js']) {
    if (!existsSync(join(ROOT, f))) throw new Error(`${f} is missing: run npm run build first`);
  }
  const imp = (f) => import(pathToFileURL(join(ROOT, f)).href);
  const { qemuArgs, launchCommand } = await imp('dist/runtime/qemu.js');
  const { kernelCmdline } = await imp('dist/runtime/cmdline.js');
  const { ConsoleParser } = await imp('dist/runtime/console.js');
  const { readImage, materializeKernel } = await imp('dist/image/image.js');
  return { qemuArgs, launchCommand, kernelCmdline, ConsoleParser, readImage, materializeKernel };
}

/** A temporary UNIKCTL_HOME (removed on exit) and a `cli(args)` that runs unikctl in it, locally. */
export function privateHome(prefix, accel) {
  const home = mkdtempSync(join(tmpdir(), prefix));
  onExit(() => rmSync(home, { recursive: true, force: true }));
  const env = { ...process.env, UNIKCTL_HOME: home, UNIKCTL_ACCEL: accel, NO_COLOR: '1' };
  env.UNIKCTL_KERNEL_DIR ??= join(homedir(), '.local', 'state', 'unikctl', 'kernels');
  delete env.UNIKCTL_CONTROL_PLANE_URL;
  delete env.UNIKCTL_TOKEN;
  const cli = (args) => run([process.execPath, CLI, ...args], { env, cwd: ROOT });
  return { home, env, cli };
}
