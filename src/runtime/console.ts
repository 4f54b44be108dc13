/**
 * Parser for the guest's serial console as seen on QEMU's stdout.
 *
 * The byte stream is split into lines ('\n', with the serial '\r' stripped), each line is classified as
 * kernel output (printk timestamp prefix) or app output, and control markers written by the guest init
 * (`\x1eUNIK:<nonce>:<event> <fields>`) are turned into events. Only markers carrying the deployment's
 * nonce are trusted; anything else that looks like a marker is ordinary app text.
 */
import { StringDecoder } from 'node:string_decoder';

export type Stream = 'app' | 'kernel' | 'init';

export interface ConsoleLine {
  stream: Stream;
  /** The line without its trailing "\r\n". */
  text: string;
}

export interface ConsoleEvent {
  /** Event name: 'start', 'exit', 'error', 'warn', ... */
  event: string;
  /** `key=value` fields (empty for 'error' / 'warn', whose payload is free text). */
  fields: Record<string, string>;
  /** Free-text message ('error' / 'warn'); for other events any tokens that are not `key=value`. */
  message: string;
  /** The marker body after `UNIK:<nonce>:` (the nonce itself is not repeated). */
  raw: string;
}

export interface ConsoleHandlers {
  line(l: ConsoleLine, at: number): void;
  event(e: ConsoleEvent, at: number): void;
}

export interface ConsoleParserOptions {
  /** Emit a partial line (no '\n' yet) as an app line once it has waited this long. Default 300 ms. */
  partialFlushMs?: number;
}

/** Record separator that starts every init marker. */
export const MARKER_LEAD = '\x1e';
const MARKER_TAG = `${MARKER_LEAD}UNIK:`;
/** Longest line emitted; longer lines are split (measured in UTF-16 code units, never splitting a surrogate pair). */
export const MAX_LINE_CHARS = 16 * 1024;
const KERNEL_RE = /^\[\s*\d+\.\d+\]/;
const EVENT_NAME_RE = /^[A-Za-z_][\w.-]*$/;
/** Events whose remainder after the name is a free-text message rather than fields. */
const TEXT_EVENTS = new Set(['error', 'warn']);

export class ConsoleParser {
  private readonly prefix: string;
  private readonly handlers: ConsoleHandlers;
  private readonly partialFlushMs: number;
  private readonly decoder = new StringDecoder('utf8');
  /** Text received after the last '\n'. */
  private buf = '';
  /** Timestamp of the most recent chunk that added to `buf`. */
  private bufAt = 0;
  /** Empty lines held back until we know whether a marker follows (then the last one is init's own '\n'). */
  private heldEmpty: number[] = [];
  /** The current line's beginning was already emitted (timer flush or length split); its '\n' alone must not make an empty line. */
  private continuation = false;
  private timer: NodeJS.Timeout | undefined;
  private closed = false;

  constructor(nonce: string, handlers: ConsoleHandlers, opts: ConsoleParserOptions = {}) {
    this.prefix = `${MARKER_TAG}${nonce}:`;
    this.handlers = handlers;
    this.partialFlushMs = opts.partialFlushMs ?? 300;
  }

  push(chunk: Buffer | string, at: number = Date.now()): void {
    const text = typeof chunk === 'string' ? chunk : this.decoder.write(chunk);
    if (text.length === 0) return;
    this.buf += text;
    this.bufAt = at;
    let nl: number;
    while ((nl = this.buf.indexOf('\n')) !== -1) {
      const line = this.buf.slice(0, nl);
      this.buf = this.buf.slice(nl + 1);
      this.completeLine(line, at);
    }
    this.splitLongPartial(at);
    this.schedule();
  }

  /** Emits whatever is buffered (a final line without '\n', held empty lines). Call at EOF. */
  flush(at: number = Date.now()): void {
    this.cancelTimer();
    const tail = this.decoder.end();
    if (tail) this.buf += tail;
    if (this.buf.length > 0) {
      const line = this.buf;
      this.buf = '';
      this.completeLine(line, at);
    }
    this.emitHeld();
    this.continuation = false;
  }

  close(): void {
    this.closed = true;
    this.cancelTimer();
  }

  // ---------------------------------------------------------------------------------------------

  private completeLine(raw: string, at: number): void {
    const line = raw.endsWith('\r') ? raw.slice(0, -1) : raw;
    const continuation = this.continuation;
    this.continuation = false;
    if (line.length === 0) {
      // The '\n' that ends a line whose text was already emitted is not an empty line of its own.
      if (!continuation) this.heldEmpty.push(at);
      return;
    }
    const idx = this.findMarker(line);
    if (idx === -1) {
      this.emitHeld();
      this.emitText(line, at);
      return;
    }
    if (idx === 0 && this.heldEmpty.length > 0) this.heldEmpty.pop(); // init's leading '\n'
    this.emitHeld();
    if (idx > 0) this.emitText(line.slice(0, idx), at);
    const ev = this.parseMarker(line.slice(idx + this.prefix.length));
    if (ev) this.handlers.event(ev, at);
    else this.emitText(line.slice(idx), at);
  }

  /** Index of a marker with our nonce in the line, or -1. */
  private findMarker(line: string): number {
    let from = 0;
    for (;;) {
      const idx = line.indexOf(this.prefix, from);
      if (idx === -1) return -1;
      // A marker must name an event; "…UNIK:<nonce>:" followed by nothing usable is just text.
      const rest = line.slice(idx + this.prefix.length);
      const name = rest.split(' ', 1)[0] ?? '';
      if (EVENT_NAME_RE.test(name)) return idx;
      from = idx + 1;
    }
  }

  private parseMarker(body: string): ConsoleEvent | undefined {
    const sp = body.indexOf(' ');
    const event = sp === -1 ? body : body.slice(0, sp);
    if (!EVENT_NAME_RE.test(event)) return undefined;
    const rest = sp === -1 ? '' : body.slice(sp + 1);
    if (TEXT_EVENTS.has(event)) return { event, fields: {}, message: rest.trim(), raw: body };
    const entries: Array<[string, string]> = [];
    const words: string[] = [];
    for (const tok of rest.split(' ')) {
      if (tok === '') continue;
      const eq = tok.indexOf('=');
      if (eq > 0) entries.push([tok.slice(0, eq), tok.slice(eq + 1)]);
      else words.push(tok);
    }
    // Object.fromEntries defines own properties, so a key like "__proto__" cannot touch the prototype.
    return { event, fields: Object.fromEntries(entries), message: words.join(' '), raw: body };
  }

  private emitText(text: string, at: number): void {
    const stream: Stream = KERNEL_RE.test(text) ? 'kernel' : 'app';
    let rest = text;
    while (rest.length > MAX_LINE_CHARS) {
      const cut = safeCut(rest, MAX_LINE_CHARS);
      this.handlers.line({ stream, text: rest.slice(0, cut) }, at);
      rest = rest.slice(cut);
    }
    this.handlers.line({ stream, text: rest }, at);
  }

  private emitHeld(): void {
    const held = this.heldEmpty;
    if (held.length === 0) return;
    this.heldEmpty = [];
    for (const t of held) this.handlers.line({ stream: 'app', text: '' }, t);
  }

  /** A partial line that grows past the limit is emitted in pieces without waiting for its '\n'. */
  private splitLongPartial(at: number): void {
    while (this.buf.length > MAX_LINE_CHARS) {
      const cut = safeCut(this.buf, MAX_LINE_CHARS);
      const piece = this.buf.slice(0, cut);
      this.buf = this.buf.slice(cut);
      this.emitHeld();
      const contStream: Stream = this.continuation ? 'app' : KERNEL_RE.test(piece) ? 'kernel' : 'app';
      this.handlers.line({ stream: contStream, text: piece }, at);
      this.continuation = true;
    }
  }

  private schedule(): void {
    if (this.closed) return;
    const pending = this.buf.length > 0 || this.heldEmpty.length > 0;
    if (!pending) {
      this.cancelTimer();
      return;
    }
    if (this.timer) return; // measured from when the data started waiting, not from the last chunk
    this.timer = setTimeout(() => this.onTimer(), this.partialFlushMs);
    this.timer.unref();
  }

  private onTimer(): void {
    this.timer = undefined;
    if (this.closed) return;
    this.emitHeld();
    if (this.buf.length === 0) return;
    // Never flush (part of) a marker that is still arriving: keep everything from its start.
    const keepFrom = this.pendingMarkerStart(this.buf);
    const text = keepFrom === -1 ? this.buf : this.buf.slice(0, keepFrom);
    const stripped = text.endsWith('\r') ? text.slice(0, -1) : text;
    this.buf = keepFrom === -1 ? '' : this.buf.slice(keepFrom);
    if (stripped.length > 0) {
      this.emitText(stripped, this.bufAt);
      this.continuation = true;
    }
  }

  /** Start of a (possibly incomplete) marker with our nonce in a partial line, or -1. */
  private pendingMarkerStart(s: string): number {
    let from = 0;
    for (;;) {
      const idx = s.indexOf(MARKER_LEAD, from);
      if (idx === -1) return -1;
      const tail = s.slice(idx);
      if (tail.startsWith(this.prefix) || this.prefix.startsWith(tail)) return idx;
      from = idx + 1;
    }
  }

  private cancelTimer(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
  }
}

/** A cut position <= max that does not separate a UTF-16 surrogate pair. */
function safeCut(s: string, max: number): number {
  const c = s.charCodeAt(max - 1);
  return c >= 0xd800 && c <= 0xdbff ? max - 1 : max;
}
