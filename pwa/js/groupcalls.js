// Group calls: a GroupCallManager holds this page's group call (at most one GroupCall, groupcall.js),
// the group ring coming in, and the calls live in the user's groups; it turns taps into signals and
// the server's frames into the call's state. No DOM: views listen to its events ("call", "change",
// "ended", "cleared", "incoming", "incoming_end", "live").

import { GroupCall } from "./groupcall.js";
import { callResume, groupCallJoin, groupCallLeave, groupCallStart, newId } from "./protocol.js";

/** @typedef {import("./groupcall.js").User} User */
/** @typedef {{call_id: string, room_id: number, media: "audio"|"video", state: "ringing"|"active"|"ended", started_by: User, participants: User[], topology?: "mesh"|"sfu"}} GroupCallState */
/** @typedef {{callId: string, roomId: number, from: User, media: "audio"|"video", group: true, timer: number}} GroupRing */

const LOCAL_RING_TIMEOUT_MS = 35000;
const ENDED_SHOWN_MS = 2500;
const REJOIN_KEY = "parley.groupcall"; // this tab's group call, so a reload takes it up again

/** The sender of a relayed signal: the server fills `from` (a user id, or a User). @param {any} msg @returns {number|null} */
const sender = (msg) => (msg.from && typeof msg.from === "object" ? msg.from.id : typeof msg.from === "number" ? msg.from : null);

export class GroupCallManager extends EventTarget {
  /**
   * @param {{signaling: import("./signaling.js").SignalingClient, user: User,
   *          iceConfig: () => Promise<import("./peer.js").IceConfig>}} deps
   */
  constructor({ signaling, user, iceConfig }) {
    super();
    Object.assign(this, { signaling, user, iceConfig });
    /** @type {GroupCall|null} */
    this._call = null;
    /** @type {GroupRing|null} */
    this._incoming = null;
    /** @type {Map<number, GroupCallState>} the live call of each of the user's groups, by room */
    this.live = new Map();
    /** @type {{audioDeviceId?: string, videoDeviceId?: string}} the person's chosen devices */
    this.devices = {};
    /** @type {() => boolean} whether this page is busy with another (direct) call */
    this.busy = () => false;
    /** @type {[string, (e: any) => void][]} */
    this.handlers = [
      ["group_call_ring", (e) => this.gotRing(e.detail)],
      ["group_call_state", (e) => this.gotState(e.detail)],
      ["group_call_joined", (e) => this.gotJoined(e.detail)],
      ["call_description", (e) => this.relayed(e.detail, (c, from) => c.gotDescription(from, e.detail.description, Boolean(e.detail.restart)))],
      ["ice_candidate", (e) => this.relayed(e.detail, (c, from) => e.detail.candidate && c.gotCandidate(from, e.detail.candidate))],
      ["sfu_description", (e) => this.mine(e.detail.call_id)?.gotSfu(e.detail)],
      ["call_media", (e) => this.relayed(e.detail, (c, from) => c.gotMedia(from, e.detail))],
      ["call_answered_elsewhere", (e) => this.clearIncoming(e.detail.call_id, "answered_elsewhere")],
      ["call_end", (e) => this.gotEnd(e.detail)],
      ["call_resumed", (e) => this.mine(e.detail.call_id)?.networkChanged("signaling")],
      ["error", (e) => this.gotError(e.detail)],
      ["welcome", (e) => this.gotWelcome(e.detail)],
      ["state", () => this._call && this.changed(this._call)],
    ];
    for (const [type, handler] of this.handlers) signaling.addEventListener(type, handler);
    const urgent = signaling.urgent; // a live group call survives a drop only for the grace period too
    signaling.urgent = () => urgent() || Boolean(this._call && this._call.state !== "ended");
  }

  get call() {
    return this._call;
  }

  get incoming() {
    return this._incoming;
  }

  /** Stop listening (sign-out); leaves any live call. */
  dispose() {
    this.leave();
    this.decline();
    for (const [type, handler] of this.handlers) this.signaling.removeEventListener(type, handler);
  }

  // --- intents ---------------------------------------------------------------------------

  /** Start a group call in `roomId` (or join the one live there). @param {number} roomId @param {"audio"|"video"} media */
  async start(roomId, media) {
    const live = this.live.get(roomId);
    if (live) return this.join(roomId);
    const call = this.begin({ id: newId(), roomId, media, role: "caller" });
    await this.prepared(call, () => this.signaling.send(groupCallStart(call.id, roomId, media)));
  }

  /** Join the call live in `roomId` (Join call). @param {number} roomId */
  async join(roomId) {
    const live = this.live.get(roomId);
    if (!live) throw new Error("There is no call to join in this group any more.");
    if (this._call && this._call.state !== "ended" && this._call.id === live.call_id) return;
    const call = this.begin({ id: live.call_id, roomId, media: live.media, role: "callee" });
    call.setParticipants(live.participants);
    await this.prepared(call, () => this.signaling.send(groupCallJoin(call.id)));
  }

  /** Answer the group ring: join its call. */
  async accept() {
    const ring = this._incoming;
    if (!ring) return;
    this.clearIncoming(ring.callId, "accepted");
    if (!this.live.has(ring.roomId)) this.live.set(ring.roomId, liveFrom(ring));
    await this.join(ring.roomId);
  }

  decline() {
    const ring = this._incoming;
    if (!ring) return;
    this.signaling.send(groupCallLeave(ring.callId));
    this.clearIncoming(ring.callId, "declined");
  }

  /** Leave call: the others carry on. */
  leave() {
    const call = this._call;
    if (!call || call.state === "ended") return;
    this.signaling.send(groupCallLeave(call.id));
    this.finish(call, "left");
  }

  /** @param {boolean} muted */
  setMuted(muted) { this._call?.setMuted(muted); }
  /** @param {boolean} off */
  setCameraOff(off) { this._call?.setCameraOff(off); }

  /** Each participant's connection and stats, by username (tests); null without a call. */
  async stats() {
    return this._call ? this._call.stats() : null;
  }

  // --- what the server says ----------------------------------------------------------------

  /** @param {{call_id: string, room_id: number, from: User, media: "audio"|"video"}} msg */
  gotRing(msg) {
    if ((this._call && this._call.state !== "ended") || this._incoming || this.busy()) return; // busy: let it ring elsewhere
    /** @type {GroupRing} */
    const ring = { callId: msg.call_id, roomId: msg.room_id, from: msg.from, media: msg.media, group: true, timer: 0 };
    // Stop ringing here after a while; the call goes on for those who joined, Join call stays.
    ring.timer = setTimeout(() => this.clearIncoming(ring.callId, "timeout"), LOCAL_RING_TIMEOUT_MS);
    this._incoming = ring;
    this.dispatchEvent(new CustomEvent("incoming", { detail: ring }));
  }

  /** @param {GroupCallState} msg */
  gotState(msg) {
    if (msg.state === "ended") this.live.delete(msg.room_id);
    else this.live.set(msg.room_id, msg);
    this.dispatchEvent(new CustomEvent("live", { detail: msg }));
    const ring = this._incoming;
    if (ring && ring.callId === msg.call_id) {
      if (msg.state === "ended") this.clearIncoming(ring.callId, "cancelled");
      else if (msg.participants.some((p) => p.id === this.user.id)) this.clearIncoming(ring.callId, "answered_elsewhere");
    }
    const call = this.mine(msg.call_id);
    if (!call) return;
    if (msg.state === "ended") this.finish(call, "ended");
    else call.setParticipants(msg.participants);
  }

  /** This socket is in the call (joined, started, or resumed): offer to everyone already there. @param {GroupCallState} msg */
  gotJoined(msg) {
    const call = this._call;
    if (!call || call.state === "ended" || call.roomId !== msg.room_id) return;
    call.id = msg.call_id; // a start that found a live call joined that one
    remember(call);
    const others = msg.participants.filter((p) => p.id !== this.user.id);
    if (msg.topology === "sfu") {
      for (const user of others) call.participants.set(user.id, user);
      call.useSfu().catch((error) => console.warn("sfu call", error));
      call.update();
      return;
    }
    for (const user of others) {
      const peer = call.peers.get(user.id);
      if (peer && !peer.closed && call.resuming) peer.networkChanged("signaling"); // kept across a socket drop
      else if (!peer || peer.closed) call.offerTo(user);
    }
    for (const user of others) call.participants.set(user.id, user);
    call.update();
  }

  /** @param {any} msg @param {(call: GroupCall, from: number) => any} act */
  relayed(msg, act) {
    const call = this.mine(msg.call_id);
    const from = sender(msg);
    if (call && from !== null) Promise.resolve(act(call, from)).catch((error) => console.warn("group call signal", error));
  }

  /** @param {{call_id: string, reason?: string}} msg */
  gotEnd(msg) {
    this.clearIncoming(msg.call_id, "cancelled");
    const call = this.mine(msg.call_id);
    if (call && String(msg.reason).startsWith("sfu_")) {
      call.error = msg.reason === "sfu_restarted" ? "The call server restarted, so the call ended." : "The call server could not be reached.";
      this.finish(call, "error");
    } else if (call) this.finish(call, msg.reason === "removed" ? "removed" : "ended");
  }

  /** @param {{reason: string, message: string, call_id?: string, ref_type?: string}} msg */
  gotError(msg) {
    const call = msg.call_id ? this.mine(msg.call_id) : null;
    if (!call) return;
    if (msg.reason === "full") {
      call.error = "This call is full.";
      this.finish(call, "full");
    } else if (String(msg.ref_type || "").startsWith("group_call") || msg.ref_type === "call_resume") {
      call.error = msg.message;
      this.finish(call, "error");
    }
  }

  /** After every (re)connect: the live calls, and resume ours (or take it up after a reload). */
  gotWelcome(/** @type {{group_calls?: GroupCallState[]}} */ msg) {
    const calls = msg.group_calls || [];
    this.live = new Map(calls.filter((c) => c.state !== "ended").map((c) => [c.room_id, c]));
    this.dispatchEvent(new CustomEvent("live", { detail: null }));
    const call = this._call;
    if (call && call.state !== "ended") {
      const listed = this.live.get(call.roomId);
      if (listed && listed.call_id === call.id) {
        call.resuming = true;
        this.signaling.send(callResume(call.id));
      } else this.finish(call, "ended");
      return;
    }
    const kept = recall();
    const live = kept && this.live.get(kept.roomId);
    if (!kept || !live || live.call_id !== kept.id || !live.participants.some((p) => p.id === this.user.id)) {
      forget();
      return;
    }
    // This tab reloaded mid-call: new media, then restart offers that replace the others' connections.
    const again = this.begin({ id: kept.id, roomId: kept.roomId, media: live.media, role: "callee" });
    Object.assign(again, { resuming: true, connectedAt: kept.since, state: "reconnecting" });
    again.setParticipants(live.participants);
    this.prepared(again, () => this.signaling.send(callResume(again.id)));
  }

  // --- helpers -----------------------------------------------------------------------------

  /** @param {{id: string, roomId: number, media: "audio"|"video", role: "caller"|"callee"}} init */
  begin(init) {
    if (this._call && this._call.state !== "ended") throw new Error("You are already in a call.");
    const call = new GroupCall({
      ...init,
      me: this.user,
      signaling: this.signaling,
      iceConfig: this.iceConfig,
      changed: (c) => this.changed(c),
    });
    this._call = call;
    remember(call);
    this.dispatchEvent(new CustomEvent("call", { detail: call }));
    return call;
  }

  /** Get media, then send what puts this socket in the call. @param {GroupCall} call @param {() => boolean} send */
  async prepared(call, send) {
    try {
      if (!(await call.prepare(this.devices)) || this._call !== call) return;
      if (!send()) throw new Error("You are offline: the call could not be joined.");
    } catch (error) {
      call.error = (error && error.message) || String(error);
      this.signaling.send(groupCallLeave(call.id));
      this.finish(call, "error");
    }
  }

  /** @param {string} callId */
  mine(callId) {
    const call = this._call;
    return call && call.id === callId && call.state !== "ended" ? call : null;
  }

  /** @param {GroupCall} call */
  changed(call) {
    if (this._call !== call) return;
    if (call.connectedAt !== null) remember(call);
    this.dispatchEvent(new CustomEvent("change", { detail: call }));
  }

  /** @param {string} callId @param {string} reason */
  clearIncoming(callId, reason) {
    const ring = this._incoming;
    if (!ring || ring.callId !== callId) return;
    clearTimeout(ring.timer);
    this._incoming = null;
    this.dispatchEvent(new CustomEvent("incoming_end", { detail: { callId, reason } }));
  }

  /** End the call here, show it ended for a moment, then clear it. @param {GroupCall} call @param {import("./groupcall.js").GroupEndReason} reason */
  finish(call, reason) {
    if (call.state === "ended") return;
    call.end(reason);
    forget();
    this.dispatchEvent(new CustomEvent("ended", { detail: { call, reason } }));
    setTimeout(() => {
      if (this._call !== call) return;
      this._call = null;
      this.dispatchEvent(new CustomEvent("cleared", { detail: call }));
    }, ENDED_SHOWN_MS);
  }
}

/** A live-call entry from a ring, until the server's state arrives. @param {GroupRing} ring @returns {GroupCallState} */
function liveFrom(ring) {
  return { call_id: ring.callId, room_id: ring.roomId, media: ring.media, state: "ringing", started_by: ring.from, participants: [ring.from] };
}

/** @param {GroupCall} call */
function remember(call) {
  try {
    sessionStorage.setItem(REJOIN_KEY, JSON.stringify({ id: call.id, roomId: call.roomId, since: call.connectedAt }));
  } catch {
    // storage refused (private mode): a reload then drops the call
  }
}

/** @returns {{id: string, roomId: number, since: number|null}|null} */
function recall() {
  try {
    return JSON.parse(sessionStorage.getItem(REJOIN_KEY) || "null");
  } catch {
    return null;
  }
}

function forget() {
  try {
    sessionStorage.removeItem(REJOIN_KEY);
  } catch {
    // nothing to forget
  }
}

/**
 * What the ringer follows: a direct call's ringing or a group's, whichever this page has.
 * @param {import("./call.js").CallManager} calls @param {GroupCallManager} groups
 */
export function ringSource(calls, groups) {
  return {
    get incoming() {
      return calls.incoming || groups.incoming;
    },
    get call() {
      return calls.call || groups.call;
    },
    /** @param {string} type @param {() => void} listener */
    addEventListener(type, listener) {
      calls.addEventListener(type, listener);
      groups.addEventListener(type, listener);
    },
  };
}
