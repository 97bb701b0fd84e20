// Hash routes, so the gateway serves one page and links survive a reload:
//   #/                      home
//   #/session/<key>         a session; ?view=a,b adds the streams shown (up to four), and
//                           sync, layout, delay, offset, audio the multi-view's options
//   #/admin                 the admin page (sources), behind the admin token
import { optionParams, parseOptions } from "./sync.js";

export const MAX_VIEWS = 4;

function parse(hash) {
  const [path, query = ""] = hash.replace(/^#/, "").split("?");
  const parts = path.split("/").filter(Boolean).map(decodeURIComponent);
  const params = new URLSearchParams(query);
  if (parts[0] === "session" && parts[1]) {
    const view = (params.get("view") ?? "").split(",").filter(Boolean).slice(0, MAX_VIEWS);
    return { name: "session", key: parts[1], view, options: parseOptions(params) };
  }
  if (parts[0] === "admin") return { name: "admin" };
  return { name: "home" };
}

export function createRouter() {
  let route = $state(parse(location.hash));
  const update = () => { route = parse(location.hash); };
  window.addEventListener("hashchange", update);
  return {
    get route() { return route; },
    destroy() { window.removeEventListener("hashchange", update); },
  };
}

export function sessionHref(key, view = [], options = {}) {
  const params = view.length ? [`view=${view.map(encodeURIComponent).join(",")}`] : [];
  params.push(...optionParams(options, view));
  return `#/session/${encodeURIComponent(key)}${params.length ? `?${params.join("&")}` : ""}`;
}

/** Go to `href` in place (no new history entry: a view's options change often). */
export function replaceRoute(href) {
  history.replaceState(history.state, "", href);
  window.dispatchEvent(new HashChangeEvent("hashchange"));
}
