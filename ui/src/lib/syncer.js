// The multi-view's conductor: reads each player's wall clock from hls.js, aligns them all on
// Sync (seek each to the view's moment, wait until all can play there, start them together),
// then holds them in step by nudging playback rates (lib/sync.js decides by how much).

import { correction, errorOf, slip, spread, viewTarget } from "./sync.js";

const TICK_MS = 200;
/** Give up waiting for every player to be ready at its new position after this long. */
const ALIGN_TIMEOUT_MS = 10_000;

/** Whether `video` has the media at `time` (s) buffered. */
function buffered(video, time) {
  const ranges = video.buffered;
  for (let i = 0; i < ranges.length; i += 1) {
    if (ranges.start(i) <= time && time < ranges.end(i) - 0.5) return true;
  }
  return false;
}

/** A player's clock snapshot (ms since the epoch), from hls.js and its <video>. */
export function clockOf(id, hls, video) {
  const empty = { id, position: null, newest: null, oldest: null };
  if (!hls || !video) return empty;
  const details = hls.latestLevelDetails ?? hls.levels?.[hls.currentLevel]?.details;
  const fragments = details?.fragments ?? [];
  const last = fragments[fragments.length - 1];
  const first = fragments[0];
  const position = hls.playingDate ? hls.playingDate.getTime() : null;
  if (!last || last.programDateTime == null || !Number.isFinite(details.edge)) {
    return { ...empty, position };
  }
  const edge = last.programDateTime + last.duration * 1000;
  const sync = Number.isFinite(hls.liveSyncPosition) ? hls.liveSyncPosition : details.edge - 3 * details.targetduration;
  // The oldest moment is also bounded by what the <video> can seek to (its timeline may start
  // later than the playlist's window, after a restart of the player): a second of margin.
  let oldest = first.programDateTime ?? null;
  if (position != null && video.seekable.length) {
    const seekable = position + (video.seekable.start(0) + 1 - video.currentTime) * 1000;
    oldest = oldest == null ? seekable : Math.max(oldest, seekable);
  }
  return { id, position, newest: edge - Math.max(0, details.edge - sync) * 1000, oldest };
}

/**
 * The conductor of one view. `players` are registered by the players themselves
 * ({video, hls} by stream id); `onstate` hears {phase, behind, spread} a few times a second.
 */
export function createSync(onstate = () => {}) {
  const players = new Map();
  let options = { offsets: {}, delay: 0 };
  let phase = "off"; // off | aligning | holding
  let target = null; // the view's moment (ms) at `since` (performance.now())
  let since = 0;
  let alignedAt = 0;
  let timer = 0;

  const now = () => (phase === "holding" ? target + (performance.now() - since) : target);
  const clocks = () => [...players].map(([id, p]) => clockOf(id, p.hls, p.video));

  function setRates(rate) {
    for (const { video } of players.values()) if (video) video.playbackRate = rate;
  }

  function align() {
    const snapshot = clocks();
    const moment = viewTarget(snapshot, options.offsets, options.delay, Date.now());
    if (moment == null) return false; // not every player knows its time yet: try next tick
    const errors = snapshot.map((clock) => errorOf(clock.position, moment, options.offsets[clock.id]));
    if (!errors.every(Number.isFinite)) return false;
    snapshot.forEach((clock, index) => {
      const { video } = players.get(clock.id);
      video.pause();
      video.playbackRate = 1;
      video.currentTime = Math.max(0, video.currentTime - errors[index]);
    });
    target = moment;
    phase = "aligning";
    alignedAt = performance.now();
    return true;
  }

  function ready() {
    return [...players.values()].every(({ video }) => !video.seeking && video.readyState >= 3);
  }

  function start() {
    for (const { video } of players.values()) video.play().catch(() => {});
    since = performance.now();
    phase = "holding";
  }

  function hold() {
    const snapshot = clocks();
    const errorsOf = (moment) => snapshot.map((c) => errorOf(c.position, moment, options.offsets[c.id]));
    // All behind (or ahead) together: the view's moment follows them instead of every one seeking.
    const moved = slip(errorsOf(now()));
    if (moved) since -= moved * 1000;
    const errors = errorsOf(now());
    for (const [index, clock] of snapshot.entries()) {
      const { video } = players.get(clock.id);
      if (video.seeking || video.readyState < 3) continue; // loading: catches up by rate after
      const error = errors[index];
      const fix = correction(error, buffered(video, video.currentTime - error));
      if (fix.seek != null) {
        video.currentTime += fix.seek;
        // how often holding took a seek, and why (tests read it)
        video.syncSeeks = (video.syncSeeks ?? 0) + 1;
        video.syncLog = [...(video.syncLog ?? []).slice(-9), { at: Date.now(), error, rate: video.playbackRate, frag: clock.position }];
      }
      if (video.playbackRate !== fix.rate) video.playbackRate = fix.rate;
      if (video.paused) video.play().catch(() => {});
    }
  }

  function tick() {
    if (phase === "off") return;
    if (target == null) {
      align();
    } else if (phase === "aligning") {
      if (ready() || performance.now() - alignedAt > ALIGN_TIMEOUT_MS) start();
    } else {
      hold();
    }
    const moment = phase === "off" || target == null ? null : now();
    onstate({
      phase: target == null ? "waiting" : phase,
      behind: moment == null ? null : (Date.now() - moment) / 1000,
      spread: spread(clocks(), options.offsets),
    });
  }

  return {
    register(id, handle) {
      if (handle) players.set(id, handle);
      else players.delete(id);
      if (phase !== "off") target = null; // a new member: align everyone again
    },
    /** Turn sync on (or re-align with new options). */
    sync(next) {
      options = { offsets: {}, delay: 0, ...next };
      phase = "aligning";
      target = null;
      clearInterval(timer);
      timer = setInterval(tick, TICK_MS);
      tick();
    },
    /** New offsets while holding: the players move to them (by rate, or a seek when far). */
    setOffsets(offsets) {
      options = { ...options, offsets };
    },
    stop() {
      clearInterval(timer);
      phase = "off";
      target = null;
      setRates(1);
      for (const { video } of players.values()) if (video.paused) video.play().catch(() => {});
      onstate({ phase: "off", behind: null, spread: spread(clocks(), options.offsets) });
    },
    destroy() {
      clearInterval(timer);
      players.clear();
    },
  };
}
