import assert from "node:assert/strict";
import { test } from "node:test";
import { AUTO, AUTO_TITLE, ago, autoFirst, channelView, clockTime, onAirText } from "./channel.js";
import { apply, emptyState } from "./state.js";

const KEY = "2026.monaco.race";
const URL = "http://relay/c/2026.monaco.race/k1.sig/master.m3u8";
const status = (fields = {}) => ({
  session: { key: KEY, start: "2026-06-07T13:00:00Z", name: "Race", kind: "race", event: "Monaco", season: 2026, round: 8 },
  phase: "live", since: "2026-06-07T13:00:00Z", revision: 3,
  channel_url: URL, on_air: null, switched_at: null, switch_reason: null, ...fields,
});
const stream = (id, health = "ok", source = `Source ${id}`) => ({
  id, session: KEY, source, title: id, health, revision: 1, qualities: [],
  playback_url: `http://relay/s/${id}`, updated_at: "2026-06-07T13:00:00Z",
});

test("no channel URL, no channel: the session has no stream yet", () => {
  assert.equal(channelView(status({ channel_url: null }), []), null);
  assert.equal(onAirText(status({ channel_url: null }), []), "");
  assert.equal(autoFirst(status({ channel_url: null, on_air: "a" })), false);
});

test("the channel plays its URL, under the Auto title and the source on air", () => {
  const view = channelView(status({ on_air: "b" }), [stream("a"), stream("b")]);
  assert.equal(view.id, AUTO);
  assert.equal(view.title, AUTO_TITLE);
  assert.equal(view.playback_url, URL);
  assert.equal(view.source, "Source b");
  assert.equal(view.health, "ok");
  assert.doesNotMatch(AUTO, /^[a-z0-9][a-z0-9_-]{0,63}$/); // never a stream id (shared/subjects.py TOKEN)
});

test("the channel is offline when no stream is playable, resolving while one resolves", () => {
  assert.equal(channelView(status(), [stream("a", "dead")]).health, "dead");
  assert.equal(channelView(status(), [stream("a", "dead"), stream("b", "resolving")]).health, "resolving");
});

test("Auto is picked by itself once the relay has a stream on air", () => {
  assert.equal(autoFirst(status()), false);
  assert.equal(autoFirst(status({ on_air: "a" })), true);
});

test("what is on air, since when and why, in words", () => {
  const at = "2026-06-07T13:05:00Z";
  const now = Date.parse(at) + 125_000;
  assert.equal(onAirText(status(), []), "Plays the best source and switches when it fails.");
  assert.equal(onAirText(status({ on_air: "a", switched_at: at, switch_reason: "start" }), [stream("a")], now),
    `On air: Source a since ${clockTime(at)} (2 min ago).`);
  assert.equal(onAirText(status({ on_air: "b", switched_at: at, switch_reason: "stalled" }), [stream("b")], now),
    `On air: Source b · switched at ${clockTime(at)} (2 min ago): the previous source stalled.`);
  assert.equal(onAirText(status({ on_air: "gone", switched_at: at, switch_reason: "dead" }), [], now),
    `On air: gone · switched at ${clockTime(at)} (2 min ago): the previous source died.`);
  assert.equal(onAirText(status({ on_air: null, switched_at: at, switch_reason: "removed" }), [], now),
    `Nothing on air since ${clockTime(at)} (2 min ago).`);
});

test("ago counts seconds, minutes, then hours", () => {
  const at = "2026-06-07T13:00:00Z";
  assert.equal(ago(at, Date.parse(at) + 9_000), "9 s ago");
  assert.equal(ago(at, Date.parse(at) + 61_000), "1 min ago");
  assert.equal(ago(at, Date.parse(at) + 7_300_000), "2 h ago");
  assert.equal(ago(at, Date.parse(at) - 5_000), "0 s ago"); // a clock a little behind the relay's
});

test("a channel message replaces the session's channel fields, and nothing else", () => {
  let state = apply(emptyState(), { type: "snapshot", sessions: [status({ channel_url: null })], streams: [], revision: 3 });
  const before = state.sessions.get(KEY);
  state = apply(state, { type: "channel", session: KEY, channel_url: URL, on_air: "a",
    switched_at: "2026-06-07T13:05:00Z", switch_reason: "start" });
  const after = state.sessions.get(KEY);
  assert.equal(after.channel_url, URL);
  assert.equal(after.on_air, "a");
  assert.equal(after.switch_reason, "start");
  assert.equal(after.revision, before.revision);
  assert.equal(after.phase, before.phase);
  const same = apply(state, { type: "channel", session: "2026.unknown.race", channel_url: URL });
  assert.equal(same, state); // a session this page does not know (yet): the snapshot brings it
});
