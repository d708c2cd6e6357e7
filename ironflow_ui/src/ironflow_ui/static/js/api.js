// Talking to the IronFlow REST API: the key, JSON requests and the SSE stream.
// EventSource cannot send headers, so the event stream is read with fetch() and a
// ReadableStream, which carries the X-API-Key header like every other request.

const KEY = "ironflow.apiKey";

export class ApiError extends Error {
  constructor(status, message, code) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

export const auth = {
  get key() { return sessionStorage.getItem(KEY); },
  set(key) { sessionStorage.setItem(KEY, key); },
  forget() { sessionStorage.removeItem(KEY); },
  onUnauthorized: () => {},
};

function headers(extra = {}) {
  const h = { Accept: "application/json", ...extra };
  const key = auth.key;
  if (key) h["X-API-Key"] = key;
  return h;
}

async function failure(response) {
  let message = `${response.status} ${response.statusText}`;
  let code;
  const text = await response.text();
  try {
    const body = JSON.parse(text);
    if (body && typeof body.error === "string") { message = body.error; code = body.code; }
  } catch { if (text) message = text; }
  if (response.status === 401) auth.onUnauthorized();
  return new ApiError(response.status, message, code);
}

export async function api(path, { method = "GET", body, signal } = {}) {
  const init = { method, headers: headers(), signal };
  if (body !== undefined) {
    init.headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  const response = await fetch(path, init);
  if (!response.ok) throw await failure(response);
  return response.json();
}

/** Does this server accept a request with `key` (or with none when key is null)? */
export async function probe(key) {
  const h = { Accept: "application/json" };
  if (key) h["X-API-Key"] = key;
  const response = await fetch("/runs?limit=1", { headers: h });
  if (response.status === 401) return false;
  if (!response.ok) throw await failure(response);
  return true;
}

/**
 * Stream a run's events: replay from the start, then live until run_finished.
 * Reconnects after a dropped connection from the last event id. Calls
 * onEvent(event) per frame; returns when the run finished, the stream ended
 * for good, or `signal` aborted. onGone() is called when events are unavailable.
 * Resolves to the id of the last event seen, to continue from later.
 */
export async function streamEvents(runId, { onEvent, onGone, signal, after = null }) {
  let last = after;
  let failures = 0;
  while (!signal.aborted) {
    const h = headers({ Accept: "text/event-stream" });
    if (last) h["Last-Event-ID"] = last;
    let response;
    try {
      response = await fetch(`/runs/${encodeURIComponent(runId)}/events`, { headers: h, signal });
    } catch (error) {
      if (signal.aborted) return last;
      if (++failures > 5) { onGone?.(error); return last; }
      await sleep(500 * failures, signal);
      continue;
    }
    if (!response.ok) { onGone?.(await failure(response)); return last; }
    failures = 0;
    const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
    let buffer = "";
    let finished = false;
    let streamError = null;
    try {
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        buffer += value.replace(/\r\n?/g, "\n");
        let cut;
        while ((cut = buffer.indexOf("\n\n")) >= 0) {
          const frame = parse(buffer.slice(0, cut));
          buffer = buffer.slice(cut + 2);
          if (!frame) continue;
          if (frame.event === "stream_error") { streamError = frame.data; continue; }
          if (frame.id) last = frame.id;
          onEvent(frame.data);
          if (frame.data.type === "run_finished") finished = true;
        }
      }
    } catch (error) {
      if (signal.aborted) return last;
    }
    if (finished) return last;
    if (streamError && !streamError.retryable) { onGone?.(new Error(streamError.error)); return last; }
    // The server ends a stream without run_finished when the run is terminal and its
    // events are gone, or when it is shutting down: let the page fall back to polling.
    if (!streamError) { onGone?.(null); return last; }
    await sleep(1000, signal);
  }
  return last;
}

function parse(block) {
  let id = null, event = "message", data = "";
  for (const line of block.split("\n")) {
    if (!line || line.startsWith(":")) continue;
    const colon = line.indexOf(":");
    const field = colon < 0 ? line : line.slice(0, colon);
    let value = colon < 0 ? "" : line.slice(colon + 1);
    if (value.startsWith(" ")) value = value.slice(1);
    if (field === "id") id = value;
    else if (field === "event") event = value;
    else if (field === "data") data += (data ? "\n" : "") + value;
  }
  if (!data) return null;
  try { return { id, event, data: JSON.parse(data) }; } catch { return null; }
}

function sleep(ms, signal) {
  return new Promise((resolve) => {
    const t = setTimeout(resolve, ms);
    signal?.addEventListener("abort", () => { clearTimeout(t); resolve(); }, { once: true });
  });
}
