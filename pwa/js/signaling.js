// SignalingClient: one WebSocket to /ws that reconnects by itself and raises an event per message.
// No DOM here: views listen to the events.

import { ping } from "./protocol.js";

/** @typedef {"connecting"|"open"|"reconnecting"|"closed"} SocketState */

const BACKOFF_MIN = 500;
const BACKOFF_MAX = 15000;
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
    this.onOnline = () => this.reconnectNow();
  }

  get state() {
    return this._state;
  }

  connect() {
    this.stopped = false;
    window.addEventListener("online", this.onOnline);
    this.open();
  }

  close() {
    this.stopped = true;
    window.removeEventListener("online", this.onOnline);
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

  reconnectNow() {
    if (this.stopped || this._state === "open") return;
    clearTimeout(this.timers.retry);
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
      if (message.type === "welcome") {
        this.attempt = 0;
        this.user = message.user;
        this.setState("open");
        this.schedulePing();
      }
      if (message.type === "pong") clearTimeout(this.timers.pong);
      this.dispatchEvent(new CustomEvent(message.type, { detail: message }));
    };
    ws.onclose = (event) => {
      if (this.ws !== ws) return;
      this.ws = null;
      this.clearTimers();
      if (this.stopped) return;
      this.setState("reconnecting", opened ? `closed ${event.code}` : "closed-before-open");
      // Capped exponential backoff with full jitter, so a restarted server is not stampeded.
      const cap = Math.min(BACKOFF_MAX, BACKOFF_MIN * 2 ** this.attempt);
      this.attempt += 1;
      const delay = event.code === 1001 && this.attempt === 1 ? 100 : Math.random() * cap;
      this.timers.retry = setTimeout(() => this.open(), delay);
    };
  }

  schedulePing() {
    clearTimeout(this.timers.ping);
    this.timers.ping = setTimeout(() => {
      if (this.send(ping(Date.now()))) {
        // No pong in time: the socket is dead even if the browser has not noticed.
        this.timers.pong = setTimeout(() => this.ws && this.ws.close(4000, "no pong"), PONG_WITHIN);
      }
      this.schedulePing();
    }, PING_EVERY);
  }

  clearTimers() {
    clearTimeout(this.timers.retry);
    clearTimeout(this.timers.ping);
    clearTimeout(this.timers.pong);
  }

  /** @param {SocketState} state @param {string} [reason] */
  setState(state, reason = "") {
    if (state === this._state && !reason) return;
    this._state = state;
    this.dispatchEvent(new CustomEvent("state", { detail: { state, reason } }));
  }
}
