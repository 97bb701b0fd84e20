import assert from "node:assert/strict";
import { test } from "node:test";
import { adminApi, editPatch, figures, formFor, newSource } from "./admin.js";

const SAVED = {
  id: "site-a", url: "https://a.test/{event}", name: "Site A", extractor: "http", priority: 3,
  user_agent: "", kinds: ["race"], header_names: ["X-Key"], cookie_names: ["sid"],
};

test("an edit form never holds saved secrets, and blank saved values are kept with null", () => {
  const form = formFor(SAVED);
  assert.deepEqual(form.headers, [{ name: "X-Key", value: "", saved: true }]);
  form.headers.push({ name: "X-New", value: "fresh", saved: false });
  const patch = editPatch(form);
  assert.deepEqual(patch.headers, { "X-Key": null, "X-New": "fresh" });
  assert.deepEqual(patch.cookies, { sid: null });
  assert.deepEqual(patch.kinds, ["race"]);
  assert.equal("url" in patch, false); // unchanged: not sent
});

test("a URL shown with its query hidden is never saved back; a changed one is", () => {
  const form = formFor({ ...SAVED, url: "https://a.test/live?***" });
  assert.equal("url" in editPatch(form), false);
  form.url = "https://b.test/live?token=new";
  assert.equal(editPatch(form).url, "https://b.test/live?token=new");
});

test("a new value replaces a saved one and a removed row drops it", () => {
  const form = formFor(SAVED);
  form.headers[0].value = "changed";
  form.cookies = [];
  const patch = editPatch(form);
  assert.deepEqual(patch.headers, { "X-Key": "changed" });
  assert.deepEqual(patch.cookies, {});
});

test("a new source sends what the form says, empty rows left out", () => {
  const form = formFor();
  Object.assign(form, { id: " keyed ", url: "http://demo/pages/keyed", priority: "40" });
  form.headers = [{ name: "X-Demo-Key", value: "alpha", saved: false }, { name: " ", value: "", saved: false }];
  assert.deepEqual(newSource(form), {
    id: "keyed", url: "http://demo/pages/keyed", name: "", extractor: "auto", priority: 40,
    user_agent: "", kinds: [], headers: { "X-Demo-Key": "alpha" }, cookies: {},
  });
});

test("the API client sends the admin token and reports refusals in words", async () => {
  const calls = [];
  const fake = async (url, init) => {
    calls.push([url, init]);
    return { ok: false, status: 409, statusText: "Conflict", text: async () => '{"detail":"a source \'x\' exists already"}' };
  };
  await assert.rejects(adminApi("tok-123", fake).add({ id: "x" }), /exists already/);
  assert.equal(calls[0][0], "/api/admin/sources");
  assert.equal(calls[0][1].headers.Authorization, "Bearer tok-123");
  const refused = async () => ({ ok: false, status: 401, statusText: "", text: async () => "" });
  await assert.rejects(adminApi("bad", refused).list(), /admin token was refused/);
});

test("figures read well", () => {
  assert.deepEqual(figures({ success_rate: 0.5, successes: 1, attempts: 2, last_resolve_ms: 1840, last_extractor: "http", last_error: "" }),
    { rate: "50% (1/2)", resolve: "1.8 s", extractor: "http", error: "" });
  assert.equal(figures({ success_rate: null, successes: 0, attempts: 0, last_resolve_ms: 120, last_extractor: "", last_error: "x" }).resolve, "120 ms");
});
