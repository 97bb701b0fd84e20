// The connection to the gateway's live feed (/ws): reconnects by itself with backoff, starts
// over from the fresh snapshot every connection begins with, and notices a silent link (no
// message, not even a heartbeat, for a while) and replaces it.
import { apply, emptyState } from "./state.js";

const HEARTBEAT_GRACE_MS = 40_000; // the gateway sends a heartbeat every 15 s when idle
const MAX_BACKOFF_MS = 15_000;

/** Why the gateway closed the feed, in words (codes documented in shared/feed.py). */
const CLOSE_REASONS = {
  4003: "the gateway refused this page (origin or token)",
  4008: "the connection fell behind",
  1013: "the gateway is full; trying again",
  1012: "the gateway reloaded its data",
};

const TOKEN_KEY = "slipstream.token";

function readToken() {
  try {
    return localStorage.getItem(TOKEN_KEY) ?? "";
  } catch {
    return "";
  }
}

// The gateway's access token this browser keeps (only gateways configured with one need it);
// reactive, so links that carry it update when it is entered.
const access = $state({ token: readToken() });

export function storedToken() {
  return access.token;
}

export function saveToken(token) {
  access.token = token;
  try {
    if (token) localStorage.setItem(TOKEN_KEY, token);
    else localStorage.removeItem(TOKEN_KEY);
  } catch {
    // private browsing without storage: the token lasts as long as the page
  }
}

/** A link to the gateway's API or exports, carrying the token when there is one. */
export function withToken(path) {
  const token = storedToken();
  return token ? `${path}${path.includes("?") ? "&" : "?"}token=${encodeURIComponent(token)}` : path;
}

/** A token given in the page's address (?token=...) is kept and taken out of the address. */
export function adoptTokenFromAddress(location, history) {
  const params = new URLSearchParams(location.search);
  const token = params.get("token");
  if (!token) return;
  saveToken(token);
  params.delete("token");
  const query = params.toString();
  history.replaceState(null, "", `${location.pathname}${query ? `?${query}` : ""}${location.hash}`);
}

export function createFeed(url) {
  let state = $state.raw(emptyState());
  // "connecting" | "live" | "reconnecting" | "locked" (the gateway wants a token)
  let status = $state("connecting");
  let detail = $state("");
  let retryAt = $state(0);

  let socket = null;
  let attempts = 0;
  let watchdog = 0;
  let retryTimer = 0;
  let stopped = false;

  function connect() {
    clearTimeout(retryTimer);
    if (stopped) return;
    status = attempts === 0 ? "connecting" : "reconnecting";
    const ws = new WebSocket(withToken(url));
    let opened = false;
    socket = ws;
    ws.onopen = () => {
      opened = true;
      attempts = 0;
      detail = "";
      arm();
    };
    ws.onmessage = (event) => {
      if (ws !== socket) return;
      arm();
      let message;
      try {
        message = JSON.parse(event.data);
      } catch {
        detail = "the gateway sent a message this page cannot read";
        return;
      }
      if (message.type === "snapshot") status = "live";
      state = apply(state, message);
    };
    ws.onclose = (event) => {
      if (ws !== socket) return;
      clearTimeout(watchdog);
      socket = null;
      if (stopped) return;
      detail = CLOSE_REASONS[event.code] ?? (status === "live" ? "the connection was lost" : "the gateway cannot be reached");
      if (opened) {
        if (event.code === 1012) attempts = 0; // asked to come back for a fresh snapshot: at once
        retry();
        return;
      }
      // A refused handshake looks like any failure to the page: ask the API whether a token is
      // what is missing, rather than retrying for ever.
      fetch(withToken("/api/status")).then(
        (response) => {
          if (response.status === 401) {
            status = "locked";
            detail = storedToken() ? "the access token was refused" : "this gateway needs an access token";
            return;
          }
          if (response.ok) detail = "the feed refused this page's address (gateway.allowed_origins)";
          retry();
        },
        () => retry(),
      );
    };
  }

  function arm() {
    clearTimeout(watchdog);
    watchdog = setTimeout(() => {
      detail = "no word from the gateway";
      socket?.close();
    }, HEARTBEAT_GRACE_MS);
  }

  function retry() {
    attempts += 1;
    const delay = Math.min(MAX_BACKOFF_MS, 500 * 2 ** (attempts - 1)) * (0.75 + Math.random() / 2);
    status = "reconnecting";
    retryAt = Date.now() + delay;
    retryTimer = setTimeout(connect, delay);
  }

  function onVisible() {
    // back from the background (phones suspend timers): reconnect now rather than later
    if (document.visibilityState === "visible" && !socket && !stopped) connect();
  }

  return {
    get state() { return state; },
    get status() { return status; },
    get detail() { return detail; },
    get retryAt() { return retryAt; },
    start() {
      stopped = false;
      document.addEventListener("visibilitychange", onVisible);
      connect();
    },
    stop() {
      stopped = true;
      clearTimeout(retryTimer);
      clearTimeout(watchdog);
      document.removeEventListener("visibilitychange", onVisible);
      socket?.close();
      socket = null;
    },
    reconnectNow() {
      if (!socket) {
        attempts = 0;
        connect();
      }
    },
  };
}

/** The feed's URL on the page's own origin. */
export function feedUrl(location) {
  const scheme = location.protocol === "https:" ? "wss:" : "ws:";
  return `${scheme}//${location.host}/ws`;
}
