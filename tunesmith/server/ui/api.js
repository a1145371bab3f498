// The studio's only way to the server: the OpenAI-shaped API under /v1 and the read-only /ui-api.
const KEY = "tunesmith.apiKey";

export const getApiKey = () => localStorage.getItem(KEY) || "";
export const setApiKey = (key) => (key ? localStorage.setItem(KEY, key) : localStorage.removeItem(KEY));

export class ApiError extends Error {
  constructor(status, error) {
    super(error?.message || `HTTP ${status}`);
    this.status = status;
    this.code = error?.code ?? null;
    this.param = error?.param ?? null;
  }
}

function headers(extra = {}) {
  const key = getApiKey();
  return key ? { ...extra, Authorization: `Bearer ${key}` } : extra;
}

async function errorOf(res) {
  let body = null;
  try { body = await res.json(); } catch { /* not JSON: keep the status */ }
  const error = body?.error ?? (typeof body?.detail === "string" ? { message: body.detail } : null);
  if (res.status === 401 && !error?.message) return new ApiError(401, { message: "API key required: set it under “API key”." });
  return new ApiError(res.status, error);
}

/** JSON request; throws ApiError with the server's `error.message`. */
export async function api(path, { method = "GET", body, form } = {}) {
  const init = { method, headers: headers() };
  if (form) init.body = form;
  else if (body !== undefined) {
    init.body = JSON.stringify(body);
    init.headers["Content-Type"] = "application/json";
  }
  const res = await fetch(path, init);
  if (!res.ok) throw await errorOf(res);
  return res.status === 204 ? null : res.json();
}

/** Every item of a cursor-paginated OpenAI list (`has_more` + `after`), up to `max`. */
export async function listAll(path, { limit = 100, max = 1000 } = {}) {
  const items = [];
  let after = null;
  for (;;) {
    const sep = path.includes("?") ? "&" : "?";
    const page = await api(`${path}${sep}limit=${limit}${after ? `&after=${encodeURIComponent(after)}` : ""}`);
    items.push(...page.data);
    if (!page.has_more || !page.data.length || items.length >= max) return items;
    after = page.data[page.data.length - 1].id;
  }
}

/**
 * Stream a chat completion: yields each text delta as the server sends it (SSE `data:` lines, `[DONE]` ends),
 * with `toolCalls` (the delta's `tool_calls` fragments) and `finish` (the finish reason) when a chunk carries them.
 * The last value yielded with `usage` set carries the token counts (stream_options.include_usage).
 */
export async function* streamChat(body, signal) {
  const res = await fetch("/v1/chat/completions", {
    method: "POST",
    headers: headers({ "Content-Type": "application/json", Accept: "text/event-stream" }),
    body: JSON.stringify({ ...body, stream: true, stream_options: { include_usage: true } }),
    signal,
  });
  if (!res.ok) throw await errorOf(res);
  const reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    buffer += value;
    // SSE events end with a blank line; a partial event stays in the buffer for the next read.
    const events = buffer.split(/\r?\n\r?\n/);
    buffer = events.pop();
    for (const event of events) {
      for (const line of event.split(/\r?\n/)) {
        if (!line.startsWith("data:")) continue;
        const data = line.slice(5).trim();
        if (data === "[DONE]") return;
        const chunk = JSON.parse(data);
        if (chunk.error) throw new ApiError(500, chunk.error);
        const choice = chunk.choices?.[0], delta = choice?.delta?.content ?? "";
        const toolCalls = choice?.delta?.tool_calls ?? null, finish = choice?.finish_reason ?? null;
        // The finish reason arrives on its own chunk, with an empty delta: yield it too.
        if (delta || toolCalls || finish || chunk.usage) yield { text: delta, toolCalls, usage: chunk.usage ?? null, finish };
      }
    }
  }
}
