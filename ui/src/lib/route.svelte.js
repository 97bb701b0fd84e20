// Hash routes, so the gateway serves one page and links survive a reload:
//   #/                      home
//   #/session/<key>         a session; ?view=a,b adds the streams shown (up to four)
//   #/admin                 the admin page (sources), behind the admin token
export const MAX_VIEWS = 4;

function parse(hash) {
  const [path, query = ""] = hash.replace(/^#/, "").split("?");
  const parts = path.split("/").filter(Boolean).map(decodeURIComponent);
  const params = new URLSearchParams(query);
  if (parts[0] === "session" && parts[1]) {
    const view = (params.get("view") ?? "").split(",").filter(Boolean).slice(0, MAX_VIEWS);
    return { name: "session", key: parts[1], view };
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

export function sessionHref(key, view = []) {
  const query = view.length ? `?view=${view.map(encodeURIComponent).join(",")}` : "";
  return `#/session/${encodeURIComponent(key)}${query}`;
}
