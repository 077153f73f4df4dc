// wsdrain.js: a reconnecting WebSocket that honours wsdrain close hints.
//
// A draining wsdrain server closes each session with code 1001 (or 1012) and a
// reason like "going away; retry-after-ms=2731" (docs/PROTOCOL.md). This module
// waits that long plus a little jitter of its own, then reconnects. Other
// endings back off with full jitter; 1000, 1008 and 4000-4999 stop it.
// A browser cannot see the status of a refused upgrade (a 503 with Retry-After
// shows up as 1006), so that case backs off like any other failure.
//
//   import { WsDrainSocket } from "/wsdrain.js";
//   const ws = new WsDrainSocket("ws://" + location.host + "/ws");
//   ws.addEventListener("message", (e) => console.log(e.detail.data));
//   ws.addEventListener("status", () => label.textContent = ws.statusText());
//   ws.send("hi"); // false when no connection is open: nothing was sent
//
// Events (CustomEvent, data in .detail): "open" {connection}, "message" {data,
// connection}, "close" {connection, code, reason, wasClean, hint, opened, upFor},
// "reconnecting" {delay, wait, hint, attempt}, "giveup" {code}, "status".
// No build step, no dependencies.

const HINT = /retry-after-ms=(\d+)/;

/** The hint of a Close reason in ms, or null (docs/PROTOCOL.md, "The regex"). */
export function retryAfterMs(reason) {
  const m = HINT.exec(String(reason ?? ""));
  if (!m) return null;
  const ms = Number(m[1]);
  return Number.isSafeInteger(ms) ? ms : null;
}

/** The defaults, the same as the Rust client's. All times in ms. */
export const defaults = Object.freeze({
  base: 250, // first backoff ceiling: a lost connection comes back fast
  cap: 30_000, // longest wait of any kind; hints are clamped to it
  goingAwayBase: 5_000, // backoff base after 1001/1012 without a hint (RFC 6455 §7.2.3)
  stableAfter: 30_000, // a connection up this long resets the failure count
  hintJitter: 50, // least jitter on a hint: h + random(0, max(hintJitter, h/50))
  isTerminal: (code) => code === 1000 || code === 1008 || (code >= 4000 && code <= 4999),
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
  if (code === 1001 || code === 1012) {
    if (hint !== null) {
      const h = Math.min(hint, o.cap);
      return { delay: h + random() * Math.max(o.hintJitter, h / 50), wait: "hint", hint, attempt };
    }
    const base = Math.max(o.goingAwayBase, o.base);
    return { delay: fullJitter(base, o.cap, attempt, random), wait: "backoff", hint: null, attempt };
  }
  if (o.isTerminal(code)) return null;
  return { delay: fullJitter(o.base, o.cap, attempt, random), wait: "backoff", hint: null, attempt };
}

/** A WebSocket that reconnects by the wsdrain rules. An EventTarget. */
export class WsDrainSocket extends EventTarget {
  #ws = null;
  #timer = null;
  #stopped = false;
  #failures = 0;
  #connections = 0;
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
        const secs = Math.max(0, (s.retryAt - now) / 1000).toFixed(1);
        const what = s.wait === "hint" ? "server restarting" : "connection lost";
        return `${what} — reconnecting in ${secs} s`;
      }
    }
  }

  /** Sends on the open connection; false (nothing sent) when none is open. */
  send(data) {
    if (this.#ws === null || this.#ws.readyState !== WebSocket.OPEN) return false;
    this.#ws.send(data);
    return true;
  }

  /** Closes with 1000 and never reconnects. */
  close() {
    this.#stopped = true;
    clearTimeout(this.#timer);
    this.#timer = null;
    if (this.#ws !== null) this.#ws.close(1000);
    else this.#setStatus({ state: "stopped" });
  }

  #emit(type, detail) {
    this.dispatchEvent(new CustomEvent(type, { detail }));
  }

  #setStatus(change) {
    this.#status = { ...this.#status, ...change };
    this.#emit("status", this.status);
  }

  #connect() {
    this.#timer = null;
    const connection = ++this.#connections;
    const ws = new WebSocket(this.url);
    let openedAt = null;
    this.#ws = ws;
    this.#setStatus({ state: "connecting", retryAt: null });
    ws.onopen = () => {
      openedAt = performance.now();
      this.#setStatus({ state: "open", code: null, reason: "", hint: null, wait: null });
      this.#emit("open", { connection });
    };
    ws.onmessage = (ev) => this.#emit("message", { data: ev.data, connection });
    ws.onclose = (ev) => {
      this.#ws = null;
      const upFor = openedAt === null ? 0 : performance.now() - openedAt;
      if (openedAt !== null && upFor >= this.options.stableAfter) this.#failures = 0;
      const hint = retryAfterMs(ev.reason);
      const { code, reason, wasClean } = ev;
      this.#emit("close", { connection, code, reason, wasClean, hint, opened: openedAt !== null, upFor });
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
      this.#timer = setTimeout(() => this.#connect(), next.delay);
    };
  }
}
