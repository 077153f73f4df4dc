// Node `ws` clients through a real SIGTERM of a wsdrain server.
//
// Opens N sessions to ws://ADDR/ws, checks each one echoes, sends SIGTERM to
// PID, then checks that every session saw Close 1001 with a reason matching
// /retry-after-ms=(\d+)/, with `wasClean` true (Close frames both ways) and
// no `error` event. Prints one JSON line with the counts.
"use strict";

const path = require("path");
const { parseArgs } = require("util");

const nodeDir = process.env.INTEROP_NODE_DIR;
const WebSocket = require(path.join(nodeDir, "node_modules", "ws"));
const wsVersion = require(path.join(nodeDir, "node_modules", "ws", "package.json")).version;

const HINT = /retry-after-ms=(\d+)/; // the documented regex

const { values: a } = parseArgs({
  options: {
    addr: { type: "string" },
    pid: { type: "string" },
    sessions: { type: "string", default: "300" },
    "hint-min": { type: "string" },
    "hint-max": { type: "string" },
  },
});
const n = Number(a.sessions);
const hintMin = Number(a["hint-min"]);
const hintMax = Number(a["hint-max"]);

function session(uri, onOpen) {
  return new Promise((resolve) => {
    const ws = new WebSocket(uri);
    const r = { errors: [], echoed: false };
    ws.on("open", () => ws.send("ping"));
    ws.on("message", (data) => {
      if (!r.echoed && data.toString() === "ping") {
        r.echoed = true;
        onOpen();
      }
    });
    ws.on("error", (e) => r.errors.push(String(e)));
    // The WHATWG-style CloseEvent carries `wasClean`; the `close` event carries (code, Buffer).
    ws.addEventListener("close", (ev) => {
      r.wasClean = ev.wasClean;
    });
    ws.on("close", (code, reason) => {
      r.code = code;
      r.reasonIsBuffer = Buffer.isBuffer(reason);
      r.reason = reason.toString();
      const m = HINT.exec(r.reason);
      r.hint = m && Number.isSafeInteger(Number(m[1])) ? Number(m[1]) : null;
      r.at = process.hrtime.bigint();
      resolve(r);
    });
  });
}

async function main() {
  const uri = `ws://${a.addr}/ws`;
  let opened = 0;
  let allOpen;
  const ready = new Promise((res) => (allOpen = res));
  const sessions = [];
  for (let i = 0; i < n; i++) {
    sessions.push(session(uri, () => ++opened === n && allOpen()));
  }
  const timer = setTimeout(() => {
    console.log(JSON.stringify({ client: "node-ws", version: wsVersion, error: `only ${opened} of ${n} opened` }));
    process.exit(1);
  }, 30000);
  await ready;
  const t0 = process.hrtime.bigint();
  process.kill(Number(a.pid), "SIGTERM"); // a real signal to the real server process
  const results = await Promise.all(sessions);
  clearTimeout(timer);
  const good = results.filter(
    (r) =>
      r.code === 1001 && r.reasonIsBuffer && r.hint !== null &&
      r.hint >= hintMin && r.hint <= hintMax &&
      r.wasClean === true && r.errors.length === 0,
  );
  const bad = results.filter((r) => !good.includes(r)).slice(0, 5);
  const last = results.reduce((m, r) => (r.at > m ? r.at : m), t0);
  console.log(
    JSON.stringify({
      client: "node-ws",
      version: wsVersion,
      node: process.version,
      sessions: n,
      echoed: results.filter((r) => r.echoed).length,
      code_1001_hint_clean: good.length,
      bad: bad.map((r) => ({ ...r, at: undefined })),
      codes: results.reduce((m, r) => ((m[r.code] = (m[r.code] || 0) + 1), m), {}),
      distinct_hints: new Set(results.map((r) => r.hint)).size,
      last_close_s: Number(last - t0) / 1e9,
    }),
  );
  process.exit(good.length === n ? 0 : 1);
}

main();
