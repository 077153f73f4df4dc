// Type declarations for wsdrain.js (docs/CLIENTS.md, "Browser: wsdrain.js").

/** The hint of a Close reason in ms, or null (`/retry-after-ms=(\d+)/`). */
export function retryAfterMs(reason: string | null | undefined): number | null;

/** `"wsdrain.reconnect"`: the `type` of the drain notice. */
export const NOTICE_TYPE: "wsdrain.reconnect";

/** The lead (`close_in_ms`) of a drain notice, or null when `data` is not one. Never throws. */
export function parseNotice(data: unknown): number | null;

/** 1001, 1012 or 1013: the close codes whose hint is honoured. */
export function honoursHint(code: number): boolean;

/** Every option; all times in milliseconds. */
export interface Options {
  /** First backoff ceiling (250). */
  base: number;
  /** Longest wait of any kind; hints are clamped to it (30 000). */
  cap: number;
  /** Backoff base after 1001/1012 without a hint (5 000); 1013 without a hint backs off from `base`. */
  goingAwayBase: number;
  /** A connection up this long resets the failure count (30 000); a drain notice on a handover's connection younger than this waits the backoff first. */
  stableAfter: number;
  /** Least jitter on a hint: `h + random(0, max(hintJitter, h / 50))` (50). */
  hintJitter: number;
  /** Codes that stop the socket (1000, 1008, 4000–4999). */
  isTerminal: (code: number) => boolean;
  /** Hand over to a new connection on the drain notice (true). */
  handover: boolean;
  /** After the switch, keep reading the old connection this long, then close it with 1000 (0; `Infinity`: until the server's Close). */
  handoverLinger: number;
  /** Probe before reconnecting: false (default), true (the URL's origin + `/readyz`) or a health URL. */
  health: boolean | string;
  /** One probe gives up after this long (5 000). */
  healthTimeout: number;
  /** WebSocket subprotocols, for every connection. */
  protocols: string | string[] | undefined;
  /**
   * Resumable streams (false): offer `wsdrain.resume.v1` with the point in
   * the query; each message of a stream once, in order; `resumed` and
   * `resync` events. Binary messages are then `ArrayBuffer`s.
   */
  resume: boolean;
}

export const defaults: Readonly<Options>;

/** Full jitter: `random() * min(cap, base * 2 ** attempt)`. */
export function fullJitter(base: number, cap: number, attempt: number, random?: () => number): number;

/** Why and how long the socket waits before its next connection. */
export interface Reconnecting {
  delay: number;
  wait: "hint" | "backoff";
  hint: number | null;
  attempt: number;
}

/** What to do after a close (1001, 1012 or 1013 with a hint: wait the hint), or null for "do not reconnect". */
export function reconnectDelay(
  code: number,
  reason: string | null | undefined,
  attempt: number,
  options?: Partial<Options>,
  random?: () => number,
): Reconnecting | null;

/** The health URL for a WebSocket URL: `health` when it is a string, else the origin's `/readyz`. */
export function healthUrl(url: string | URL, health?: boolean | string): string;

/** A `Retry-After` header (delta-seconds) in ms, or null. */
export function retryAfterHeaderMs(value: string | null | undefined): number | null;

/** `"wsdrain.resume.v1"`: the subprotocol of resumable streams. */
export const SUBPROTOCOL: "wsdrain.resume.v1";

/** Why a stream could not go on where the client stopped; `"other"` for a reason this version does not know. */
export type ResyncReason = "expired" | "epoch" | "unknown" | "unavailable" | "other";

/** What one frame means for the application (`ResumeStreams.onFrame`); null: nothing. */
export type ResumeStep =
  | null
  | { type: "message"; stream: string; seq: number; data: string | ArrayBuffer }
  | { type: "plain"; data: string | ArrayBuffer }
  | { type: "resumed"; stream: string; epoch: string; after: number }
  | { type: "resync"; stream: string; reason: ResyncReason; epoch: string; after: number }
  | { type: "notice"; closeInMs: number }
  | { type: "error"; error: string };

/** The client's rules of wsdrain.resume.v1: per stream the epoch, the last seq delivered and the owning connection. */
export class ResumeStreams {
  /** The resume point for the next connection: `stream@epoch.last,...`. */
  point(): string;
  /** One frame received on connection number `connection` (numbered in the order opened). */
  onFrame(connection: number, data: string | ArrayBuffer): ResumeStep;
}

export type State = "connecting" | "open" | "waiting" | "stopped";

export interface Status {
  state: State;
  /** The last close. */
  code: number | null;
  reason: string;
  hint: number | null;
  /** While `waiting`: for the hint, a backoff, or the health probe. */
  wait: "hint" | "backoff" | "health" | null;
  /** `performance.now()` of the next attempt, while waiting for a hint or backoff. */
  retryAt: number | null;
}

export interface OpenDetail {
  connection: number;
  /** Opened on a drain notice. */
  handover: boolean;
}

export interface MessageDetail {
  data: string | Blob | ArrayBuffer;
  connection: number;
  /** The stream of a resumable message; null outside any stream or without resume. */
  stream: string | null;
  /** Its seq in the stream's epoch; null when `stream` is. */
  seq: number | null;
}

export interface ResumedDetail {
  /** The connection that carries the stream from now on. */
  connection: number;
  stream: string;
  epoch: string;
  /** The last seq delivered: the next message is `after + 1`. */
  after: number;
}

export interface ResyncDetail {
  /** The connection that carries the stream from now on. */
  connection: number;
  stream: string;
  reason: ResyncReason;
  /** The stream's epoch from here on. */
  epoch: string;
  /** The messages that follow have seqs after this one: reload the state, then apply them. */
  after: number;
}

export interface CloseDetail {
  connection: number;
  code: number;
  reason: string;
  wasClean: boolean;
  hint: number | null;
  /** It had opened (false: the attempt failed). */
  opened: boolean;
  upFor: number;
  /** An old connection after a handover: not a disconnect. */
  retired: boolean;
}

export interface NoticeDetail {
  connection: number;
  closeInMs: number;
}

export interface HandoverDetail {
  from: number;
  to: number;
  closeInMs: number;
  /** From the notice to the new connection's open. */
  took: number;
  /** Both connections open: from the new one's open to the old one's close. */
  overlap: number;
}

export interface HandoverFailedDetail {
  /** The connection that got the notice; sends stay on it. */
  connection: number;
  /** The new connection that failed. */
  to: number;
  code: number;
}

export interface ProbeDetail {
  url: string;
  /** HTTP status, 0 for a network error or timeout. */
  status: number;
  ok: boolean;
  /** `Retry-After` of the answer, in ms. */
  retryAfter: number | null;
}

export interface WsDrainEventMap {
  open: CustomEvent<OpenDetail>;
  message: CustomEvent<MessageDetail>;
  close: CustomEvent<CloseDetail>;
  notice: CustomEvent<NoticeDetail>;
  handover: CustomEvent<HandoverDetail>;
  handoverfailed: CustomEvent<HandoverFailedDetail>;
  resumed: CustomEvent<ResumedDetail>;
  resync: CustomEvent<ResyncDetail>;
  /** The server did not select wsdrain.resume.v1 on this connection: nothing on it is resumed. */
  resumedeclined: CustomEvent<{ connection: number }>;
  probe: CustomEvent<ProbeDetail>;
  reconnecting: CustomEvent<Reconnecting>;
  giveup: CustomEvent<{ code: number }>;
  status: CustomEvent<Status>;
}

/** A WebSocket that reconnects by the wsdrain rules and hands over on the drain notice. */
export class WsDrainSocket extends EventTarget {
  constructor(url: string | URL, options?: Partial<Options>);
  readonly url: string | URL;
  readonly options: Options;
  get status(): Status;
  statusText(now?: number): string;
  /** Sends on the open connection; false (nothing sent) when none is open. */
  send(data: string | ArrayBufferLike | Blob | ArrayBufferView): boolean;
  /** Closes with 1000 and never reconnects. */
  close(): void;

  addEventListener<K extends keyof WsDrainEventMap>(
    type: K,
    listener: (this: WsDrainSocket, ev: WsDrainEventMap[K]) => unknown,
    options?: boolean | AddEventListenerOptions,
  ): void;
  addEventListener(
    type: string,
    listener: EventListenerOrEventListenerObject | null,
    options?: boolean | AddEventListenerOptions,
  ): void;
  removeEventListener<K extends keyof WsDrainEventMap>(
    type: K,
    listener: (this: WsDrainSocket, ev: WsDrainEventMap[K]) => unknown,
    options?: boolean | EventListenerOptions,
  ): void;
  removeEventListener(
    type: string,
    listener: EventListenerOrEventListenerObject | null,
    options?: boolean | EventListenerOptions,
  ): void;
}
