import assert from "node:assert/strict";
import { test } from "node:test";
import { apply, emptyState, healthOf, liveSessions, nextSession, playable, streamsOf } from "./state.js";

const session = (key, start, phase = "scheduled", revision = 1) => ({
  session: { key, start, name: key, kind: "race", event: "Monaco", season: 2026, round: 1 },
  phase, since: start, revision,
});
const stream = (id, revision, health = "ok") => ({
  id, session: "2026.monaco.race", source: "demo", title: id, health, revision,
  qualities: [], playback_url: `http://relay/${id}`, updated_at: "2026-05-24T13:00:00Z",
});

test("a snapshot replaces everything", () => {
  let state = apply(emptyState(), { type: "stream", stream: stream("old", 3) });
  state = apply(state, { type: "snapshot", sessions: [session("2026.monaco.race", "2026-05-24T13:00:00Z")],
    streams: [stream("a", 5)], revision: 7 });
  assert.deepEqual([...state.streams.keys()], ["2026.monaco.race.a"]);
  assert.equal(state.revision, 7);
});

test("changes apply in revision order; stale and repeated ones are ignored", () => {
  let state = apply(emptyState(), { type: "stream", stream: stream("a", 5, "ok") });
  const same = apply(state, { type: "stream", stream: stream("a", 5, "dead") });
  assert.equal(same, state);
  state = apply(state, { type: "stream", stream: stream("a", 4, "dead") });
  assert.equal(state.streams.get("2026.monaco.race.a").health, "ok");
  state = apply(state, { type: "stream", stream: stream("a", 6, "degraded") });
  assert.equal(state.streams.get("2026.monaco.race.a").health, "degraded");
});

test("a removal is a tombstone: an older update cannot bring the stream back", () => {
  let state = apply(emptyState(), { type: "stream", stream: stream("a", 5) });
  state = apply(state, { type: "stream_removed", session: "2026.monaco.race", id: "a", revision: 8 });
  assert.equal(state.streams.size, 0);
  state = apply(state, { type: "stream", stream: stream("a", 7) });
  assert.equal(state.streams.size, 0);
  state = apply(state, { type: "stream", stream: stream("a", 9) });
  assert.equal(state.streams.size, 1);
});

test("a stream being re-resolved has no URL, is not playable, and can be taken as gone", () => {
  const lost = { ...stream("a", 4, "resolving"), playback_url: "" };
  let state = apply(emptyState(), { type: "snapshot", revision: 4, streams: [lost], sessions: [] });
  const view = state.streams.get("2026.monaco.race.a");
  assert.equal(healthOf(view), "reresolving");
  assert.equal(playable(view), false);
  assert.equal(healthOf(stream("b", 1, "resolving")), "resolving");
  assert.equal(playable(stream("b", 1, "ok")), true);
  // not re-resolved in time: removed at the revision it was shown with
  state = apply(state, { type: "stream_removed", session: "2026.monaco.race", id: "a", revision: 4 });
  assert.equal(state.streams.size, 0);
  assert.equal(apply(state, { type: "stream_removed", session: "2026.monaco.race", id: "a", revision: 4 }), state);
  // a removal below the current view's revision is stale
  state = apply(state, { type: "stream", stream: stream("a", 5) });
  assert.equal(apply(state, { type: "stream_removed", session: "2026.monaco.race", id: "a", revision: 4 }), state);
  // re-resolved: the real record replaces it
  state = apply(state, { type: "stream", stream: stream("a", 6, "ok") });
  assert.equal(playable(state.streams.get("2026.monaco.race.a")), true);
});

test("session phases, live now and the next session", () => {
  const now = Date.parse("2026-05-24T12:00:00Z");
  let state = apply(emptyState(), { type: "snapshot", revision: 2, streams: [stream("b", 1, "dead"), stream("a", 2)],
    sessions: [session("2026.monaco.race", "2026-05-24T13:00:00Z"), session("2026.monaco.qualifying", "2026-05-23T14:00:00Z", "ended")] });
  assert.equal(nextSession(state, now).session.key, "2026.monaco.race");
  state = apply(state, { type: "session", status: session("2026.monaco.race", "2026-05-24T13:00:00Z", "live", 3) });
  assert.deepEqual(liveSessions(state).map((s) => s.session.key), ["2026.monaco.race"]);
  assert.deepEqual(streamsOf(state, "2026.monaco.race").map((v) => v.id), ["a", "b"]);
  assert.equal(apply(state, { type: "heartbeat", at: "x" }), state);
});
