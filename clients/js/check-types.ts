// Compiled, never run: checks wsdrain.d.ts against a use of every export and
// event (scripts/interop runs `tsc --noEmit --strict` on it), and
// scripts/interop checks that the module exports exactly what the
// declarations name.
import {
  NOTICE_TYPE,
  ResumeStreams,
  SUBPROTOCOL,
  WsDrainSocket,
  defaults,
  fullJitter,
  healthUrl,
  honoursHint,
  parseNotice,
  reconnectDelay,
  retryAfterHeaderMs,
  retryAfterMs,
  type CloseDetail,
  type HandoverDetail,
  type Options,
  type Reconnecting,
  type ResumeStep,
  type ResyncDetail,
  type ResyncReason,
  type State,
} from "./wsdrain.js";

const socket = new WsDrainSocket("wss://example.test/ws", { health: true, handoverLinger: 100 });
socket.addEventListener("open", (e) => console.log(e.detail.connection, e.detail.handover));
socket.addEventListener("message", (e) => console.log(e.detail.data, e.detail.connection, e.detail.stream, e.detail.seq));
socket.addEventListener("resumed", (e) => console.log(e.detail.connection, e.detail.stream, e.detail.epoch, e.detail.after));
socket.addEventListener("resync", (e) => {
  const r: ResyncDetail = e.detail;
  const reason: ResyncReason = r.reason;
  console.log(r.connection, r.stream, reason, r.epoch, r.after);
});
socket.addEventListener("resumedeclined", (e) => console.log(e.detail.connection));
const resumable = new WsDrainSocket("wss://example.test/feed", { resume: true, protocols: ["chat.v2"] });
const streams = new ResumeStreams();
const step: ResumeStep = streams.onFrame(1, "m ticker 1\n{}");
if (step !== null && step.type === "message") console.log(step.stream, step.seq, step.data);
const point: string = streams.point();
const subprotocol: "wsdrain.resume.v1" = SUBPROTOCOL;
console.log(resumable, point, subprotocol);
socket.addEventListener("close", (e) => {
  const c: CloseDetail = e.detail;
  console.log(c.code, c.reason, c.wasClean, c.hint, c.opened, c.upFor, c.retired);
});
socket.addEventListener("notice", (e) => console.log(e.detail.closeInMs));
socket.addEventListener("handover", (e) => {
  const h: HandoverDetail = e.detail;
  console.log(h.from, h.to, h.closeInMs, h.took, h.overlap);
});
socket.addEventListener("handoverfailed", (e) => console.log(e.detail.connection, e.detail.to, e.detail.code));
socket.addEventListener("probe", (e) => console.log(e.detail.url, e.detail.status, e.detail.ok, e.detail.retryAfter));
socket.addEventListener("reconnecting", (e) => {
  const r: Reconnecting = e.detail;
  console.log(r.delay, r.wait, r.hint, r.attempt);
});
socket.addEventListener("giveup", (e) => console.log(e.detail.code));
socket.addEventListener("status", (e) => console.log(e.detail.state, e.detail.wait, e.detail.retryAt));
const sent: boolean = socket.send("hello");
const text: string = socket.statusText();
const state: State = socket.status.state;
const options: Options = { ...defaults, health: "/healthz" };
const hint: number | null = retryAfterMs("going away; retry-after-ms=1500");
const lead: number | null = parseNotice('{"type":"wsdrain.reconnect","close_in_ms":3000}');
const header: number | null = retryAfterHeaderMs("2");
const type: "wsdrain.reconnect" = NOTICE_TYPE;
const next: Reconnecting | null = reconnectDelay(1001, "retry-after-ms=5", 0, { cap: 1000 }, Math.random);
const url: string = healthUrl("wss://example.test/ws", true);
const hinted: boolean = honoursHint(1013);
console.log(sent, text, state, options, hint, lead, header, type, next, url, hinted, fullJitter(250, 30_000, 2));
socket.close();
