import assert from "node:assert/strict";
import { test } from "node:test";
import { describeError } from "./playback.js";

test("relay status codes and error kinds read as words", () => {
  assert.match(describeError({ type: "networkError", response: { code: 410 } }), /ended or its link expired/);
  assert.match(describeError({ type: "networkError", response: { code: 0 } }), /Cannot reach the relay/);
  assert.match(describeError({ type: "networkError", response: { code: 500 } }), /answered 500/);
  assert.match(describeError({ type: "mediaError" }), /decoded/);
  assert.match(describeError({ type: "otherError", details: "internalException" }), /internalException/);
});
