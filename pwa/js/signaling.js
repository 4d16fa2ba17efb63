// SignalingClient: one WebSocket to /ws that reconnects by itself and raises an event per message.
// No DOM here: views listen to the events.

import { PROTOCOL_VERSION, ping } from "./protocol.js";

/** @typedef {"connecting"|"open"|"reconnecting"|"closed"} SocketState */

const BACKOFF_MIN = 500;
const BACKOFF_MAX = 15000;
// During a call the server keeps it only for CALL_GRACE_PERIOD (15 s): come back well inside it.
const BACKOFF_MAX_IN_CALL = 2500;
const PING_EVERY = 20000;
const PONG_WITHIN = 10000;

export class SignalingClient extends EventTarget {
  constructor({ url = `${location.origin.replace(/^http/, "ws")}/ws` } = {}) {
    super();
    this.url = url;
    /** @type {WebSocket|null} */
    this.ws = null;
    /** @type {SocketState} */
    this._state = "closed";
    this.user = null;
    this.attempt = 0;
    this.stopped = true;
    this.timers = { retry: 0, ping: 0, pong: 0 };
    /** True once a server said it speaks a newer protocol: the socket stays closed until the page updates. */
    this.outdated = false;
    /** Whether a call is live (set by the CallManager): the backoff then stays short. */
    this.urgent = () => false;
    // Back online, back in the foreground, or on another network: a phone's socket is most likely
    // dead or waiting out a long backoff just then, so try at once.
    this.onOnline = () => this.reconnectNow();
    this.onVisible = () => document.visibilityState === "visible" && this.reconnectNow();
    /** @type {EventTarget|null} */
    this.network = /** @type {any} */ (navigator).connection || null;
  }

  get state() {
    return this._state;
  }

  connect() {
    if (this.outdated) return;
    this.stopped = false;
    window.addEventListener("online", this.onOnline);
    document.addEventListener("visibilitychange", this.onVisible);
    if (this.network) this.network.addEventListener("change", this.onOnline);
    this.open();
  }

  close() {
    this.stopped = true;
    window.removeEventListener("online", this.onOnline);
    document.removeEventListener("visibilitychange", this.onVisible);
    if (this.network) this.network.removeEventListener("change", this.onOnline);
    this.clearTimers();
    if (this.ws) {
      this.ws.onclose = null;
      this.ws.close(1000, "signed out");
      this.ws = null;
    }
    this.setState("closed");
  }

  /** @param {object} message @returns {boolean} whether it was written to an open socket */
  send(message) {
    if (!this.ws || this.ws.readyState !== WebSocket.OPEN) return false;
    this.ws.send(JSON.stringify(message));
    return true;
  }

  /** Reconnect now instead of after the backoff; an open socket is checked with a ping first. */
  reconnectNow() {
    if (this.stopped) return;
    if (this._state === "open") {
      // It may be dead without the browser knowing (a phone asleep, a new network): no pong, new socket.
      this.probe();
      return;
    }
    clearTimeout(this.timers.retry);
    const stale = this.ws;
    if (stale) {
      // A socket still connecting on the old network may hang for a long time: start afresh.
      this.ws = null;
      stale.onopen = stale.onmessage = stale.onclose = null;
      stale.close();
    }
    this.open();
  }

  open() {
    this.clearTimers();
    this.setState(this.attempt === 0 ? "connecting" : "reconnecting");
    const ws = new WebSocket(this.url);
    this.ws = ws;
    let opened = false;
    ws.onopen = () => {
      opened = true;
    };
    ws.onmessage = (event) => {
      let message;
      try {
        message = JSON.parse(event.data);
      } catch {
        return;
      }
      if (message.type === "welcome" && (message.protocol || 0) > PROTOCOL_VERSION) {
        // The server speaks a newer protocol: talking on could misbehave, so stop and ask to update.
        this.outdated = true;
        this.close();
        this.dispatchEvent(new CustomEvent("outdated", { detail: { protocol: message.protocol } }));
        return;
      }
      if (message.type === "welcome") {
        this.attempt = 0;
        this.user = message.user;
        this.setState("open");
        this.schedulePing();
      }
      if (message.type === "pong") {
        clearTimeout(this.timers.pong);
        this.timers.pong = 0;
      }
      this.dispatchEvent(new CustomEvent(message.type, { detail: message }));
    };
    ws.onclose = (event) => {
      if (this.ws !== ws) return;
      this.ws = null;
      this.clearTimers();
      if (this.stopped) return;
      this.setState("reconnecting", opened ? `closed ${event.code}` : "closed-before-open");
      // Capped exponential backoff with full jitter, so a restarted server is not stampeded.
      const cap = Math.min(this.urgent() ? BACKOFF_MAX_IN_CALL : BACKOFF_MAX, BACKOFF_MIN * 2 ** this.attempt);
      this.attempt += 1;
      const delay = event.code === 1001 && this.attempt === 1 ? 100 : Math.random() * cap;
      this.timers.retry = setTimeout(() => this.open(), delay);
    };
  }

  schedulePing() {
    clearTimeout(this.timers.ping);
    this.timers.ping = setTimeout(() => {
      this.probe();
      this.schedulePing();
    }, PING_EVERY);
  }

  /** Ping; no pong in time means the socket is dead even if the browser has not noticed. */
  probe() {
    if (this.timers.pong || !this.send(ping(Date.now()))) return;
    const ws = this.ws;
    this.timers.pong = setTimeout(() => ws && ws.close(4000, "no pong"), PONG_WITHIN);
  }

  clearTimers() {
    clearTimeout(this.timers.retry);
    clearTimeout(this.timers.ping);
    clearTimeout(this.timers.pong);
    this.timers.pong = 0;
  }

  /** @param {SocketState} state @param {string} [reason] */
  setState(state, reason = "") {
    if (state === this._state && !reason) return;
    this._state = state;
    this.dispatchEvent(new CustomEvent("state", { detail: { state, reason } }));
  }
}
