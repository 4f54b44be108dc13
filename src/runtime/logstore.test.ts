import { appendFileSync, existsSync, mkdtempSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { UserError } from '../errors.js';
import { followLogs, LogWriter, parseSince, readLogs, type LogEntry } from './logstore.js';

let dir: string;
let file: string;

beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'unik-logstore-'));
  file = join(dir, 'app.log');
});

afterEach(() => {
  rmSync(dir, { recursive: true, force: true });
});

const entry = (i: number, s: LogEntry['s'] = 'app'): LogEntry => ({ t: 1000 + i, s, m: `line ${i}` });

function fileSizes(): number[] {
  return readdirSync(dir).map((n) => statSync(join(dir, n)).size);
}

async function collectUntil(it: AsyncIterator<LogEntry>, n: number, out: LogEntry[]): Promise<void> {
  while (out.length < n) {
    const r = await it.next();
    if (r.done) throw new Error(`iteration ended after ${out.length} entries`);
    out.push(r.value);
  }
}

describe('LogWriter', () => {
  it('appends JSON lines', () => {
    const w = new LogWriter(join(dir, 'sub', 'x.log'));
    w.append({ t: 1, s: 'init', m: 'hé "q"\n' });
    w.close();
    expect(readLogs(join(dir, 'sub', 'x.log'))).toEqual([{ t: 1, s: 'init', m: 'hé "q"\n' }]);
  });

  it('rotates, keeps at most `keep` old files and bounds total bytes', () => {
    const maxBytes = 500;
    const w = new LogWriter(file, { maxBytes, keep: 2 });
    for (let i = 0; i < 200; i++) w.append(entry(i));
    w.close();
    expect(readdirSync(dir).sort()).toEqual(['app.log', 'app.log.1', 'app.log.2']);
    for (const size of fileSizes()) expect(size).toBeLessThanOrEqual(maxBytes);
    expect(fileSizes().reduce((a, b) => a + b, 0)).toBeLessThanOrEqual(3 * maxBytes);
    // The newest entries survive, in order and without gaps.
    const got = readLogs(file).map((e) => e.t - 1000);
    expect(got.at(-1)).toBe(199);
    expect(got).toEqual(Array.from({ length: got.length }, (_, k) => 200 - got.length + k));
  });

  it('keep: 0 keeps no rotated file', () => {
    const w = new LogWriter(file, { maxBytes: 200, keep: 0 });
    for (let i = 0; i < 50; i++) w.append(entry(i));
    w.close();
    expect(readdirSync(dir)).toEqual(['app.log']);
    expect(statSync(file).size).toBeLessThanOrEqual(200);
  });

  it('truncates a single entry larger than maxBytes', () => {
    const w = new LogWriter(file, { maxBytes: 100 });
    w.append({ t: 1, s: 'app', m: 'x'.repeat(1000) });
    w.close();
    expect(statSync(file).size).toBeLessThanOrEqual(100);
    const [e] = readLogs(file);
    expect(e?.m).toMatch(/^x+$/);
  });

  it('continues an existing file after reopening', () => {
    const w1 = new LogWriter(file);
    w1.append(entry(1));
    w1.close();
    const w2 = new LogWriter(file);
    w2.append(entry(2));
    w2.close();
    expect(readLogs(file).map((e) => e.m)).toEqual(['line 1', 'line 2']);
  });
});

describe('readLogs', () => {
  it('returns [] when no file exists', () => {
    expect(readLogs(file)).toEqual([]);
    expect(readLogs(join(dir, 'missing', 'x.log'))).toEqual([]);
  });

  it('reads rotated files oldest first, then the current one', () => {
    writeFileSync(`${file}.2`, `${JSON.stringify(entry(1))}\n`);
    writeFileSync(`${file}.1`, `${JSON.stringify(entry(2))}\n${JSON.stringify(entry(3))}\n`);
    writeFileSync(file, `${JSON.stringify(entry(4))}\n`);
    writeFileSync(`${file}.bak`, `${JSON.stringify(entry(99))}\n`);
    expect(readLogs(file).map((e) => e.t)).toEqual([1001, 1002, 1003, 1004]);
  });

  it('skips malformed lines and a partial last line', () => {
    writeFileSync(
      file,
      [
        JSON.stringify(entry(1)),
        'not json',
        '{"t":"x","s":"app","m":"bad t"}',
        '{"t":5,"s":"nope","m":"bad stream"}',
        '{"t":5,"s":"app"}',
        '[1,2]',
        '',
        JSON.stringify(entry(2)),
        '{"t":9,"s":"app","m":"unfinish',
      ].join('\n'),
    );
    expect(readLogs(file).map((e) => e.t)).toEqual([1001, 1002]);
  });

  it('filters by stream and since, then applies tail', () => {
    const w = new LogWriter(file);
    for (let i = 0; i < 10; i++) w.append(entry(i, i % 2 === 0 ? 'app' : 'kernel'));
    w.close();
    expect(readLogs(file, { streams: ['kernel'] }).map((e) => e.t)).toEqual([1001, 1003, 1005, 1007, 1009]);
    expect(readLogs(file, { sinceMs: 1007 }).map((e) => e.t)).toEqual([1007, 1008, 1009]);
    expect(readLogs(file, { tail: 3 }).map((e) => e.t)).toEqual([1007, 1008, 1009]);
    expect(readLogs(file, { tail: 2, streams: ['app'], sinceMs: 1001 }).map((e) => e.t)).toEqual([1006, 1008]);
    expect(readLogs(file, { tail: 0 })).toEqual([]);
    expect(readLogs(file, { streams: [] })).toHaveLength(10);
  });
});

describe('followLogs', () => {
  it('yields existing entries, then appended ones across a rotation, and ends when done', async () => {
    const w = new LogWriter(file, { maxBytes: 300, keep: 2 });
    w.append(entry(0));
    w.append(entry(1));
    let done = false;
    const ac = new AbortController();
    const it = followLogs(file, { signal: ac.signal, pollMs: 10, isDone: () => done })[Symbol.asyncIterator]();
    const got: LogEntry[] = [];
    await collectUntil(it, 2, got);
    for (let i = 2; i < 6; i++) w.append(entry(i));
    await collectUntil(it, 6, got);
    // Enough to rotate (several times only if the reader were slow; once or twice here).
    for (let i = 6; i < 12; i++) w.append(entry(i));
    expect(existsSync(`${file}.1`)).toBe(true);
    await collectUntil(it, 12, got);
    w.append(entry(12));
    w.close();
    done = true;
    const rest: LogEntry[] = [];
    for (;;) {
      const r = await it.next();
      if (r.done) break;
      rest.push(r.value);
    }
    expect([...got, ...rest].map((e) => e.t - 1000)).toEqual(Array.from({ length: 13 }, (_, i) => i));
  });

  it('survives several rotations between two polls', async () => {
    const w = new LogWriter(file, { maxBytes: 100, keep: 5 });
    w.append(entry(0));
    let done = false;
    const it = followLogs(file, { signal: new AbortController().signal, pollMs: 50, isDone: () => done })[Symbol.asyncIterator]();
    const got: LogEntry[] = [];
    await collectUntil(it, 1, got);
    for (let i = 1; i < 8; i++) w.append(entry(i)); // each entry ~40 bytes: rotates every 2 entries
    w.close();
    done = true;
    for (;;) {
      const r = await it.next();
      if (r.done) break;
      got.push(r.value);
    }
    expect(got.map((e) => e.t - 1000)).toEqual([0, 1, 2, 3, 4, 5, 6, 7]);
  });

  it('waits for a partially written line to be completed', async () => {
    writeFileSync(file, '');
    let done = false;
    const it = followLogs(file, { signal: new AbortController().signal, pollMs: 10, isDone: () => done })[Symbol.asyncIterator]();
    const first = it.next();
    const line = JSON.stringify(entry(1));
    appendFileSync(file, line.slice(0, 10));
    await new Promise((r) => setTimeout(r, 50));
    appendFileSync(file, `${line.slice(10)}\n`);
    expect((await first).value).toEqual(entry(1));
    done = true;
    expect((await it.next()).done).toBe(true);
  });

  it('waits for the file to appear and applies tail / stream filters', async () => {
    let done = false;
    const ac = new AbortController();
    const seen: LogEntry[] = [];
    const run = (async () => {
      for await (const e of followLogs(file, { signal: ac.signal, pollMs: 10, isDone: () => done, streams: ['kernel'], tail: 1 })) seen.push(e);
    })();
    await new Promise((r) => setTimeout(r, 30));
    const w = new LogWriter(file);
    w.append(entry(1, 'app'));
    w.append(entry(2, 'kernel'));
    w.append(entry(3, 'kernel'));
    w.close();
    await new Promise((r) => setTimeout(r, 50));
    done = true;
    await run;
    expect(seen.map((e) => e.t)).toEqual([1002, 1003]);
  });

  it('applies tail to the initial entries only', async () => {
    const w = new LogWriter(file);
    for (let i = 0; i < 5; i++) w.append(entry(i));
    w.close();
    const seen: LogEntry[] = [];
    for await (const e of followLogs(file, { signal: new AbortController().signal, pollMs: 10, isDone: () => true, tail: 2 })) seen.push(e);
    expect(seen.map((e) => e.t)).toEqual([1003, 1004]);
  });

  it('ends when the signal aborts', async () => {
    writeFileSync(file, `${JSON.stringify(entry(1))}\n`);
    const ac = new AbortController();
    const seen: LogEntry[] = [];
    const run = (async () => {
      for await (const e of followLogs(file, { signal: ac.signal, pollMs: 1000, isDone: () => false })) seen.push(e);
    })();
    await new Promise((r) => setTimeout(r, 30));
    const started = Date.now();
    ac.abort();
    await run;
    expect(Date.now() - started).toBeLessThan(500);
    expect(seen).toEqual([entry(1)]);
  });
});

describe('parseSince', () => {
  const now = Date.UTC(2024, 0, 10, 12, 0, 0);

  it('parses durations', () => {
    expect(parseSince('30s', now)).toBe(now - 30_000);
    expect(parseSince('5m', now)).toBe(now - 300_000);
    expect(parseSince('2h', now)).toBe(now - 7_200_000);
    expect(parseSince('1d', now)).toBe(now - 86_400_000);
    expect(parseSince('1h30m', now)).toBe(now - 5_400_000);
    expect(parseSince(' 10m ', now)).toBe(now - 600_000);
  });

  it('parses ISO-8601 timestamps', () => {
    expect(parseSince('2024-01-09T08:00:00Z', now)).toBe(Date.UTC(2024, 0, 9, 8));
    expect(parseSince('2024-01-09T08:00:00.250Z', now)).toBe(Date.UTC(2024, 0, 9, 8, 0, 0, 250));
    expect(parseSince('2024-01-09T08:00:00+02:00', now)).toBe(Date.UTC(2024, 0, 9, 6));
    expect(parseSince('2024-01-09', now)).toBe(Date.UTC(2024, 0, 9));
    expect(parseSince('2024-01-09T08:00', now)).toBe(new Date(2024, 0, 9, 8, 0).getTime()); // local time
  });

  it('rejects anything else with E_INVALID_ARGUMENT', () => {
    for (const bad of ['', 'yesterday', '10', '10x', 'm5', '5m3', '-5m', '2024-02-30', '2024-13-01T00:00:00Z', 'March 7, 2024']) {
      let err: unknown;
      try {
        parseSince(bad, now);
      } catch (e) {
        err = e;
      }
      expect(err, bad).toBeInstanceOf(UserError);
      expect((err as UserError).code).toBe('E_INVALID_ARGUMENT');
      expect((err as UserError).hint).toBe('use a duration like 10m or an ISO timestamp');
    }
  });
});

describe('LogWriter on a full disk', () => {
  it.skipIf(!existsSync('/dev/full'))('drops lines on ENOSPC instead of throwing (a supervisor must not die of a full disk)', () => {
    // /dev/full answers every write with ENOSPC
    const w = new LogWriter('/dev/full');
    try {
      for (let i = 0; i < 5; i++) expect(() => w.append(entry(i))).not.toThrow();
    } finally {
      w.close();
    }
  });

  it('still throws other write errors', () => {
    const w = new LogWriter(file);
    w.close();
    expect(() => w.append(entry(1))).toThrow(/closed/);
  });
});
