// Player state in words a viewer understands, as pure functions of what happens to a player:
// hls.js's errors (the relay's status codes: see services/relay), and, where the browser plays
// HLS by itself (iPhones: no hls.js), what its <video> element reports.

export function describeError(data) {
  const code = data?.response?.code;
  if (code === 410) return "This stream has ended or its link expired.";
  if (code === 403) return "The relay refused this link.";
  if (code === 404) return "The relay does not know this stream.";
  if (code === 502 || code === 504) return "The stream's source is not answering; retrying…";
  if (code === 503) return "The relay is busy; retrying…";
  switch (data?.type) {
    case "networkError":
      return code === 0 || code === undefined
        ? "Cannot reach the relay; retrying…"
        : `The relay answered ${code}; retrying…`;
    case "mediaError":
      return "The video could not be decoded; recovering…";
    case "muxError":
      return "The stream's segments are damaged.";
    default:
      return `Playback failed (${data?.details ?? "unknown error"}).`;
  }
}

// A player's state when it starts on a URL: nothing loaded, no problem, and the quality menu
// back on automatic (a new URL is a new hls.js, which starts on automatic too).
export function startOver() {
  return { levels: [], chosen: -1, playing: -1, waiting: true, problem: "" };
}

// MediaError codes (https://html.spec.whatwg.org/#mediaerror).
export const MEDIA_ERR_ABORTED = 1;
export const MEDIA_ERR_NETWORK = 2;
export const MEDIA_ERR_DECODE = 3;
export const MEDIA_ERR_SRC_NOT_SUPPORTED = 4;

export function describeMediaError(error) {
  switch (error?.code) {
    case MEDIA_ERR_ABORTED:
      return "Loading the stream was stopped.";
    case MEDIA_ERR_NETWORK:
      return "Cannot reach the relay; retrying…";
    case MEDIA_ERR_DECODE:
      return "The video could not be decoded.";
    case MEDIA_ERR_SRC_NOT_SUPPORTED:
      // Safari reports a playlist it could not load (refused, expired, gone) this way too.
      return "This stream cannot be played: its link was refused or expired, or this browser does not play its format.";
    default:
      return `Playback failed (${error?.message || "unknown error"}).`;
  }
}

// The <video> events the browser's own HLS player is followed by.
export const MEDIA_EVENTS = ["loadeddata", "canplay", "playing", "waiting", "stalled", "error"];
export const STALLED = "The stream is slow to arrive; still trying…";

// The next { waiting, problem } after one of MEDIA_EVENTS (`error` is the element's `error`).
export function onMediaEvent(state, type, error = null) {
  switch (type) {
    case "loadeddata":
    case "canplay":
    case "playing": // pictures: whatever was wrong is over (autoplay may still want a tap)
      return { waiting: false, problem: "" };
    case "waiting":
      return { waiting: true, problem: state.problem };
    case "stalled": // no data for a while: said only while nothing has played yet
      return state.waiting && !state.problem ? { waiting: true, problem: STALLED } : state;
    case "error":
      return { waiting: false, problem: describeMediaError(error) };
    default:
      return state;
  }
}

// After a MediaError on `url`: "newest" to move to the newest signed URL (a refused or expired
// link reads as a network or format error), "retry" the same one after a pause, or "stay".
export function afterMediaError(error, url, newest) {
  const code = error?.code;
  if ((code === MEDIA_ERR_NETWORK || code === MEDIA_ERR_SRC_NOT_SUPPORTED) && newest && newest !== url) {
    return "newest";
  }
  return code === MEDIA_ERR_NETWORK ? "retry" : "stay";
}
