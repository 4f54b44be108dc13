import { afterEach, describe, expect, it, vi } from 'vitest';
import { ConsoleParser, MAX_LINE_CHARS, type ConsoleEvent, type ConsoleLine } from './console.js';

const M = '\x1eUNIK:n1:';

function collect(opts?: { partialFlushMs?: number }) {
  const lines: Array<ConsoleLine & { at: number }> = [];
  const events: Array<ConsoleEvent & { at: number }> = [];
  const out: string[] = [];
  const p = new ConsoleParser(
    'n1',
    {
      line: (l, at) => {
        lines.push({ ...l, at });
        out.push(`${l.stream}:${l.text}`);
      },
      event: (e, at) => {
        events.push({ ...e, at });
        out.push(`event:${e.event}`);
      },
    },
    opts,
  );
  return { p, lines, events, out };
}

afterEach(() => {
  vi.useRealTimers();
});

describe('ConsoleParser', () => {
  it('splits lines, strips \\r and classifies kernel lines', () => {
    const { p, lines } = collect();
    p.push('[    0.123456] Linux version 6.1\r\nhello\r\n[ 12.5] x\r\nnot [1.0] kernel\r\n', 5);
    p.close();
    expect(lines).toEqual([
      { stream: 'kernel', text: '[    0.123456] Linux version 6.1', at: 5 },
      { stream: 'app', text: 'hello', at: 5 },
      { stream: 'kernel', text: '[ 12.5] x', at: 5 },
      { stream: 'app', text: 'not [1.0] kernel', at: 5 },
    ]);
  });

  it('reassembles lines split across chunks', () => {
    const { p, out } = collect();
    p.push('hel');
    p.push('lo\r');
    p.push('\nwor');
    p.push('ld\n');
    p.close();
    expect(out).toEqual(['app:hello', 'app:world']);
  });

  it('decodes a multibyte character split across chunks', () => {
    const { p, out } = collect();
    const bytes = Buffer.from('héllo – 😀\n', 'utf8');
    for (let i = 0; i < bytes.length; i++) p.push(bytes.subarray(i, i + 1));
    p.close();
    expect(out).toEqual(['app:héllo – 😀']);
  });

  it('turns markers into events with fields', () => {
    const { p, events, out } = collect();
    p.push(`\n${M}start pid=2 uptime_ms=812\r\nhi\n\n${M}exit code=3 uptime_ms=900\n`, 42);
    p.close();
    expect(out).toEqual(['event:start', 'app:hi', 'event:exit']);
    expect(events[0]).toEqual({ event: 'start', fields: { pid: '2', uptime_ms: '812' }, message: '', raw: 'start pid=2 uptime_ms=812', at: 42 });
    expect(events[1]?.fields).toEqual({ code: '3', uptime_ms: '900' });
  });

  it('parses signal exits and free-text error / warn events', () => {
    const { p, events } = collect();
    p.push(`${M}exit signal=11 uptime_ms=5\n${M}error exec /app/x: No such file or directory\n${M}warn mount /data: a=b c\n`);
    p.close();
    expect(events.map((e) => [e.event, e.fields, e.message])).toEqual([
      ['exit', { signal: '11', uptime_ms: '5' }, ''],
      ['error', {}, 'exec /app/x: No such file or directory'],
      ['warn', {}, 'mount /data: a=b c'],
    ]);
  });

  it('handles a marker after partial app text on the same line', () => {
    const { p, out } = collect();
    p.push('abc');
    p.push(`\n${M}exit code=3 uptime_ms=900\n`);
    p.close();
    expect(out).toEqual(['app:abc', 'event:exit']);
    const b = collect();
    b.p.push(`abc${M}exit code=0 uptime_ms=1\n`);
    b.p.close();
    expect(b.out).toEqual(['app:abc', 'event:exit']);
  });

  it('treats a marker with a wrong nonce as app text', () => {
    const { p, out, events } = collect();
    p.push('\x1eUNIK:evil:exit code=0\n');
    p.close();
    expect(events).toEqual([]);
    expect(out).toEqual(['app:\x1eUNIK:evil:exit code=0']);
  });

  it("drops only the empty line that is init's leading newline", () => {
    const { p, out } = collect();
    p.push(`a\n\nb\n\n\n${M}exit code=0 uptime_ms=1\n`);
    p.flush();
    p.close();
    // "a", genuine empty, "b", genuine empty, (init's '\n' dropped), event
    expect(out).toEqual(['app:a', 'app:', 'app:b', 'app:', 'event:exit']);
  });

  it('keeps empty lines not followed by a marker (emitted at flush / on the timer)', () => {
    const { p, out } = collect();
    p.push('a\n\n');
    expect(out).toEqual(['app:a']);
    p.flush();
    expect(out).toEqual(['app:a', 'app:']);
    p.close();
  });

  it('flushes a partial line after partialFlushMs and does not add an empty line for its newline', () => {
    vi.useFakeTimers();
    const { p, out } = collect({ partialFlushMs: 100 });
    p.push('Password: ', 7);
    vi.advanceTimersByTime(99);
    expect(out).toEqual([]);
    vi.advanceTimersByTime(1);
    expect(out).toEqual(['app:Password: ']);
    p.push('\nnext\n');
    expect(out).toEqual(['app:Password: ', 'app:next']);
    p.push('tail');
    vi.advanceTimersByTime(100);
    p.push(`\n${M}exit code=0 uptime_ms=1\n`);
    expect(out).toEqual(['app:Password: ', 'app:next', 'app:tail', 'event:exit']);
    p.close();
  });

  it('does not flush a marker that is still arriving', () => {
    vi.useFakeTimers();
    const { p, out } = collect({ partialFlushMs: 50 });
    p.push(`x\n\x1eUNIK:n`);
    vi.advanceTimersByTime(200);
    expect(out).toEqual(['app:x']);
    p.push('1:exit code=1 uptime_ms=3\n');
    expect(out).toEqual(['app:x', 'event:exit']);
    p.close();
  });

  it('close() cancels the partial-line timer', () => {
    vi.useFakeTimers();
    const { p, out } = collect({ partialFlushMs: 10 });
    p.push('abc');
    p.close();
    vi.advanceTimersByTime(100);
    expect(out).toEqual([]);
  });

  it('flush() emits a final line without newline and parses a final marker', () => {
    const a = collect();
    a.p.push('last words');
    a.p.flush();
    a.p.close();
    expect(a.out).toEqual(['app:last words']);
    const b = collect();
    b.p.push(`\n${M}exit code=0 uptime_ms=1`);
    b.p.flush();
    b.p.close();
    expect(b.out).toEqual(['event:exit']);
  });

  it('splits lines longer than 16 KiB', () => {
    const { p, lines } = collect();
    const long = 'x'.repeat(MAX_LINE_CHARS * 2 + 10);
    p.push(long.slice(0, 20_000));
    p.push(`${long.slice(20_000)}\n`);
    p.close();
    expect(lines.map((l) => l.text.length)).toEqual([MAX_LINE_CHARS, MAX_LINE_CHARS, 10]);
    expect(lines.map((l) => l.text).join('')).toBe(long);
  });

  it('never splits a surrogate pair when splitting long lines', () => {
    const { p, lines } = collect();
    const long = `${'x'.repeat(MAX_LINE_CHARS - 1)}😀yz\n`;
    p.push(long);
    p.close();
    expect(lines.map((l) => l.text)).toEqual(['x'.repeat(MAX_LINE_CHARS - 1), '😀yz']);
  });
});
