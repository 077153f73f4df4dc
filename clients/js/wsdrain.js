// wsdrain.js: a reconnecting WebSocket that honours wsdrain close hints and
// hands over to a new connection on the drain notice. ES module, no
// dependencies, no build step; types in wsdrain.d.ts. docs/CLIENTS.md has the
// whole API.
//
// A draining wsdrain server closes each session with code 1001 (or 1012) and a
// reason like "going away; retry-after-ms=2731" (docs/PROTOCOL.md), and an
// upgrade it accepts during Closing under close-1013 with 1013 and the same
// reason. This module waits that long plus a little jitter of its own, then
// reconnects. Other endings back off with full jitter; 1000, 1008 and
// 4000-4999 stop it.
// A browser cannot see the status of a refused upgrade (a 503 with Retry-After
// shows up as 1006), so that case backs off like any other failure.
//
// With the drain notice on (WSDRAIN_NOTICE_LEAD), the server first sends
// {"type":"wsdrain.reconnect","close_in_ms":N}: this module opens a new
// connection to the same URL at once, moves send() to it when it is open,
// closes the old one with 1000 (after `handoverLinger`) and reports a
// "handover" event. The page is never without an open connection. If the new
// connection fails, it stays on the old one and reconnects by its hint. A
// notice on a connection that a handover opened less than `stableAfter` ago
// waits the backoff first (and gives way to the Close's hint), so a server
// that notices every new connection cannot make it hop without pause.
//
//   import { WsDrainSocket } from "./wsdrain.js";
//   const ws = new WsDrainSocket("wss://" + location.host + "/ws");
//   ws.addEventListener("message", (e) => console.log(e.detail.data));
//   ws.addEventListener("status", () => label.textContent = ws.statusText());
//   ws.send("hi"); // false when no connection is open: nothing was sent
//
// With `resume: true` (opt-in) every connection offers the subprotocol
// wsdrain.resume.v1 and carries where the page stopped in each stream in its
// query, so the server replays what it missed: each message of a stream is
// delivered once, in order, across reconnects and handovers ("message" with
// its stream and seq), a stream that goes on reports "resumed", one whose gap
// cannot be filled "resync" (reload the state it feeds). docs/PROTOCOL.md,
// "Resumable sessions"; the rules are the class ResumeStreams.
//
// Events (CustomEvent, data in .detail): "open" {connection, handover},
// "message" {data, connection, stream, seq}, "close" {connection, code,
// reason, wasClean, hint, opened, upFor, retired}, "notice" {connection,
// closeInMs}, "handover" {from, to, closeInMs, took, overlap},
// "handoverfailed" {connection, to, code}, "resumed" {connection, stream,
// epoch, after}, "resync" {connection, stream, reason, epoch, after},
// "resumedeclined" {connection}, "probe" {url, status, ok, retryAfter},
// "reconnecting" {delay, wait, hint, attempt}, "giveup" {code}, "status".

const HINT = /retry-after-ms=(\d+)/;

/** The hint of a Close reason in ms, or null (docs/PROTOCOL.md, "The regex"). */
export function retryAfterMs(reason) {
  const m = HINT.exec(String(reason ?? ""));
  if (!m) return null;
  const ms = Number(m[1]);
  return Number.isSafeInteger(ms) ? ms : null;
}

/** The type of the drain notice (docs/PROTOCOL.md, "The drain notice"). */
export const NOTICE_TYPE = "wsdrain.reconnect";

/**
 * The lead of a drain notice in ms, or null when `data` is not one. Never
 * throws: any key order and spacing, unknown keys ignored.
 */
export function parseNotice(data) {
  if (typeof data !== "string" || !data.includes(NOTICE_TYPE)) return null;
  let v;
  try {
    v = JSON.parse(data);
  } catch {
    return null;
  }
  if (v === null || typeof v !== "object" || v.type !== NOTICE_TYPE) return null;
  const lead = v.close_in_ms;
  return Number.isSafeInteger(lead) && lead >= 0 ? lead : null;
}

/**
 * The codes whose hint is honoured: 1001 Going Away, 1012 Service Restart,
 * 1013 Try Again Later (docs/PROTOCOL.md, "Close codes").
 */
export function honoursHint(code) {
  return code === 1001 || code === 1012 || code === 1013;
}

/** The defaults, the same as the Rust client's. All times in ms. */
export const defaults = Object.freeze({
  base: 250, // first backoff ceiling: a lost connection comes back fast
  cap: 30_000, // longest wait of any kind; hints are clamped to it
  goingAwayBase: 5_000, // backoff base after 1001/1012 without a hint (RFC 6455 §7.2.3)
  stableAfter: 30_000, // a connection up this long resets the failure count
  hintJitter: 50, // least jitter on a hint: h + random(0, max(hintJitter, h/50))
  isTerminal: (code) => code === 1000 || code === 1008 || (code >= 4000 && code <= 4999),
  handover: true, // act on the drain notice (make-before-break)
  handoverLinger: 0, // after the switch, read the old connection this long, then close it with 1000
  health: false, // probe before reconnecting: false, true (the URL's origin + /readyz) or a URL
  healthTimeout: 5_000, // one probe gives up after this long
  protocols: undefined, // WebSocket subprotocols, passed to every connection
  resume: false, // resumable streams: offer wsdrain.resume.v1 with the point in the query
});

/** Full jitter (AWS "Exponential Backoff And Jitter"): random(0, min(cap, base·2^attempt)). */
export function fullJitter(base, cap, attempt, random = Math.random) {
  return random() * Math.min(cap, base * 2 ** attempt);
}

/**
 * What to do after a close: {delay, wait: "hint" | "backoff", hint, attempt},
 * or null for "do not reconnect".
 */
export function reconnectDelay(code, reason, attempt, options = {}, random = Math.random) {
  const o = { ...defaults, ...options };
  const hint = retryAfterMs(reason);
  if (honoursHint(code) && hint !== null) {
    const h = Math.min(hint, o.cap);
    return { delay: h + random() * Math.max(o.hintJitter, h / 50), wait: "hint", hint, attempt };
  }
  if (code === 1001 || code === 1012) {
    const base = Math.max(o.goingAwayBase, o.base);
    return { delay: fullJitter(base, o.cap, attempt, random), wait: "backoff", hint: null, attempt };
  }
  if (o.isTerminal(code)) return null;
  return { delay: fullJitter(o.base, o.cap, attempt, random), wait: "backoff", hint: null, attempt };
}

/**
 * The health URL for a WebSocket URL: `health` itself when it is a string,
 * else the same origin's `/readyz` (ws: → http:, wss: → https:).
 */
export function healthUrl(url, health = true) {
  if (typeof health === "string") return health;
  const u = new URL(url);
  u.protocol = u.protocol === "wss:" ? "https:" : "http:";
  u.pathname = "/readyz";
  u.search = "";
  u.hash = "";
  return u.href;
}

/**
 * The wait a `Retry-After` header asks for in ms (delta-seconds only), or
 * null (docs/PROTOCOL.md, "Rejected upgrades").
 */
export function retryAfterHeaderMs(value) {
  const v = String(value ?? "").trim();
  if (!/^\d+$/.test(v)) return null;
  const ms = Number(v) * 1000;
  return Number.isSafeInteger(ms) ? ms : null;
}

/** The subprotocol of resumable streams (docs/PROTOCOL.md, "Resumable sessions"). */
export const SUBPROTOCOL = "wsdrain.resume.v1";

const QUERY_KEY = "wsdrain-resume";
const MAX_POINT_STREAMS = 64; // what a resume point may name
const MAX_HEADER_LEN = 152; // `m <128-byte stream> <20 digits>\n`
const STREAM = /^[A-Za-z0-9_.:/-]{1,128}$/;
const EPOCH = /^[A-Za-z0-9]{1,32}$/;
const MESSAGE = /^m ([A-Za-z0-9_.:/-]{1,128}) ([0-9]+)$/;
const REASONS = new Set(["expired", "epoch", "unknown", "unavailable"]);
const STREAM_CONTROLS = new Set(["wsdrain.follow", "wsdrain.resumed", "wsdrain.resync"]);

const isSeq = (n) => Number.isSafeInteger(n) && n >= 0;

/** A control's JSON: {type, ...} or a string saying why it cannot be read. */
function readControl(text) {
  let v;
  try {
    v = JSON.parse(text);
  } catch {
    return "control is not JSON";
  }
  if (v === null || typeof v !== "object" || Array.isArray(v)) return "control is not a JSON object";
  if (typeof v.type !== "string") return 'control field "type" missing or malformed';
  if (v.type === NOTICE_TYPE) {
    return isSeq(v.close_in_ms) ? { type: v.type, closeInMs: v.close_in_ms } : 'control field "close_in_ms" missing or malformed';
  }
  if (!STREAM_CONTROLS.has(v.type)) return { type: v.type };
  if (typeof v.stream !== "string" || !STREAM.test(v.stream)) return 'control field "stream" missing or malformed';
  if (typeof v.epoch !== "string" || !EPOCH.test(v.epoch)) return 'control field "epoch" missing or malformed';
  if (!isSeq(v.after)) return 'control field "after" missing or malformed';
  let reason = null;
  if (v.type === "wsdrain.resync") {
    if (typeof v.reason !== "string") return 'control field "reason" missing or malformed';
    reason = REASONS.has(v.reason) ? v.reason : "other";
  }
  return { type: v.type, stream: v.stream, epoch: v.epoch, after: v.after, reason };
}

/**
 * The client's rules of wsdrain.resume.v1 (docs/PROTOCOL.md, "The client's
 * rules"): per stream the epoch, the last seq delivered and the connection
 * that owns it. Feed it every data frame of every connection that selected
 * the subprotocol; it says what the application sees.
 */
export class ResumeStreams {
  #streams = new Map(); // stream -> {epoch, last, owner}, in the order met

  /** The resume point for the next connection: `stream@epoch.last,...`. */
  point() {
    return [...this.#streams].map(([s, v]) => `${s}@${v.epoch}.${v.last}`).join(",");
  }

  /**
   * One text (string) or binary (ArrayBuffer) frame received on connection
   * number `connection` (numbered in the order they were opened): null
   * (nothing to see), or {type: "message" | "plain" | "resumed" | "resync" |
   * "notice" | "error", ...}.
   */
  onFrame(connection, data) {
    const text = typeof data === "string";
    const bytes = text ? null : new Uint8Array(data);
    const nl = text ? data.indexOf("\n") : bytes.indexOf(10);
    if (nl < 0 || nl >= MAX_HEADER_LEN) return { type: "error", error: `no header line in the first ${MAX_HEADER_LEN} bytes` };
    const header = text ? data.slice(0, nl) : String.fromCharCode(...bytes.subarray(0, nl));
    const body = () => data.slice(nl + 1);
    if (header === "p") return { type: "plain", data: body() };
    if (header === "c") {
      let json = body();
      if (!text) {
        try {
          json = new TextDecoder("utf-8", { fatal: true }).decode(json);
        } catch {
          return { type: "error", error: "control is not UTF-8" };
        }
      }
      const c = readControl(json);
      if (typeof c === "string") return { type: "error", error: c };
      if (c.type === NOTICE_TYPE) return { type: "notice", closeInMs: c.closeInMs };
      return STREAM_CONTROLS.has(c.type) ? this.#control(connection, c) : null;
    }
    const m = MESSAGE.exec(header);
    if (m === null) return { type: "error", error: "header is not `m <stream> <seq>`, `p` or `c`" };
    const [, stream, digits] = m;
    const seq = Number(digits);
    if (!Number.isSafeInteger(seq)) return { type: "error", error: `seq ${digits} beyond 2^53` };
    const s = this.#streams.get(stream);
    if (s === undefined) return { type: "error", error: `message ${seq} of stream ${stream} before its control` };
    if (s.owner !== connection || seq <= s.last) return null;
    if (seq !== s.last + 1) return { type: "error", error: `message ${seq} of stream ${stream} after ${s.last}: a gap` };
    s.last = seq;
    return { type: "message", stream, seq, data: body() };
  }

  /** Rule 1: a follow, resumed or resync for a stream on `connection`. */
  #control(connection, c) {
    const s = this.#streams.get(c.stream);
    if (s === undefined) {
      if (this.#streams.size >= MAX_POINT_STREAMS) {
        return { type: "error", error: `stream ${c.stream} beyond the ${MAX_POINT_STREAMS} a resume point can name` };
      }
      this.#streams.set(c.stream, { epoch: c.epoch, last: c.after, owner: connection });
      return null;
    }
    if (connection < s.owner) return null;
    const moved = connection !== s.owner;
    s.owner = connection;
    if (s.epoch === c.epoch && c.after <= s.last) {
      // Nothing lost: the overlap that follows is dropped.
      return moved ? { type: "resumed", stream: c.stream, epoch: s.epoch, after: s.last } : null;
    }
    // A follow or resumed that skips ahead is a resync all the same.
    const reason = c.reason ?? (s.epoch === c.epoch ? "unknown" : "epoch");
    s.epoch = c.epoch;
    s.last = c.after;
    return { type: "resync", stream: c.stream, reason, epoch: s.epoch, after: s.last };
  }
}

/** `url` with `point` as its `wsdrain-resume` (none when empty), the rest of its query as it was. */
function withPoint(url, point) {
  const u = new URL(String(url), globalThis.location?.href);
  const query = u.search
    .slice(1)
    .split("&")
    .filter((pair) => pair !== "" && pair.split("=")[0] !== QUERY_KEY);
  if (point !== "") query.push(`${QUERY_KEY}=${point}`);
  u.search = query.join("&");
  return u.href;
}

/** A WebSocket that reconnects by the wsdrain rules. An EventTarget. */
export class WsDrainSocket extends EventTarget {
  #ws = null; // the connection send() uses
  #next = null; // the handover's new connection, until it opens
  #orphaned = null; // the close of the old connection when it ended before #next opened
  #retired = new Set(); // old connections after a switch, until their close
  #timer = null;
  #handoverTimer = null; // a paced handover's wait, before its connection opens
  #probe = null; // AbortController of a running health probe
  #stopped = false;
  #failures = 0;
  #connections = 0;
  #streams = new ResumeStreams();
  #status = { state: "connecting", code: null, reason: "", hint: null, wait: null, retryAt: null };

  /** Connects to `url` at once; `options` override `defaults`. */
  constructor(url, options = {}) {
    super();
    this.url = url;
    this.options = { ...defaults, ...options };
    this.#connect();
  }

  /** "connecting" | "open" | "waiting" | "stopped", the last close, the next attempt. */
  get status() {
    return { ...this.#status };
  }

  /** The status for people, e.g. "server restarting — reconnecting in 3.2 s". */
  statusText(now = performance.now()) {
    const s = this.#status;
    switch (s.state) {
      case "connecting":
        return "connecting…";
      case "open":
        return "connected";
      case "stopped":
        return s.code === null ? "disconnected" : `disconnected (code ${s.code})`;
      default: {
        if (s.wait === "health") return "waiting for the server to be ready…";
        const secs = Math.max(0, (s.retryAt - now) / 1000).toFixed(1);
        const what = s.wait === "hint" ? "server restarting" : "connection lost";
        return `${what} — reconnecting in ${secs} s`;
      }
    }
  }

  /** Sends on the open connection; false (nothing sent) when none is open. */
  send(data) {
    const ws = this.#ws?.socket;
    if (ws === undefined || ws.readyState !== WebSocket.OPEN) return false;
    ws.send(data);
    return true;
  }

  /** Closes with 1000 and never reconnects. */
  close() {
    this.#stopped = true;
    clearTimeout(this.#timer);
    this.#timer = null;
    clearTimeout(this.#handoverTimer);
    this.#handoverTimer = null;
    this.#probe?.abort();
    this.#probe = null;
    if (this.#next !== null) this.#next.socket.close(1000);
    for (const r of this.#retired) r.socket.close(1000);
    if (this.#ws !== null) this.#ws.socket.close(1000);
    else this.#setStatus({ state: "stopped" });
  }

  #emit(type, detail) {
    this.dispatchEvent(new CustomEvent(type, { detail }));
  }

  #setStatus(change) {
    this.#status = { ...this.#status, ...change };
    this.#emit("status", this.status);
  }

  /** Opens a connection; `handover`: the notice's lead and when it came. */
  #open(handover = null) {
    const resume = this.options.resume;
    let { url } = this;
    let protocols = this.options.protocols;
    if (resume) {
      url = withPoint(url, this.#streams.point());
      protocols = [...[protocols ?? []].flat()];
      if (!protocols.includes(SUBPROTOCOL)) protocols.push(SUBPROTOCOL);
    }
    const c = {
      id: ++this.#connections,
      socket: new WebSocket(url, protocols),
      openedAt: null,
      retired: false, // replaced by a handover: its close is not a disconnect
      handover, // {from, closeInMs, noticeAt} when opened on a notice
      framed: false, // the server selected wsdrain.resume.v1
      broken: false, // closed for a resume protocol error: nothing more is read
    };
    // Binary frames are parsed at once, so they cannot be Blobs.
    if (resume) c.socket.binaryType = "arraybuffer";
    c.socket.onopen = () => this.#opened(c);
    c.socket.onmessage = (ev) => this.#received(c, ev.data);
    c.socket.onclose = (ev) => this.#closed(c, ev);
    return c;
  }

  #connect() {
    this.#timer = null;
    this.#ws = this.#open();
    this.#setStatus({ state: "connecting", retryAt: null });
  }

  #opened(c) {
    c.openedAt = performance.now();
    c.framed = this.options.resume && c.socket.protocol === SUBPROTOCOL;
    if (c === this.#next) {
      // The switch: sends go to the new connection from here on.
      const old = this.#ws;
      this.#next = null;
      this.#orphaned = null;
      this.#ws = c;
      if (old !== null) {
        this.#retired.add(old);
        old.retired = true;
        old.switchedAt = c.openedAt;
        old.successor = c;
        const linger = this.options.handoverLinger;
        if (Number.isFinite(linger)) {
          setTimeout(() => old.socket.close(1000), Math.max(0, linger));
        }
      }
    } else if (c !== this.#ws) {
      return; // stopped meanwhile
    }
    this.#setStatus({ state: "open", code: null, reason: "", hint: null, wait: null });
    this.#emit("open", { connection: c.id, handover: c.handover !== null });
    if (this.options.resume && !c.framed) this.#emit("resumedeclined", { connection: c.id });
  }

  #received(c, data) {
    if (c.broken) return;
    if (!c.framed) {
      const lead = parseNotice(data);
      if (lead === null) this.#emit("message", { data, connection: c.id, stream: null, seq: null });
      else this.#noticed(c, lead);
      return;
    }
    const r = this.#streams.onFrame(c.id, data);
    if (r === null) return;
    const connection = c.id;
    switch (r.type) {
      case "message":
        this.#emit("message", { data: r.data, connection, stream: r.stream, seq: r.seq });
        break;
      case "plain":
        this.#emit("message", { data: r.data, connection, stream: null, seq: null });
        break;
      case "resumed":
        this.#emit("resumed", { connection, stream: r.stream, epoch: r.epoch, after: r.after });
        break;
      case "resync":
        this.#emit("resync", { connection, stream: r.stream, reason: r.reason, epoch: r.epoch, after: r.after });
        break;
      case "notice":
        this.#noticed(c, r.closeInMs);
        break;
      default:
        // A protocol error: close this connection and resume on a new one.
        // Browsers cannot send 1002; the reason says it.
        console.warn(`wsdrain: connection ${connection}: ${r.error}`);
        c.broken = true;
        c.socket.close(1000, "wsdrain.resume.v1 protocol error");
    }
  }

  /** The drain notice on `c`: a close `lead` ms from now. */
  #noticed(c, lead) {
    this.#emit("notice", { connection: c.id, closeInMs: lead });
    // A notice on the connection in use, no handover under way: make before break.
    const idle = this.#next === null && this.#handoverTimer === null;
    if (!this.options.handover || this.#stopped || c !== this.#ws || !idle || c.retired) return;
    const handover = { from: c.id, closeInMs: lead, noticeAt: performance.now() };
    // A young handover noticed again: back off first, or servers that
    // notice every new connection would have it hop as fast as they accept.
    const o = this.options;
    if (c.handover !== null && handover.noticeAt - c.openedAt < o.stableAfter) {
      const delay = fullJitter(o.base, o.cap, this.#failures);
      this.#failures += 1;
      this.#handoverTimer = setTimeout(() => {
        this.#handoverTimer = null;
        if (!this.#stopped && c === this.#ws) this.#next = this.#open(handover);
      }, delay);
      return;
    }
    this.#next = this.#open(handover);
  }

  #closed(c, ev) {
    const now = performance.now();
    const upFor = c.openedAt === null ? 0 : now - c.openedAt;
    if (c.openedAt !== null && upFor >= this.options.stableAfter) this.#failures = 0;
    const hint = retryAfterMs(ev.reason);
    const { code, reason, wasClean } = ev;
    const closed = { connection: c.id, code, reason, wasClean, hint, opened: c.openedAt !== null, upFor, retired: c.retired };
    // Closed for a protocol error: back off as after a broken connection.
    const advice = c.broken ? { ...closed, code: 1006, reason: "", hint: null } : closed;

    if (c === this.#next) {
      // The handover's new connection failed before it opened: stay on the old one.
      this.#next = null;
      this.#emit("close", closed);
      this.#emit("handoverfailed", { connection: c.handover.from, to: c.id, code });
      if (this.#ws === null && this.#orphaned !== null) {
        // The old one is gone too: reconnect as its close advised.
        const last = this.#orphaned;
        this.#orphaned = null;
        this.#afterClose(last);
      }
      return;
    }
    if (c.retired) {
      this.#retired.delete(c);
      this.#emit("close", closed);
      const n = c.successor;
      this.#emit("handover", {
        from: c.id,
        to: n.id,
        closeInMs: n.handover.closeInMs,
        took: n.openedAt - n.handover.noticeAt, // from the notice to the new connection's open
        overlap: now - n.openedAt, // both connections open
      });
      return;
    }
    if (c !== this.#ws) return; // after close()
    this.#ws = null;
    // A handover still waiting out its backoff gives way to this close's advice.
    clearTimeout(this.#handoverTimer);
    this.#handoverTimer = null;
    this.#emit("close", closed);
    if (this.#next !== null && !this.#stopped) {
      // Closed before the handover's new connection opened: wait for it; if
      // it fails, reconnect as this close advised.
      this.#orphaned = advice;
      this.#setStatus({ state: "connecting", code, reason, hint, retryAt: null });
      return;
    }
    this.#afterClose(advice);
  }

  /** Schedules the next connection after `closed`, or stops. */
  #afterClose({ code, reason, hint }) {
    if (this.#stopped) {
      this.#setStatus({ state: "stopped", code, reason, hint });
      return;
    }
    const next = reconnectDelay(code, reason, this.#failures, this.options);
    if (next === null) {
      this.#stopped = true;
      this.#setStatus({ state: "stopped", code, reason, hint });
      this.#emit("giveup", { code });
      return;
    }
    if (next.wait === "backoff") this.#failures += 1;
    const retryAt = performance.now() + next.delay;
    this.#setStatus({ state: "waiting", code, reason, hint, wait: next.wait, retryAt });
    this.#emit("reconnecting", next);
    const go = this.options.health ? () => this.#probeThenConnect(0) : () => this.#connect();
    this.#timer = setTimeout(go, next.delay);
  }

  /** Probes the health URL until it answers 200, then connects. */
  async #probeThenConnect(attempt) {
    this.#timer = null;
    if (this.#stopped) return;
    const url = healthUrl(this.url, this.options.health);
    this.#setStatus({ state: "waiting", wait: "health", retryAt: null });
    const abort = new AbortController();
    this.#probe = abort;
    const timeout = setTimeout(() => abort.abort(), this.options.healthTimeout);
    let status = 0;
    let retryAfter = null;
    try {
      const r = await fetch(url, { cache: "no-store", signal: abort.signal });
      status = r.status;
      retryAfter = retryAfterHeaderMs(r.headers.get("retry-after"));
    } catch {
      // Network error, timeout or close(): status 0.
    } finally {
      clearTimeout(timeout);
    }
    if (this.#stopped || this.#probe !== abort) return;
    this.#probe = null;
    const ok = status === 200;
    this.#emit("probe", { url, status, ok, retryAfter });
    if (ok) {
      this.#connect();
      return;
    }
    const o = this.options;
    const delay =
      status === 503 && retryAfter !== null
        ? Math.min(retryAfter, o.cap) + Math.random() * o.hintJitter
        : fullJitter(o.base, o.cap, attempt);
    this.#timer = setTimeout(() => this.#probeThenConnect(attempt + 1), delay);
  }
}
