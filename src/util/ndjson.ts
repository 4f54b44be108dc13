/** Yields one parsed value per line of a streamed JSON-lines response body; stops quietly when `signal` aborts. */
export async function* readNdjson<T>(body: ReadableStream<Uint8Array> | null, signal: AbortSignal): AsyncIterable<T> {
  if (!body) return;
  const reader = body.getReader();
  const onAbort = (): void => { void reader.cancel().catch(() => {}); };
  signal.addEventListener('abort', onAbort);
  const decoder = new TextDecoder();
  let buf = '';
  try {
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      buf += decoder.decode(value, { stream: true });
      let i;
      while ((i = buf.indexOf('\n')) >= 0) {
        const line = buf.slice(0, i);
        buf = buf.slice(i + 1);
        if (line.trim()) yield JSON.parse(line) as T;
      }
    }
  } catch (e) {
    if (!signal.aborted) throw e;
  } finally {
    signal.removeEventListener('abort', onAbort);
  }
}
