// Rooms and messages: history over HTTP, live delivery over the socket, and an outbox that keeps
// unsent messages (in localStorage) and resends them after every reconnect until acknowledged. A
// message the server refuses stays in the outbox, marked failed with a reason, until retried or
// discarded: nothing typed is dropped. Group rooms change live (room_updated / room_removed) and
// their live calls are kept as the server announces them (group_call_state).

import { api, groups } from "./api.js";
import { MAX_TEXT, chatMessage, newId } from "./protocol.js";

/** @typedef {{id: number, username: string}} User */
/** @typedef {{id: number, room_id: number, kind: "text"|"call"|"system", text: string, client_id: string, created_at: string, sender: User, call: null|{id: string, media: "audio"|"video", outcome: string, duration: number|null, caller_id: number, group?: boolean, participants?: User[]|null, reports?: {caller: import("./stats.js").Report|null, callee: import("./stats.js").Report|null}}}} Message */
/** A live group call as the server announces it. @typedef {{call_id: string, room_id: number, media: "audio"|"video", state: "ringing"|"active"|"ended", started_by: User, participants: User[]}} GroupCall */
/** @typedef {{client_id: string, room_id: number, text: string, created_at: string, status: "sending"|"failed", reason?: string}} Pending */
/** How far the other person got in a room: own messages up to these ids are Delivered / Read. @typedef {{delivered_id: number, read_id: number}} Marks */

const HTTP_FALLBACK_MS = 4000;
const PAGE = 200; // the API's largest page
// HTTP answers that say "not now" rather than "never": the message waits in the outbox.
const TRANSIENT_STATUSES = new Set([401, 403, 408, 425, 429]);

/** Length as the server counts it (Python's len: code points, not UTF-16 units). @param {string} text */
export const textLength = (text) => [...text].length;

/** @param {number} n */
export const count = (n) => n.toLocaleString();

/** Why a message was refused, in words a person can act on. @param {string} text @param {string} reason */
export function refusal(text, reason) {
  const length = textLength(text);
  if (length > MAX_TEXT || reason === "too_large") {
    return `This message is too long (${count(length)} of ${count(MAX_TEXT)} characters).`;
  }
  if (!text.trim()) return "This message is empty.";
  if (typeof text.isWellFormed === "function" && !text.isWellFormed()) return "This message has characters that cannot be sent.";
  if (reason === "not_found") return "This chat is no longer available.";
  if (reason === "forbidden") return "You cannot send messages in this chat.";
  if (reason === "internal") return "The server could not store this message. Try again.";
  return "The server refused this message.";
}

/** The reason (as in the socket's `error` frames) for an HTTP refusal. @param {number} status */
function httpReason(status) {
  if (status === 413) return "too_large";
  if (status === 404) return "not_found";
  if (status === 409) return "forbidden";
  return status >= 500 ? "internal" : "bad_message";
}

export class ChatStore extends EventTarget {
  /** @param {{signaling: import("./signaling.js").SignalingClient, user: {id: number, username: string, echo_username?: string|null}}} deps */
  constructor({ signaling, user }) {
    super();
    this.signaling = signaling;
    this.user = user;
    /** @type {any[]} */
    this.rooms = [];
    /** @type {Map<number, Message[]>} */
    this.messages = new Map();
    /** The other person's delivered and read markers per room, from the server. @type {Map<number, Marks>} */
    this.marks = new Map();
    /** @type {Set<number>} */
    this.online = new Set();
    /** The live call of each group room that has one. @type {Map<number, GroupCall>} */
    this.groupCalls = new Map();
    this.roomsAsked = 0; // loadRooms calls so far
    this.key = `parley.outbox.${user.id}`;
    /** @type {Pending[]} */
    this.outbox = JSON.parse(localStorage.getItem(this.key) || "[]");
    this.fallbackTimer = 0;
    this.retryTimer = 0;
    /** @type {[string, (e: any) => void][]} */
    this.handlers = [
      ["chat_message", (e) => this.gotMessage(e.detail.message)],
      ["call_report", (e) => this.gotReport(e.detail.message)],
      ["chat_ack", (e) => this.gotAck(e.detail)],
      ["receipt", (e) => this.gotReceipt(e.detail)],
      ["welcome", (e) => this.gotWelcome(e.detail)],
      ["presence", (e) => this.gotPresence(e.detail)],
      ["error", (e) => this.gotError(e.detail)],
      ["room_updated", (e) => this.gotRoom(e.detail.room)],
      ["room_removed", (e) => this.forget(e.detail.room_id)],
      ["group_call_state", (e) => this.gotGroupCall(e.detail)],
    ];
    for (const [type, handler] of this.handlers) signaling.addEventListener(type, handler);
  }

  dispose() {
    clearTimeout(this.fallbackTimer);
    clearTimeout(this.retryTimer);
    for (const [type, handler] of this.handlers) this.signaling.removeEventListener(type, handler);
  }

  async loadRooms() {
    // Only the newest answer counts: an older one (asked before a group was made) must not undo it.
    const asked = ++this.roomsAsked;
    const body = await api("GET", "/api/rooms");
    if (asked !== this.roomsAsked) return this.rooms;
    this.rooms = body.rooms;
    this.emit("rooms");
    return this.rooms;
  }

  /** @param {string} username */
  async openRoom(username) {
    const room = await api("POST", "/api/rooms", { username });
    await this.loadRooms().catch(() => {});
    return room;
  }

  /** @param {number} roomId */
  room(roomId) {
    return this.rooms.find((r) => r.id === roomId) || null;
  }

  /** A room's summary, fetched when this page has not had it yet (a group made a moment ago). @param {number} roomId */
  async roomNow(roomId) {
    return this.room(roomId) || (await this.loadRooms()).find((r) => r.id === roomId) || this.room(roomId);
  }

  // --- groups --------------------------------------------------------------------------------

  /** Create a group of the user and `usernames`; the server's refusal is thrown as it said it. @param {string} name @param {string[]} usernames */
  async createGroup(name, usernames) {
    return this.gotRoom(await groups.create(name, usernames));
  }

  /** @param {number} roomId @param {string} username */
  async addMember(roomId, username) {
    return this.gotRoom(await groups.add(roomId, username));
  }

  /** @param {number} roomId @param {string} name */
  async renameGroup(roomId, name) {
    return this.gotRoom(await groups.rename(roomId, name));
  }

  /** @param {number} roomId */
  async leaveGroup(roomId) {
    await groups.leave(roomId);
    this.forget(roomId);
  }

  /** A room's new summary (an answer, or room_updated): update it, or fetch the list for a new one. @param {any} summary */
  gotRoom(summary) {
    const room = this.room(summary.id);
    if (room) Object.assign(room, summary);
    else if ("last_activity_at" in summary) this.rooms.unshift(summary); // a full summary, from an answer
    else this.loadRooms().catch(() => {}); // room_updated for a room new here: fetch its summary
    this.emit("rooms");
    return summary;
  }

  /** The user is no longer in this room (left it here or elsewhere): it leaves the list. @param {number} roomId */
  forget(roomId) {
    if (!this.room(roomId)) return;
    this.rooms = this.rooms.filter((r) => r.id !== roomId);
    this.messages.delete(roomId);
    this.marks.delete(roomId);
    this.groupCalls.delete(roomId);
    this.emit("rooms");
    this.emit("removed", { roomId });
  }

  /** @param {GroupCall} state */
  gotGroupCall(state) {
    if (state.state === "ended") this.groupCalls.delete(state.room_id);
    else this.groupCalls.set(state.room_id, state);
    this.emit("rooms");
  }

  /** The live group call in a room that the user could join (they are not in it), or null. @param {number} roomId */
  joinable(roomId) {
    const live = this.groupCalls.get(roomId);
    return live && !live.participants.some((p) => p.id === this.user.id) ? live : null;
  }

  /** Whether the user shares a room with this user (the other person, or a group member). @param {number} userId */
  knows(userId) {
    return this.rooms.some((r) => (r.members || [r.peer]).some((/** @type {User|null} */ m) => m && m.id === userId));
  }

  /** @param {number} roomId */
  async loadRoom(roomId) {
    const body = await api("GET", `/api/rooms/${roomId}/messages?limit=100`);
    this.advance(roomId, body);
    this.merge(roomId, body.messages);
    return body;
  }

  /**
   * Fetch every message newer than `after`, page by page: after a long outage the newest page
   * alone would leave a gap. @param {number} roomId @param {number | undefined} after
   */
  async catchUp(roomId, after) {
    if (after === undefined) return this.loadRoom(roomId);
    for (;;) {
      const body = await api("GET", `/api/rooms/${roomId}/messages?after=${after}&limit=${PAGE}`);
      this.advance(roomId, body);
      this.merge(roomId, body.messages);
      if (body.messages.length < PAGE) return;
      after = body.messages[body.messages.length - 1].id;
    }
  }

  /** Messages of a room, oldest first, with unsent (and refused) ones last. @param {number} roomId */
  timeline(roomId) {
    const stored = this.messages.get(roomId) || [];
    // A message stored before its ack came (a reload in between) is shown once, as stored.
    const storedIds = new Set(stored.map((m) => m.client_id));
    const pending = this.outbox.filter((p) => p.room_id === roomId && !storedIds.has(p.client_id));
    return { stored, pending };
  }

  /** The tick of one of the user's own stored messages. @param {Message} message @returns {"Sent"|"Delivered"|"Read"} */
  statusOf(message) {
    const marks = this.marks.get(message.room_id);
    if (marks && marks.read_id >= message.id) return "Read";
    if (marks && marks.delivered_id >= message.id) return "Delivered";
    return "Sent";
  }

  /**
   * Move the other person's markers forward (never back: a slow page must not undo a receipt).
   * @param {number} roomId @param {{delivered_id?: number, read_id?: number}} news
   */
  advance(roomId, news) {
    const old = this.marks.get(roomId) || { delivered_id: 0, read_id: 0 };
    const read_id = Math.max(old.read_id, news.read_id || 0);
    const delivered_id = Math.max(old.delivered_id, news.delivered_id || 0, read_id);
    if (delivered_id === old.delivered_id && read_id === old.read_id) return;
    this.marks.set(roomId, { delivered_id, read_id });
    this.emit("messages", { roomId });
  }

  /** @param {{room_id: number, delivered_id: number, read_id: number}} receipt */
  gotReceipt(receipt) {
    this.advance(receipt.room_id, receipt);
  }

  /** @param {number} roomId @param {string} text */
  send(roomId, text) {
    /** @type {Pending} */
    const pending = { client_id: newId(), room_id: roomId, text, created_at: new Date().toISOString(), status: "sending" };
    this.outbox.push(pending);
    this.save();
    this.emit("messages", { roomId });
    this.transmit(pending);
  }

  /** Send a refused message again, after the ones still waiting. @param {string} clientId */
  retry(clientId) {
    const failed = this.outbox.find((p) => p.client_id === clientId);
    if (!failed) return;
    this.outbox = [...this.outbox.filter((p) => p !== failed), { ...failed, status: "sending", reason: undefined }];
    this.save();
    this.emit("messages", { roomId: failed.room_id });
    this.transmit(this.head());
  }

  /** Take a message out of the outbox (to edit it, or because it is not wanted); return it. @param {string} clientId */
  discard(clientId) {
    const pending = this.outbox.find((p) => p.client_id === clientId) || null;
    this.drop(clientId);
    return pending;
  }

  /** @param {number} roomId @param {number} messageId */
  async markRead(roomId, messageId) {
    const room = this.room(roomId);
    if (room && room.unread) {
      room.unread = 0;
      this.emit("rooms");
    }
    await api("POST", `/api/rooms/${roomId}/read`, { message_id: messageId }).catch(() => {});
  }

  // --- delivery ------------------------------------------------------------------------------

  /** The oldest message still to send (refused ones wait for Retry). */
  head() {
    return this.outbox.find((p) => p.status !== "failed");
  }

  /**
   * Send the oldest unacknowledged message. One at a time, so the server stores them in the order
   * they were written even when some must be resent (rate limit, reconnect).
   * @param {Pending} [pending] the message just queued (sent only if it is the oldest)
   */
  transmit(pending) {
    const head = this.head();
    if (!head || (pending && head !== pending)) return;
    this.signaling.send(chatMessage(head.room_id, head.client_id, head.text));
    // If the socket stays down, HTTP delivers (the server de-duplicates by client_id).
    clearTimeout(this.fallbackTimer);
    this.fallbackTimer = setTimeout(() => this.flushOverHttp(), HTTP_FALLBACK_MS);
  }

  async flushOverHttp() {
    for (const pending of this.outbox.filter((p) => p.status !== "failed")) {
      try {
        const message = await api("POST", `/api/rooms/${pending.room_id}/messages`, {
          client_id: pending.client_id,
          text: pending.text,
        });
        this.acknowledge(pending.client_id, message, false);
      } catch (error) {
        const status = /** @type {any} */ (error).status;
        if (status >= 400 && !TRANSIENT_STATUSES.has(status)) {
          this.fail(pending.client_id, httpReason(status));
        } else {
          clearTimeout(this.fallbackTimer);
          this.fallbackTimer = setTimeout(() => this.flushOverHttp(), HTTP_FALLBACK_MS * 2);
          return;
        }
      }
    }
  }

  /** @param {{client_id: string, message: Message, delivered: boolean}} ack */
  gotAck(ack) {
    this.acknowledge(ack.client_id, ack.message, ack.delivered);
  }

  /** @param {string} clientId @param {Message} message @param {boolean} delivered */
  acknowledge(clientId, message, delivered) {
    if (delivered) this.advance(message.room_id, { delivered_id: message.id });
    const wasHead = this.head()?.client_id === clientId;
    this.outbox = this.outbox.filter((p) => p.client_id !== clientId);
    this.save();
    if (!this.head()) clearTimeout(this.fallbackTimer);
    this.merge(message.room_id, [message]);
    if (wasHead) this.transmit(); // the next one, now the oldest
  }

  /** @param {Message} message */
  gotMessage(message) {
    if (!this.rooms.some((r) => r.id === message.room_id)) {
      this.loadRooms().catch(() => {});
    }
    const room = this.room(message.room_id);
    if (room) {
      room.last_message = message;
      room.last_activity_at = message.created_at;
      if (message.sender.id !== this.user.id && !this.known(message)) room.unread = (room.unread || 0) + 1;
      this.rooms.sort((a, b) => (a.last_activity_at < b.last_activity_at ? 1 : -1));
      this.emit("rooms");
    }
    if (message.sender.id === this.user.id && message.kind === "text") this.acknowledge(message.client_id, message, false);
    else {
      // The server moves a writer's read marker to their own new message: they wrote after it all.
      if (message.kind === "text") this.advance(message.room_id, { read_id: message.id });
      this.merge(message.room_id, [message]);
    }
  }

  /** A call's record with a report card added: it replaces the record shown (same id). @param {Message} message */
  gotReport(message) {
    const room = this.room(message.room_id);
    if (room && room.last_message && room.last_message.id === message.id) {
      room.last_message = message;
      this.emit("rooms");
    }
    this.merge(message.room_id, [message]);
  }

  /** After every (re)connect: resend the outbox, catch up on what was missed. */
  async gotWelcome(/** @type {{online: number[], group_calls?: GroupCall[]}} */ welcome) {
    this.online = new Set(welcome.online);
    this.groupCalls = new Map((welcome.group_calls || []).map((c) => [c.room_id, c]));
    // What was held before this socket: messages it delivers from now on may land first, and
    // catching up from the newest of those would skip the gap before them.
    const held = [...this.messages].map(([roomId, list]) => [roomId, list.at(-1)?.id]);
    this.transmit(); // resend from the oldest unacknowledged message
    await this.loadRooms().catch(() => {});
    for (const [roomId, newest] of held) await this.catchUp(roomId, newest).catch(() => {});
    this.emit("presence");
  }

  /** @param {{user_id: number, online: boolean}} msg */
  gotPresence(msg) {
    if (msg.online) this.online.add(msg.user_id);
    else this.online.delete(msg.user_id);
    // Presence from someone not in the list means they just opened a room with us.
    if (msg.online && !this.knows(msg.user_id)) this.loadRooms().catch(() => {});
    this.emit("presence");
  }

  /** @param {{ref_type?: string, reason: string, message: string}} msg */
  gotError(msg) {
    if (msg.reason === "rate_limited") {
      // Typing faster than the server allows (the frame is dropped unread): wait, then resend.
      if (this.head() && !this.retryTimer) {
        this.retryTimer = setTimeout(() => {
          this.retryTimer = 0;
          this.transmit();
        }, 1000);
      }
      return;
    }
    if (msg.ref_type !== "chat_message") return;
    // Messages go one at a time, so a refusal is about the one in flight: the oldest unsent.
    const head = this.head();
    if (head) this.fail(head.client_id, msg.reason);
  }

  /** Keep a refused message in the outbox with a reason, and move on to the next. @param {string} clientId @param {string} reason */
  fail(clientId, reason) {
    const pending = this.outbox.find((p) => p.client_id === clientId);
    if (!pending) return;
    pending.status = "failed";
    pending.reason = refusal(pending.text, reason);
    this.save();
    this.emit("messages", { roomId: pending.room_id });
    if (this.head()) this.transmit();
    else clearTimeout(this.fallbackTimer);
  }

  /** @param {string} clientId */
  drop(clientId) {
    const wasHead = this.head()?.client_id === clientId;
    this.outbox = this.outbox.filter((p) => p.client_id !== clientId);
    this.save();
    this.emit("messages", {});
    if (wasHead) this.transmit();
  }

  /** @param {Message} message */
  known(message) {
    return (this.messages.get(message.room_id) || []).some((m) => m.id === message.id);
  }

  /** @param {number} roomId @param {Message[]} incoming */
  merge(roomId, incoming) {
    const byId = new Map((this.messages.get(roomId) || []).map((m) => [m.id, m]));
    for (const message of incoming) byId.set(message.id, message);
    this.messages.set(roomId, [...byId.values()].sort((a, b) => a.id - b.id));
    this.emit("messages", { roomId });
  }

  save() {
    localStorage.setItem(this.key, JSON.stringify(this.outbox));
  }

  /** @param {string} type @param {object} [detail] */
  emit(type, detail = {}) {
    this.dispatchEvent(new CustomEvent(type, { detail }));
  }
}
