import assert from "node:assert/strict";
import { test } from "node:test";
import {
  DEADBAND, MAX_NUDGE, SEEK_ABOVE, SEEK_LEAD, correction, errorOf, formatOffsets, newestCommon,
  optionParams, parseOffsets, parseOptions, placements, slip, spread, viewTarget,
} from "./sync.js";

const NOW = Date.parse("2026-05-24T13:00:00Z");
// Three feeds of one moment, 0, 6 and 12 s behind live, each with a minute of window and
// hls.js's live sync position three 2 s segments behind its edge.
const feed = (id, behind) => ({ id, position: NOW - (behind + 7) * 1000, newest: NOW - (behind + 6) * 1000, oldest: NOW - (behind + 60) * 1000 });
const FEEDS = [feed("a", 0), feed("b", 6), feed("c", 12)];

test("the view plays the newest moment every feed can show", () => {
  assert.equal(newestCommon(FEEDS), NOW - 18_000);
  assert.equal(viewTarget(FEEDS, {}, 0, NOW), NOW - 18_000);
});

test("an offset holds a feed back: the common moment moves with it", () => {
  // c shown 2 s later than the others (+2): the others can be 2 s closer to live
  assert.equal(newestCommon(FEEDS, { c: 2 }), NOW - 16_000);
  // a brought 3 s forward (-3): a limits the view now
  assert.equal(newestCommon([feed("a", 0), feed("b", 6)], { a: -3 }), NOW - 12_000);
});

test("a player without a clock, or windows that do not overlap, give no moment", () => {
  assert.equal(newestCommon([...FEEDS, { id: "d", position: null, newest: null, oldest: null }]), null);
  assert.equal(newestCommon([feed("a", 0), { id: "z", position: 0, newest: NOW - 200_000, oldest: NOW - 260_000 }]), null);
  assert.equal(newestCommon([]), null);
});

test("delay from live plays further back, but never before what every window still has", () => {
  assert.equal(viewTarget(FEEDS, {}, 30, NOW), NOW - 30_000);
  assert.equal(viewTarget(FEEDS, {}, 5, NOW), NOW - 18_000); // 5 s is closer than all can
  assert.equal(viewTarget(FEEDS, {}, 500, NOW), NOW - 60_000); // a's window ends there
});

test("small errors nudge the rate back, within bounds; large ones seek", () => {
  assert.deepEqual(correction(0), { seek: null, rate: 1 });
  assert.deepEqual(correction(DEADBAND / 2), { seek: null, rate: 1 });
  const ahead = correction(0.1);
  assert.equal(ahead.seek, null);
  assert.ok(ahead.rate < 1 && ahead.rate >= 1 - MAX_NUDGE);
  const behind = correction(-0.1);
  assert.ok(behind.rate > 1 && behind.rate <= 1 + MAX_NUDGE);
  assert.equal(correction(-0.9).rate, 1 + MAX_NUDGE);
  assert.equal(correction(0.9).rate, 1 - MAX_NUDGE);
  assert.deepEqual(correction(SEEK_ABOVE + 1), { seek: -(SEEK_ABOVE + 1) + SEEK_LEAD, rate: 1 });
  assert.deepEqual(correction(-(SEEK_ABOVE + 1), true), { seek: SEEK_ABOVE + 1, rate: 1 });
  assert.deepEqual(correction(NaN), { seek: null, rate: 1 });
});

test("nudging converges: a player just under a seek off is in step within ten seconds", () => {
  for (const start of [SEEK_ABOVE - 0.01, -(SEEK_ABOVE - 0.01), 0.3]) {
    let error = start;
    for (let t = 0; t < 10; t += 0.2) error += (correction(error).rate - 1) * 0.2;
    assert.ok(Math.abs(error) <= DEADBAND, `from ${start}: error ${error}`);
  }
});

test("errors and spread count offsets", () => {
  assert.equal(errorOf(NOW - 1000, NOW), -1);
  assert.equal(errorOf(NOW - 1000, NOW, 1), 0);
  assert.ok(Number.isNaN(errorOf(null, NOW)));
  const clocks = [{ id: "a", position: NOW }, { id: "b", position: NOW - 2000 }, { id: "c", position: null }];
  assert.equal(spread(clocks), 2);
  assert.equal(spread(clocks, { b: 2 }), 0);
});

test("offsets survive the address: parsed, bounded, written back for the shown streams", () => {
  assert.deepEqual(parseOffsets("demo-world:1.5,demo-data:-2,bad,x:nan,y:0,z:900"), { "demo-world": 1.5, "demo-data": -2, z: 120 });
  assert.equal(formatOffsets({ a: 1.25, b: 0, c: -2 }, ["a", "b", "c"]), "a:1.3,c:-2");
  assert.equal(formatOffsets({ a: 1 }, ["b"]), "");
});

test("view options round-trip through query parameters", () => {
  const options = parseOptions(new URLSearchParams("sync=1&layout=focus&delay=20&offset=a:1,b:-0.5&audio=b"));
  assert.deepEqual(options, { sync: true, layout: "focus", delay: 20, offsets: { a: 1, b: -0.5 }, audio: "b" });
  assert.deepEqual(optionParams(options, ["a", "b"]), ["sync=1", "layout=focus", "delay=20", "offset=a:1,b:-0.5", "audio=b"]);
  assert.deepEqual(parseOptions(new URLSearchParams("layout=weird&delay=-4")), { sync: false, layout: "grid", delay: 0, offsets: {}, audio: "" });
  assert.deepEqual(optionParams({ layout: "grid", audio: "gone" }, ["a"]), []);
});

test("focus puts one player large on the left and stacks the others on the right", () => {
  assert.deepEqual(placements(3, "grid"), ["", "", ""]);
  const four = placements(4, "focus", 2);
  assert.equal(four[2], "grid-column: 1; grid-row: 1 / span 3;");
  assert.deepEqual([four[0], four[1], four[3]], ["grid-column: 2; grid-row: 1;", "grid-column: 2; grid-row: 2;", "grid-column: 2; grid-row: 3;"]);
  assert.deepEqual(placements(1, "focus"), [""]);
});

test("the view's moment follows its players when all of them fall behind, not when one does", () => {
  assert.equal(slip([-1.2, -1.0, -1.4]), -1.2); // all stalled together: move the moment
  assert.equal(slip([-3, 0.01, -0.02]), 0); // one stalled: it catches up with the others
  assert.equal(slip([-0.9, -0.7]), -0.8);
  assert.equal(slip([0.2, -0.3]), 0);
  assert.equal(slip([NaN]), 0);
  assert.equal(slip([]), 0);
});
