// Multi-view in step, as pure functions: which wall-clock moment a view plays, how each player
// is brought to it and held there, and the view's options in the address.
//
// Every relayed playlist carries EXT-X-PROGRAM-DATE-TIME (the origin's, or stamped by the relay
// from when segments appeared), so each player can say which wall-clock moment it shows. A
// player's clock is a snapshot in milliseconds since the epoch:
//   { position: what it shows now, newest: the newest moment it can show safely (hls.js's live
//     sync position), oldest: the oldest moment its window still has }   (each may be null)
// A feed's offset (seconds) holds it back (+) or brings it forward (-) against the others:
// at view time T the player of feed i shows T - offset_i.

/** Beyond this many seconds off (after a stall), a player is moved by seeking; below, by its
 * playback rate. */
export const SEEK_ABOVE = 1;
/** Closer than this many seconds counts as in step: rate 1. */
export const DEADBAND = 0.04;
/** The playback rate stays within 1 ± this. */
export const MAX_NUDGE = 0.15;
/** Rate change per second of error: an error decays with a time constant of 1 / GAIN s. */
export const GAIN = 0.8;
/** Seconds ahead of the target a seek outside the buffer lands, for the time the player takes
 * to load there (within the buffer it lands on the target). */
export const SEEK_LEAD = 0.3;
export const LAYOUTS = ["grid", "focus"];
/** The "delay from live" choices offered (seconds behind live; 0: as live as all can). */
export const DELAYS = [0, 10, 20, 30, 45];

/**
 * The newest moment (ms) every player can show with its offset, or null when some player has
 * no clock yet or the players' windows do not overlap.
 * @param {Array<{id: string, newest: number|null, oldest: number|null}>} clocks
 * @param {Record<string, number>} offsets
 */
export function newestCommon(clocks, offsets = {}) {
  if (!clocks.length || clocks.some((c) => c.newest == null)) return null;
  const shift = (c) => (offsets[c.id] ?? 0) * 1000;
  const newest = Math.min(...clocks.map((c) => c.newest + shift(c)));
  const oldest = Math.max(...clocks.map((c) => (c.oldest ?? -Infinity) + shift(c)));
  return newest >= oldest ? newest : null;
}

/**
 * The moment (ms) the view plays: the newest common one, or `delay` seconds behind live
 * (`now`) if that is older; never older than the oldest moment every player still has.
 */
export function viewTarget(clocks, offsets, delay, now) {
  const newest = newestCommon(clocks, offsets);
  if (newest == null) return null;
  if (!delay) return newest;
  const oldest = Math.max(...clocks.map((c) => (c.oldest ?? -Infinity) + (offsets[c.id] ?? 0) * 1000));
  return Math.max(Math.min(newest, now - delay * 1000), oldest);
}

/**
 * How to correct a player that is `error` seconds ahead (+) or behind (-) of where it should
 * be: a seek by -error when far off, else a playback rate nudging it back. `buffered`: whether
 * the player has the media it would seek to.
 * @returns {{seek: number|null, rate: number}}
 */
export function correction(error, buffered = false) {
  if (!Number.isFinite(error)) return { seek: null, rate: 1 };
  if (Math.abs(error) > SEEK_ABOVE) return { seek: -error + (buffered ? 0 : SEEK_LEAD), rate: 1 };
  if (Math.abs(error) <= DEADBAND) return { seek: null, rate: 1 };
  const nudge = Math.max(-MAX_NUDGE, Math.min(MAX_NUDGE, -GAIN * error));
  return { seek: null, rate: Math.round((1 + nudge) * 1000) / 1000 };
}

/** When the players' median error passes this many seconds, the view's moment moves to them. */
export const SLIP_ABOVE = 0.5;

/**
 * How far (seconds) the view's moment should move to follow its players: their median error
 * when it is beyond SLIP_ABOVE (all of them stalled together, as on a machine too busy to play
 * in real time: chasing a moment none can keep up with would make every one seek), else 0. One
 * player off alone leaves the median be: it is corrected toward the others.
 */
export function slip(errors) {
  const known = errors.filter(Number.isFinite).sort((a, b) => a - b);
  if (!known.length) return 0;
  const middle = known.length % 2 ? known[(known.length - 1) / 2]
    : (known[known.length / 2 - 1] + known[known.length / 2]) / 2;
  return Math.abs(middle) > SLIP_ABOVE ? middle : 0;
}

/** How far (seconds) a player showing `position` is from the view's moment `target`. */
export function errorOf(position, target, offset = 0) {
  if (position == null || target == null) return NaN;
  return (position - (target - offset * 1000)) / 1000;
}

/** The spread (seconds) of the players' positions once each offset is taken out. */
export function spread(clocks, offsets = {}) {
  const at = clocks.filter((c) => c.position != null).map((c) => c.position + (offsets[c.id] ?? 0) * 1000);
  return at.length ? (Math.max(...at) - Math.min(...at)) / 1000 : 0;
}

function number(text, fallback = 0) {
  const value = Number.parseFloat(text);
  return Number.isFinite(value) ? value : fallback;
}

/** Offsets from the address (`a:1.5,b:-2`): seconds by stream id, within ±120 s. */
export function parseOffsets(text) {
  const offsets = {};
  for (const pair of (text ?? "").split(",")) {
    const at = pair.lastIndexOf(":");
    if (at <= 0) continue;
    const value = number(pair.slice(at + 1), NaN);
    if (Number.isFinite(value) && value !== 0) {
      offsets[decodeURIComponent(pair.slice(0, at))] = Math.max(-120, Math.min(120, value));
    }
  }
  return offsets;
}

/** The address form of offsets, only of the streams shown, zero ones left out. */
export function formatOffsets(offsets, ids) {
  return ids
    .filter((id) => offsets[id])
    .map((id) => `${encodeURIComponent(id)}:${Math.round(offsets[id] * 10) / 10}`)
    .join(",");
}

/** A multi-view's options from the address's query parameters. */
export function parseOptions(params) {
  const layout = params.get("layout");
  return {
    sync: params.get("sync") === "1",
    layout: LAYOUTS.includes(layout) ? layout : "grid",
    delay: Math.max(0, Math.min(600, number(params.get("delay")))),
    offsets: parseOffsets(params.get("offset")),
    audio: params.get("audio") ?? "",
  };
}

/** The query parameters of a view's options (defaults left out), for the streams `ids`. */
export function optionParams(options = {}, ids = []) {
  const params = [];
  if (options.sync) params.push("sync=1");
  if (options.layout && options.layout !== "grid") params.push(`layout=${options.layout}`);
  if (options.delay) params.push(`delay=${options.delay}`);
  const offsets = formatOffsets(options.offsets ?? {}, ids);
  if (offsets) params.push(`offset=${offsets}`);
  if (options.audio && ids.includes(options.audio)) params.push(`audio=${encodeURIComponent(options.audio)}`);
  return params;
}

/**
 * Where each player goes: grid (two columns from two players on), or focus (the large one
 * on the left, the others stacked on the right). Returns a CSS grid placement per player.
 */
export function placements(count, layout, large = 0) {
  if (layout !== "focus" || count < 2) return Array.from({ length: count }, () => "");
  let row = 0;
  return Array.from({ length: count }, (_, i) => {
    if (i === large) return `grid-column: 1; grid-row: 1 / span ${Math.max(count - 1, 1)};`;
    row += 1;
    return `grid-column: 2; grid-row: ${row};`;
  });
}
