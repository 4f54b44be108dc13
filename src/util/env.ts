import { UserError } from '../errors.js';

/**
 * The environment travels base64-encoded on the kernel command line (2,047 bytes, ~1,900 usable, shared with the
 * network config and argv); 1 KiB of raw `KEY=VALUE` records leaves room for the rest.
 */
export const MAX_ENV_BYTES = 1024;

/** `KEY=VALUE` items (the value may itself hold `=`); parsed and printed only here. */
export function parseEnv(items: string[]): Record<string, string> {
  const env: Record<string, string> = {};
  let bytes = 0;
  for (const item of items) {
    const i = item.indexOf('=');
    const key = i > 0 ? item.slice(0, i) : '';
    if (!/^[A-Za-z_][A-Za-z0-9_]*$/.test(key)) {
      throw new UserError('E_INVALID_ARGUMENT', `-e "${item}" is not KEY=VALUE`, { hint: 'e.g. -e GREETING=hello' });
    }
    const value = item.slice(i + 1);
    // the guest config is a list of NUL-terminated records: a NUL inside a value would cut it (and forge the next record)
    if (value.includes('\0')) {
      throw new UserError('E_INVALID_ARGUMENT', `-e ${key}: the value contains a NUL byte`, { hint: 'environment values are C strings; remove the NUL byte' });
    }
    env[key] = value;
    bytes += Buffer.byteLength(item) + 1;
  }
  if (bytes > MAX_ENV_BYTES) {
    throw new UserError('E_INVALID_ARGUMENT', `the environment takes ${bytes} bytes; at most ${MAX_ENV_BYTES} fit on the guest's kernel command line`, {
      hint: 'pass fewer or shorter -e values; large configuration belongs in files inside the image (unik.yaml rootfs:)',
    });
  }
  return env;
}

/** The `KEY=VALUE` items of an environment (the inverse of parseEnv). */
export function formatEnv(env: Record<string, string>): string[] {
  return Object.entries(env).map(([k, v]) => `${k}=${v}`);
}
