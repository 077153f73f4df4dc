// The client's rules of wsdrain.resume.v1 in wsdrain.js against the table
// wsdrain-client is tested with too (../resume-cases.json), and what only a
// browser client meets (binary frames as ArrayBuffers). Run with
// `node --test clients/js/` (scripts/interop does).
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { test } from "node:test";

import { ResumeStreams } from "./wsdrain.js";

const table = JSON.parse(readFileSync(new URL("../resume-cases.json", import.meta.url), "utf8"));

/** What a client saw, in the table's notation. */
function notation(r) {
  if (r === null) return null;
  switch (r.type) {
    case "message":
      return ["message", r.stream, r.seq, r.data];
    case "plain":
      return ["plain", r.data];
    case "resumed":
      return ["resumed", r.stream, r.epoch, r.after];
    case "resync":
      return ["resync", r.stream, r.reason, r.epoch, r.after];
    case "notice":
      return ["notice", r.closeInMs];
    case "error":
      assert.equal(typeof r.error, "string");
      return ["error"];
    default:
      throw new Error(`unexpected ${JSON.stringify(r)}`);
  }
}

test("the table has its cases", () => assert.ok(table.cases.length >= 20));

for (const { name, steps, point } of table.cases) {
  test(name, () => {
    const streams = new ResumeStreams();
    steps.forEach(([connection, frame, expected], i) => {
      assert.deepEqual(notation(streams.onFrame(connection, frame)), expected, `step ${i} (${JSON.stringify(frame)})`);
    });
    assert.equal(streams.point(), point);
  });
}

const bytes = (s) => new TextEncoder().encode(s);
const buffer = (...parts) => {
  const all = parts.flatMap((p) => [...(typeof p === "string" ? bytes(p) : p)]);
  return new Uint8Array(all).buffer;
};

test("binary frames: ArrayBuffer payloads, controls in UTF-8", () => {
  const streams = new ResumeStreams();
  const follow = 'c\n{"type":"wsdrain.follow","stream":"b","epoch":"E","after":0}';
  assert.equal(streams.onFrame(1, buffer(follow)), null);
  const r = streams.onFrame(1, buffer("m b 1\n", [0, 0xff, 10, 7]));
  assert.equal(r.type, "message");
  assert.ok(r.data instanceof ArrayBuffer);
  assert.deepEqual([...new Uint8Array(r.data)], [0, 0xff, 10, 7]);
  const p = streams.onFrame(1, buffer("p\n", [1]));
  assert.deepEqual([...new Uint8Array(p.data)], [1]);
  assert.equal(streams.onFrame(1, buffer("c\n", [0xff])).type, "error");
  assert.equal(streams.onFrame(1, buffer("m b 2")).type, "error");
  assert.equal(streams.point(), "b@E.1");
});

test("seqs beyond 2^53 are refused rather than rounded", () => {
  const streams = new ResumeStreams();
  streams.onFrame(1, 'c\n{"type":"wsdrain.follow","stream":"t","epoch":"E","after":0}');
  assert.equal(streams.onFrame(1, "m t 9007199254740993\nx").type, "error");
  assert.equal(streams.onFrame(1, 'c\n{"type":"wsdrain.resync","stream":"t","epoch":"E","after":9007199254740993,"reason":"expired"}').type, "error");
});
