import { describe, expect, it } from 'vitest';
import type { DeploymentView, StatusResult } from '../../engine/client.js';
import { Output } from '../output.js';
import { renderStatus } from './status.js';

const view = (over: Partial<DeploymentView>): DeploymentView => ({
  name: 'x', id: 'dep_1', state: 'running', exitCode: null, code: null, reason: null, ports: [], imageBytes: null, image: null, pack: null, mode: null,
  accel: 'tcg', bootMs: null, boot: {}, uptimeMs: null, createdAt: '', startedAt: null, endedAt: null,
  metrics: { cpuSeconds: null, rssBytes: null, supervisorRssBytes: null }, listen: null, signedBy: null, trust: null, ...over,
});

describe('renderStatus', () => {
  it('shows each app\'s listener health and, under WARNINGS, what is wrong and the fix line', () => {
    const s: StatusResult = {
      operations: [],
      deployments: [
        view({ name: 'web', ports: ['8080->8080/tcp'], listen: { health: 'listening', ports: [8080], listeners: [{ address: '0.0.0.0', port: 8080 }], warning: null, since: 1 } }),
        view({
          name: 'lo', ports: ['3000->3000/tcp'],
          listen: {
            health: 'localhost-only', ports: [3000], listeners: [{ address: '127.0.0.1', port: 3000 }], since: 1,
            warning: { code: 'E_LISTENING_LOCALHOST_ONLY', message: 'the app listens on 127.0.0.1:3000 only', fix: 'deploy -e HOST=0.0.0.0' },
          },
        }),
        view({ name: 'done', state: 'exited', exitCode: 0 }),
      ],
    };
    const text = renderStatus(new Output({}, { NO_COLOR: '1' }), s);
    const lines = text.split('\n');
    expect(lines[0]).toMatch(/^NAME\s+STATE\s+HEALTH\s+PORTS/);
    expect(lines[1]).toMatch(/^web\s+running\s+listening\s+8080->8080\/tcp/);
    expect(lines[2]).toMatch(/^lo\s+running\s+localhost-only\s+3000->3000\/tcp/);
    expect(lines[3]).toMatch(/^done\s+exited\(0\)\s+-\s+-/);
    expect(lines.slice(4)).toEqual(['', 'WARNINGS', 'lo: E_LISTENING_LOCALHOST_ONLY: the app listens on 127.0.0.1:3000 only', '  fix: deploy -e HOST=0.0.0.0']);
  });
});
