import assert from "node:assert/strict";
import { test } from "node:test";
import {
  MEDIA_ERR_DECODE, MEDIA_ERR_NETWORK, MEDIA_ERR_SRC_NOT_SUPPORTED, MEDIA_EVENTS, STALLED,
  afterMediaError, describeError, describeMediaError, onMediaEvent, startOver,
} from "./playback.js";

test("relay status codes and error kinds read as words", () => {
  assert.match(describeError({ type: "networkError", response: { code: 410 } }), /ended or its link expired/);
  assert.match(describeError({ type: "networkError", response: { code: 0 } }), /Cannot reach the relay/);
  assert.match(describeError({ type: "networkError", response: { code: 500 } }), /answered 500/);
  assert.match(describeError({ type: "mediaError" }), /decoded/);
  assert.match(describeError({ type: "otherError", details: "internalException" }), /internalException/);
});

test("every new URL starts over: nothing loaded, the quality menu back on automatic", () => {
  const before = startOver();
  before.chosen = 1;
  before.playing = 1;
  before.levels.push({ index: 1, label: "180p" });
  assert.deepEqual(startOver(), { levels: [], chosen: -1, playing: -1, waiting: true, problem: "" });
});

test("MediaError codes read as words", () => {
  assert.match(describeMediaError({ code: 2 }), /Cannot reach the relay/);
  assert.match(describeMediaError({ code: 3 }), /could not be decoded/);
  assert.match(describeMediaError({ code: 4 }), /cannot be played/);
  assert.match(describeMediaError({ code: 1 }), /stopped/);
  assert.match(describeMediaError({ code: 9, message: "odd" }), /\(odd\)/);
  assert.match(describeMediaError(null), /unknown error/);
});

test("the browser's own player leaves Loading… once pictures come, and says what failed", () => {
  let state = startOver();
  state = onMediaEvent(state, "loadstart");
  assert.deepEqual(state, startOver()); // not one of its events: nothing changes
  state = onMediaEvent(state, "stalled");
  assert.deepEqual([state.waiting, state.problem], [true, STALLED]);
  state = onMediaEvent(state, "playing");
  assert.deepEqual(state, { waiting: false, problem: "" });
  state = onMediaEvent(state, "waiting");
  assert.deepEqual(state, { waiting: true, problem: "" });
  state = onMediaEvent(state, "canplay");
  assert.deepEqual(state, { waiting: false, problem: "" });
  state = onMediaEvent(state, "stalled"); // playing already: a stall is not news
  assert.deepEqual(state, { waiting: false, problem: "" });
  state = onMediaEvent(state, "error", { code: MEDIA_ERR_SRC_NOT_SUPPORTED });
  assert.equal(state.waiting, false);
  assert.match(state.problem, /cannot be played/);
  state = onMediaEvent(onMediaEvent(startOver(), "error", { code: MEDIA_ERR_DECODE }), "loadeddata");
  assert.deepEqual(state, { waiting: false, problem: "" });
  assert.ok(MEDIA_EVENTS.includes("error") && MEDIA_EVENTS.includes("playing"));
});

test("after a MediaError: the newest link if the old one may be refused, else retry or stay", () => {
  assert.equal(afterMediaError({ code: MEDIA_ERR_NETWORK }, "a", "b"), "newest");
  assert.equal(afterMediaError({ code: MEDIA_ERR_SRC_NOT_SUPPORTED }, "a", "b"), "newest");
  assert.equal(afterMediaError({ code: MEDIA_ERR_NETWORK }, "a", "a"), "retry");
  assert.equal(afterMediaError({ code: MEDIA_ERR_NETWORK }, "a", ""), "retry");
  assert.equal(afterMediaError({ code: MEDIA_ERR_SRC_NOT_SUPPORTED }, "a", "a"), "stay");
  assert.equal(afterMediaError({ code: MEDIA_ERR_DECODE }, "a", "b"), "stay");
});
