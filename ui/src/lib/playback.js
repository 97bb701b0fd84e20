// hls.js errors in words a viewer understands (the relay's status codes: see services/relay).

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
