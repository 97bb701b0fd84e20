// A session's channel (shared/channels.py): one relay URL that plays the session's best stream
// and switches to the next best when it fails. The session page offers it first as
// "Auto (best source)" and says which source it has on air, from the session's view in the
// feed (channel_url, on_air, switched_at, switch_reason). Pure functions over plain objects.
import { playable } from "./state.js";

/** The id the channel goes by in the page's address (?view=~auto): never a stream's id. */
export const AUTO = "~auto";
export const AUTO_TITLE = "Auto (best source)";

/** Why the channel left the previous source, in words (SwitchReason). */
const REASONS = {
  dead: "the previous source died",
  stalled: "the previous source stalled",
  errors: "the previous source kept failing",
  ended: "the previous source ended",
  removed: "the previous source was removed",
};

/** The stream the channel has on air, or undefined. */
export function onAirStream(status, streams) {
  return status?.on_air ? streams.find((s) => s.id === status.on_air) : undefined;
}

/**
 * The channel as the player and the stream list show it (shaped like a stream's view), or null
 * while the session has no channel (no stream yet).
 */
export function channelView(status, streams) {
  if (!status?.channel_url) return null;
  const live = streams.some(playable);
  const resolving = streams.some((s) => s.health === "resolving");
  const onAir = onAirStream(status, streams);
  return {
    id: AUTO,
    session: status.session.key,
    title: AUTO_TITLE,
    source: onAir ? onAir.source : "switches to the best source",
    health: live ? "ok" : resolving ? "resolving" : "dead",
    health_detail: live || resolving ? "" : "no source is playable",
    qualities: [],
    playback_url: status.channel_url,
  };
}

/**
 * Whether the page plays the channel when the viewer picked nothing: once the relay said it has
 * a stream on air (a relay that serves no channels never does, and the healthiest stream plays
 * instead, as before channels).
 */
export function autoFirst(status) {
  return Boolean(status?.channel_url && status.on_air);
}

/** "12 s ago", "5 min ago", "2 h ago". */
export function ago(iso, now) {
  const seconds = Math.max(0, Math.round((now - Date.parse(iso)) / 1000));
  if (seconds < 60) return `${seconds} s ago`;
  if (seconds < 3600) return `${Math.floor(seconds / 60)} min ago`;
  return `${Math.floor(seconds / 3600)} h ago`;
}

export function clockTime(iso) {
  return new Date(iso).toLocaleTimeString(undefined, { hour: "2-digit", minute: "2-digit", second: "2-digit" });
}

/** Which source the channel has on air and since when, in words ("" without a channel). */
export function onAirText(status, streams, now = Date.now()) {
  if (!status?.channel_url) return "";
  if (!status.switched_at) return "Plays the best source and switches when it fails.";
  const when = `${clockTime(status.switched_at)} (${ago(status.switched_at, now)})`;
  if (!status.on_air) return `Nothing on air since ${when}.`;
  const name = onAirStream(status, streams)?.source ?? status.on_air;
  const why = REASONS[status.switch_reason];
  return why ? `On air: ${name} · switched at ${when}: ${why}.` : `On air: ${name} since ${when}.`;
}
