// The feed's state, as pure functions over plain objects: what the UI knows of sessions and
// streams, and how each message of the gateway's /ws feed (shared/feed.py) changes it.
//
// Every change carries a KV revision. A message applies only when its revision is above the
// one last applied for the same key (removals included, as tombstones), so a late or repeated
// message can never take the UI backwards. A removal also applies at the revision of the view it
// removes: the gateway takes a stream it showed as being re-resolved as gone that way, when it
// does not come back in time (no KV change happened in between). A snapshot replaces everything.

/** @typedef {{sessions: Map<string, any>, streams: Map<string, any>, removed: Map<string, number>, revision: number}} FeedState */

/** @returns {FeedState} */
export function emptyState() {
  return { sessions: new Map(), streams: new Map(), removed: new Map(), revision: 0 };
}

/** The key of a stream: unique across sessions. */
export function streamKey(session, id) {
  return `${session}.${id}`;
}

/**
 * Apply one feed message; returns the same state object when nothing changed, a new one
 * otherwise (so a reactive store can tell).
 * @param {FeedState} state
 * @param {any} message
 * @returns {FeedState}
 */
export function apply(state, message) {
  switch (message?.type) {
    case "snapshot": {
      const next = emptyState();
      for (const status of message.sessions ?? []) next.sessions.set(status.session.key, status);
      for (const view of message.streams ?? []) next.streams.set(streamKey(view.session, view.id), view);
      next.revision = message.revision ?? 0;
      return next;
    }
    case "stream": {
      const view = message.stream;
      const key = streamKey(view.session, view.id);
      if (!newer(state, key, view.revision, state.streams)) return state;
      const streams = new Map(state.streams).set(key, view);
      const removed = new Map(state.removed);
      removed.delete(key);
      return { ...state, streams, removed, revision: Math.max(state.revision, view.revision) };
    }
    case "stream_removed": {
      const key = streamKey(message.session, message.id);
      const current = state.streams.get(key);
      const tombstone = state.removed.get(key);
      if (current && current.revision > message.revision) return state; // ties: the removal wins
      if (tombstone !== undefined && tombstone >= message.revision) return state;
      const streams = new Map(state.streams);
      streams.delete(key);
      const removed = new Map(state.removed).set(key, message.revision);
      return { ...state, streams, removed, revision: Math.max(state.revision, message.revision) };
    }
    case "session": {
      const status = message.status;
      const current = state.sessions.get(status.session.key);
      if (current && current.revision >= status.revision) return state;
      const sessions = new Map(state.sessions).set(status.session.key, status);
      return { ...state, sessions, revision: Math.max(state.revision, status.revision) };
    }
    case "channel": {
      // A session's channel changed (it got or lost its URL, or switched streams): not a KV
      // change, so no revision; the feed sends them in order, the last one is the truth.
      const current = state.sessions.get(message.session);
      if (!current) return state;
      const status = {
        ...current,
        channel_url: message.channel_url ?? null,
        on_air: message.on_air ?? null,
        switched_at: message.switched_at ?? null,
        switch_reason: message.switch_reason ?? null,
      };
      return { ...state, sessions: new Map(state.sessions).set(message.session, status) };
    }
    default:
      return state; // heartbeats, and message types this UI does not know yet
  }
}

function newer(state, key, revision, map) {
  const current = map.get(key);
  if (current && current.revision >= revision) return false;
  const tombstone = state.removed.get(key);
  return tombstone === undefined || tombstone < revision;
}

/** Sessions by start time (those without a time last), as a list. */
export function sessionsByStart(state) {
  return [...state.sessions.values()].sort((a, b) => {
    const x = a.session.start ? Date.parse(a.session.start) : Infinity;
    const y = b.session.start ? Date.parse(b.session.start) : Infinity;
    return x - y || a.session.key.localeCompare(b.session.key);
  });
}

/** The streams of one session, healthiest first then by title. */
export function streamsOf(state, sessionKey) {
  const rank = { ok: 0, degraded: 1, resolving: 2, dead: 3 };
  return [...state.streams.values()]
    .filter((v) => v.session === sessionKey)
    .sort((a, b) => (rank[a.health] ?? 9) - (rank[b.health] ?? 9) || a.title.localeCompare(b.title));
}

/**
 * What to call a stream's state: its health, or "reresolving" when the gateway lost track of
 * it (its registry was lost behind the system's back) and shows it without a playback URL.
 */
export function healthOf(view) {
  return view.health === "resolving" && !view.playback_url ? "reresolving" : view.health;
}

/** Whether a stream can be played now. */
export function playable(view) {
  return Boolean(view.playback_url) && (view.health === "ok" || view.health === "degraded");
}

/** Sessions live now. */
export function liveSessions(state) {
  return sessionsByStart(state).filter((s) => s.phase === "live");
}

/** The next session that has not started yet (upcoming, scheduled or rescheduled with a start). */
export function nextSession(state, now = Date.now()) {
  return sessionsByStart(state).find(
    (s) => s.session.start && Date.parse(s.session.start) > now && s.phase !== "cancelled",
  );
}
