import { describe, expect, it } from 'vitest';
import { mergeRun } from './build.js';
import type { PackResult } from './pack.js';
import { startCommand } from './procfile.js';
import type { UnikYaml } from './unikyaml.js';

const pack: PackResult = {
  run: { command: ['/usr/bin/python3', '-u', '/app/main.py'], env: { PYTHONUNBUFFERED: '1' }, workdir: '/app', memoryMiB: 128 },
  toolchain: {}, inputs: {}, artifacts: [],
  programs: { python: ['/usr/bin/python3', '-u'] },
};
const procfile = startCommand('WEB_CONCURRENCY=2 python app.py --port $PORT', 'Procfile web: (line 1)');

describe('mergeRun: the start command', () => {
  it('unik.yaml run.command wins over the Procfile, which wins over the pack', () => {
    const yaml: UnikYaml = { run: { env: { A: '1' }, command: ['/usr/bin/python3', '/app/other.py'] } };
    expect(mergeRun(pack, 'python', yaml, procfile)).toEqual({ command: ['/usr/bin/python3', '/app/other.py'], env: { PYTHONUNBUFFERED: '1', A: '1' }, workdir: '/app', memoryMiB: 128, ports: [] });
    expect(mergeRun(pack, 'python', null, procfile)).toEqual({
      command: ['/usr/bin/python3', '-u', 'app.py', '--port', '${PORT}'], expand: true,
      env: { PYTHONUNBUFFERED: '1', WEB_CONCURRENCY: '2' }, workdir: '/app', memoryMiB: 128, ports: [],
    });
    expect(mergeRun(pack, 'python', null, null).command).toEqual(['/usr/bin/python3', '-u', '/app/main.py']);
  });

  it('unik.yaml run.env wins over the Procfile assignments', () => {
    expect(mergeRun(pack, 'python', { run: { env: { WEB_CONCURRENCY: '4' } } }, procfile).env.WEB_CONCURRENCY).toBe('4');
  });
});
