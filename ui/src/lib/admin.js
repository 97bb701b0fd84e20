// The admin page's logic, kept pure so node --test covers it: the admin API client (its own
// token, never the viewers'), turning the form into a new source or an edit, and the figures
// shown per source. Header and cookie values are write-only: the gateway sends back names only,
// and an edit sends `null` for a saved value left blank, which keeps it.

export const ADMIN_TOKEN_KEY = "slipstream.admin-token";
export const EXTRACTORS = ["auto", "http", "ytdlp", "streamlink", "browser"];

export class AdminError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

/** Calls to /api/admin with the admin token; errors carry the gateway's words. */
export function adminApi(token, fetchImpl = globalThis.fetch) {
  async function call(method, path, body) {
    const response = await fetchImpl(`/api/admin${path}`, {
      method,
      headers: {
        Authorization: `Bearer ${token}`,
        ...(body === undefined ? {} : { "Content-Type": "application/json" }),
      },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    const text = await response.text();
    let data = null;
    try {
      data = text ? JSON.parse(text) : null;
    } catch {
      data = null;
    }
    if (!response.ok) {
      const words = data?.detail ?? text ?? response.statusText;
      throw new AdminError(response.status, response.status === 401 ? "this admin token was refused" : words);
    }
    return data;
  }
  return {
    whoami: () => call("GET", "/whoami"),
    list: () => call("GET", "/sources"),
    add: (source) => call("POST", "/sources", source),
    edit: (id, patch) => call("PATCH", `/sources/${encodeURIComponent(id)}`, patch),
    enable: (id) => call("POST", `/sources/${encodeURIComponent(id)}/enable`),
    disable: (id) => call("POST", `/sources/${encodeURIComponent(id)}/disable`),
    remove: (id) => call("DELETE", `/sources/${encodeURIComponent(id)}`),
    check: (id) => call("POST", `/sources/${encodeURIComponent(id)}/check`),
  };
}

/** An empty form, or one for editing `source` (a SourceView): saved secrets stay blank. */
export function formFor(source = null) {
  if (!source) {
    return { id: "", url: "", name: "", extractor: "auto", priority: 0, user_agent: "", kinds: "",
      headers: [{ name: "", value: "", saved: false }], cookies: [] };
  }
  return {
    id: source.id, url: source.url, shownUrl: source.url, name: source.name, extractor: source.extractor,
    priority: source.priority, user_agent: source.user_agent, kinds: source.kinds.join(", "),
    headers: source.header_names.map((name) => ({ name, value: "", saved: true })),
    cookies: source.cookie_names.map((name) => ({ name, value: "", saved: true })),
  };
}

function pairs(rows, keepSaved) {
  const out = {};
  for (const row of rows) {
    const name = row.name.trim();
    if (!name) continue;
    if (row.value === "" && row.saved && keepSaved) out[name] = null; // keep the saved value
    else out[name] = row.value;
  }
  return out;
}

function kinds(text) {
  return text.split(",").map((k) => k.trim()).filter(Boolean);
}

/** The body of POST /api/admin/sources from the form. */
export function newSource(form) {
  return {
    id: form.id.trim(), url: form.url.trim(), name: form.name.trim(), extractor: form.extractor,
    priority: Number(form.priority) || 0, user_agent: form.user_agent.trim(), kinds: kinds(form.kinds),
    headers: pairs(form.headers, false), cookies: pairs(form.cookies, false),
  };
}

/** The body of PATCH /api/admin/sources/{id}: every field, headers and cookies as the full
 * set with `null` for saved values left blank (the gateway keeps those). The URL is sent only
 * when it was changed: the page shows it with its query hidden (`?***`), which must not be
 * saved over the real one. */
export function editPatch(form) {
  const url = form.url.trim();
  return {
    ...(url === form.shownUrl ? {} : { url }), name: form.name.trim(), extractor: form.extractor,
    priority: Number(form.priority) || 0, user_agent: form.user_agent.trim(), kinds: kinds(form.kinds),
    headers: pairs(form.headers, true), cookies: pairs(form.cookies, true),
  };
}

/** Figures of one row: success rate, time to resolve, in words. */
export function figures(stats) {
  return {
    rate: stats.success_rate === null ? "–" : `${Math.round(stats.success_rate * 100)}% (${stats.successes}/${stats.attempts})`,
    resolve: stats.last_resolve_ms === null ? "–" : stats.last_resolve_ms >= 1000
      ? `${(stats.last_resolve_ms / 1000).toFixed(1)} s` : `${Math.round(stats.last_resolve_ms)} ms`,
    extractor: stats.last_extractor || "–",
    error: stats.last_error || "",
  };
}
