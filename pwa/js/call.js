// Calls: a CallManager holds this page's call (at most one live Call, livecall.js, with its Peers)
// and the one ringing in; it turns taps into signals and the server's messages into call states.
// No DOM here: views read the Call and listen to the manager's events ("call", "change", "ended",
// "cleared", "incoming", "incoming_end", "unsupported", "remote_media").

import { Call } from "./livecall.js";
import { callAnswer, callEnd, callOffer, callRejected, callResume, newId } from "./protocol.js";
import { forgetRejoin, readRejoin, readSince, rememberRejoin, sendKeptReports } from "./rejoin.js";

/** @typedef {import("./livecall.js").User} User */
/** @typedef {import("./livecall.js").EndReason} EndReason */
/** @typedef {{callId: string, roomId: number, from: User, media: "audio"|"video", sdp: string, candidates: RTCIceCandidateInit[], timer: number}} Incoming */

const LOCAL_RING_TIMEOUT_MS = 35000;
const ENDED_SHOWN_MS = 2500;

/** Whether this browser can make and take calls at all (Debian's WebKitGTK is built without WebRTC). */
export const canCall = typeof RTCPeerConnection === "function";

export class CallManager extends EventTarget {
  /**
   * @param {{signaling: import("./signaling.js").SignalingClient,
   *          iceConfig: () => Promise<import("./peer.js").IceConfig>}} deps
   */
  constructor({ signaling, iceConfig }) {
    super();
    this.signaling = signaling;
    this.iceConfig = iceConfig;
    /** @type {Call|null} */
    this._call = null;
    /** @type {Incoming|null} */
    this._incoming = null;
    /** @type {{audioDeviceId?: string, videoDeviceId?: string}} the person's chosen devices */
    this.devices = {};
    /** @type {Incoming|null} an offer from the peer we are calling at the same moment (glare) */
    this.glare = null;
    /** @type {[string, (e: any) => void][]} */
    this.handlers = [
      ["call_offer", (e) => this.gotOffer(e.detail)],
      ["call_ringing", (e) => this.gotRinging(e.detail)],
      ["call_answer", (e) => this.gotAnswer(e.detail)],
      ["ice_candidate", (e) => this.gotRemoteIce(e.detail)],
      ["call_description", (e) => this.gotDescription(e.detail)],
      ["call_media", (e) => this.gotMedia(e.detail)],
      ["call_rejected", (e) => this.gotRejected(e.detail)],
      ["call_cancelled", (e) => this.gotOver(e.detail.call_id, "cancelled")],
      ["call_timeout", (e) => this.gotOver(e.detail.call_id, "timeout")],
      ["call_answered_elsewhere", (e) => this.gotOver(e.detail.call_id, "answered_elsewhere")],
      ["call_busy", (e) => this.gotOver(e.detail.call_id, "busy")],
      ["call_end", (e) => this.gotEnd(e.detail)],
      ["call_merged", (e) => this.gotMerged(e.detail)],
      ["call_resumed", (e) => this.gotResumed(e.detail)],
      ["error", (e) => this.gotError(e.detail)],
      ["welcome", (e) => this.gotWelcome(e.detail)],
      ["state", (e) => this.gotSocketState(e.detail.state)],
    ];
    for (const [type, handler] of this.handlers) signaling.addEventListener(type, handler);
    // A live call survives a dropped socket only for the server's grace period: retry sooner.
    signaling.urgent = () => Boolean(this._call && this._call.state !== "ended");
  }

  get call() {
    return this._call;
  }

  get incoming() {
    return this._incoming;
  }

  /** Stop listening (sign-out); ends any live call. */
  dispose() {
    if (this._call) this.end();
    if (this._incoming) this.decline();
    for (const [type, handler] of this.handlers) this.signaling.removeEventListener(type, handler);
  }

  /** @param {{id: string, roomId: number, peer: User, media: "audio"|"video", role: "caller"|"callee"}} init */
  newCall(init) {
    return new Call({ ...init, signaling: this.signaling, iceConfig: this.iceConfig, changed: (call) => this.changed(call) });
  }

  // --- intents ---------------------------------------------------------------------------

  /** @param {{roomId: number, peer: User, media: "audio"|"video"}} what */
  async start({ roomId, peer, media }) {
    if (!canCall) throw new Error("This browser can't make calls.");
    if (this._call && this._call.state !== "ended") throw new Error("already in a call");
    const call = this.newCall({ id: newId(), roomId, peer, media, role: "caller" });
    this.setCall(call);
    try {
      const other = await call.prepare(this.devices);
      if (this._call !== call || !other) return call;
      const sdp = await other.offer();
      if (this._call !== call || sdp === null) return call;
      if (!this.signaling.send(callOffer(call.id, roomId, peer.id, media, sdp))) {
        throw new Error("You are offline: the call could not be placed.");
      }
      other.sendCandidates();
    } catch (error) {
      this.fail(call, error);
    }
    return call;
  }

  async accept() {
    const incoming = this._incoming;
    if (!incoming) return;
    this.clearIncoming("accepted");
    if (this._call) this.end();
    const call = this.newCall({
      id: incoming.callId,
      roomId: incoming.roomId,
      peer: incoming.from,
      media: incoming.media,
      role: "callee",
    });
    call.pendingCandidates.push(...incoming.candidates);
    this.setCall(call);
    try {
      const other = await call.prepare(this.devices);
      if (this._call !== call || !other) return;
      const sdp = await other.answer(incoming.sdp);
      if (this._call !== call || sdp === null) return;
      this.signaling.send(callAnswer(call.id, sdp));
      other.sendCandidates();
    } catch (error) {
      this.fail(call, error);
    }
  }

  decline() {
    const incoming = this._incoming;
    if (!incoming) return;
    this.signaling.send(callRejected(incoming.callId, "declined"));
    this.clearIncoming("declined");
  }

  end() {
    const call = this._call;
    if (!call || call.state === "ended") return;
    this.signaling.send(callEnd(call.id));
    this.finish(call, "hangup");
  }

  // In-call controls go to the live call (livecall.js); without one they do nothing.
  /** @param {boolean} muted */
  setMuted(muted) { this._call?.setMuted(muted); }
  /** @param {boolean} off */
  setCameraOff(off) { this._call?.setCameraOff(off); }
  async switchCamera() { await this._call?.switchCamera(); }
  /** Share a screen instead of the camera, and back. */
  async shareScreen() { await this._call?.shareScreen(); }
  async stopSharing() { await this._call?.stopSharing(); }
  /** Restart ICE now (also used when the network changed). */
  async restartIce() { await this._call?.restartIce(); }

  /** Numbers for tests and the quality readout (stats.js); null without a connection. */
  async stats() {
    return this._call ? this._call.stats() : null;
  }

  // --- after a reload ----------------------------------------------------------------------

  /**
   * Take up a live call this tab had before it reloaded: new media, a new peer connection, and a
   * restart offer that makes the other side replace its connection.
   * @param {import("./protocol.js").CallInfo} info
   */
  async rejoin(info) {
    const call = this.newCall({ id: info.call_id, roomId: info.room_id, peer: info.peer, media: info.media, role: info.role });
    call.state = "reconnecting";
    call.polite = info.polite;
    call.connectedAt = readSince();
    this.setCall(call);
    this.signaling.send(callResume(call.id)); // binds this socket to the call before the offer
    await call.rejoinNow(this.devices);
  }

  /** Get media again and rejoin (the "Rejoin call" tap). */
  async rejoinNow() {
    if (this._call) await this._call.rejoinNow(this.devices);
  }

  // --- what the server says ----------------------------------------------------------------

  /** @param {import("./protocol.js").CallOfferIn} msg */
  gotOffer(msg) {
    /** @type {Incoming} */
    const incoming = {
      callId: msg.call_id,
      roomId: msg.room_id,
      from: msg.from,
      media: msg.media,
      sdp: msg.sdp,
      candidates: [],
      timer: 0,
    };
    if (!canCall) {
      // Never ring in vain: the caller learns at once, and a view tells this person who called.
      this.signaling.send(callRejected(msg.call_id, "unsupported"));
      this.dispatchEvent(new CustomEvent("unsupported", { detail: incoming }));
      return;
    }
    const call = this._call;
    if (call && call.role === "caller" && call.peer.id === msg.from.id && (call.state === "calling" || call.state === "ringing")) {
      this.glare = incoming; // both called each other: the server will merge (call_merged)
      return;
    }
    if ((call && call.state !== "ended") || this._incoming) {
      this.signaling.send(callRejected(msg.call_id, "busy"));
      return;
    }
    incoming.timer = setTimeout(() => {
      if (this._incoming === incoming) {
        this.signaling.send(callRejected(incoming.callId, "timeout"));
        this.clearIncoming("timeout");
      }
    }, LOCAL_RING_TIMEOUT_MS);
    this._incoming = incoming;
    this.dispatchEvent(new CustomEvent("incoming", { detail: incoming }));
  }

  /** @param {{call_id: string, into: string}} msg */
  async gotMerged(msg) {
    const call = this._call;
    const glare = this.glare;
    this.glare = null;
    if (!call || call.id !== msg.call_id) return;
    this.finish(call, "hangup", { quiet: true });
    if (glare && glare.callId === msg.into) {
      this._incoming = glare;
      await this.accept();
    }
  }

  /** @param {{call_id: string, polite: boolean}} msg */
  gotRinging(msg) {
    const call = this.mine(msg.call_id);
    if (!call || call.state !== "calling") return;
    call.state = "ringing";
    this.changed(call);
  }

  /** @param {import("./protocol.js").CallAnswerIn} msg */
  async gotAnswer(msg) {
    const call = this.mine(msg.call_id);
    const other = call && call.other;
    if (!call || !other || other.closed || other.negotiated) return;
    call.state = "connecting";
    call.setPolite(Boolean(msg.polite));
    this.changed(call);
    try {
      await other.accept(msg.sdp);
    } catch (error) {
      this.fail(call, error);
    }
  }

  /** @param {import("./protocol.js").IceIn} msg */
  async gotRemoteIce(msg) {
    if (!msg.candidate || !msg.candidate.candidate) return;
    if (this._incoming && this._incoming.callId === msg.call_id) {
      this._incoming.candidates.push(msg.candidate);
      return;
    }
    if (this.glare && this.glare.callId === msg.call_id) {
      this.glare.candidates.push(msg.candidate);
      return;
    }
    const call = this.mine(msg.call_id);
    if (!call) return;
    // Signals do not name a participant yet: a direct call's one Peer is the other person's.
    const other = call.other;
    if (other) await other.addCandidate(msg.candidate);
    else call.pendingCandidates.push(msg.candidate); // its Peer is still being built
  }

  /** @param {import("./protocol.js").DescriptionIn} msg */
  async gotDescription(msg) {
    const call = this.mine(msg.call_id);
    if (!call) return;
    const description = msg.description;
    const other = call.other;
    if (msg.restart && description.type === "offer") {
      // Both reloaded at once: the polite side's new connection gives way to the impolite side's.
      if (other && other.rejoining && !call.polite) return;
      try {
        await call.replaceOther(description.sdp);
      } catch (error) {
        this.fail(call, error);
      }
      return;
    }
    if (other) await other.gotDescription(description);
  }

  /** The other side muted, unmuted or turned its camera off or on. @param {import("./protocol.js").CallMediaIn} msg */
  gotMedia(msg) {
    const call = this.mine(msg.call_id);
    if (!call) return;
    call.remoteMedia = { audio: msg.audio, video: msg.video };
    this.dispatchEvent(new CustomEvent("remote_media", { detail: call }));
    this.changed(call);
  }

  /** @param {{call_id: string, reason: "declined"|"busy"|"timeout"|"unsupported"}} msg */
  gotRejected(msg) {
    if (this._incoming && this._incoming.callId === msg.call_id) {
      this.clearIncoming("declined"); // declined on another of my devices
      return;
    }
    const call = this.mine(msg.call_id);
    if (call && msg.reason === "unsupported") call.error = `${call.peer.username} cannot take calls on this device.`;
    if (call) this.finish(call, msg.reason);
  }

  /** @param {string} callId @param {"cancelled"|"timeout"|"answered_elsewhere"|"busy"} reason */
  gotOver(callId, reason) {
    if (this._incoming && this._incoming.callId === callId) {
      this.clearIncoming(reason);
      return;
    }
    const call = this.mine(callId);
    if (call && reason !== "answered_elsewhere") this.finish(call, reason === "cancelled" ? "cancelled" : reason);
  }

  /** @param {import("./protocol.js").CallEndIn} msg */
  gotEnd(msg) {
    if (this._incoming && this._incoming.callId === msg.call_id) {
      this.clearIncoming("cancelled");
      return;
    }
    const call = this.mine(msg.call_id);
    if (call) this.finish(call, msg.reason === "hangup" ? "remote_hangup" : "disconnected");
  }

  /** @param {{call_id: string, polite: boolean}} msg */
  gotResumed(msg) {
    const call = this.mine(msg.call_id);
    if (!call) return;
    call.setPolite(msg.polite);
    call.resumed(); // if the network changed meanwhile, a restart gets new paths
    this.changed(call);
  }

  /** @param {import("./protocol.js").ErrorIn} msg */
  gotError(msg) {
    const call = msg.call_id ? this.mine(msg.call_id) : null;
    if (!call) return;
    if (msg.ref_type === "call_offer" || msg.reason === "busy") {
      call.error = msg.reason === "busy" ? "You are already in a call." : msg.message;
      this.finish(call, "error");
    }
  }

  /** After every (re)connect: resume the live call, or learn that it is gone. */
  gotWelcome(/** @type {import("./protocol.js").Welcome} */ msg) {
    sendKeptReports(msg.calls, (frame) => this.signaling.send(frame)); // of calls ended while it was down
    const call = this._call;
    if (!call || call.state === "ended") {
      const mine = readRejoin();
      const live = mine && msg.calls.find((c) => c.call_id === mine && c.state === "active");
      if (live) this.rejoin(live);
      else if (mine) {
        forgetRejoin();
        // Reloaded while our own call was ringing: the offer died with the page, so cancel it.
        const ringing = msg.calls.find((c) => c.call_id === mine && c.state === "ringing" && c.role === "caller");
        if (ringing) this.signaling.send(callEnd(ringing.call_id));
      }
      return;
    }
    const listed = msg.calls.some((c) => c.call_id === call.id);
    if (listed) this.signaling.send(callResume(call.id));
    else this.finish(call, "disconnected");
  }

  gotSocketState() {
    const call = this._call;
    if (call && call.state !== "ended") this.changed(call); // views show "Reconnecting…"
  }

  // --- helpers -----------------------------------------------------------------------------

  /** @param {string} callId */
  mine(callId) {
    const call = this._call;
    return call && call.id === callId && call.state !== "ended" ? call : null;
  }

  /** @param {Call} call */
  setCall(call) {
    this._call = call;
    rememberRejoin(call.id, call.connectedAt);
    this.dispatchEvent(new CustomEvent("call", { detail: call }));
  }

  /** @param {Call} call */
  changed(call) {
    if (this._call === call) this.dispatchEvent(new CustomEvent("change", { detail: call }));
  }

  /** @param {Call} call @param {any} error */
  fail(call, error) {
    if (this._call !== call || call.state === "ended") return;
    call.error = (error && error.message) || String(error);
    if (call.peers.size || call.role === "callee") this.signaling.send(callEnd(call.id));
    this.finish(call, "error");
  }

  /** @param {string} reason */
  clearIncoming(reason) {
    const incoming = this._incoming;
    if (!incoming) return;
    clearTimeout(incoming.timer);
    this._incoming = null;
    this.dispatchEvent(new CustomEvent("incoming_end", { detail: { callId: incoming.callId, reason } }));
  }

  /**
   * End the call here (its tracks, timers and connections go), show it ended, then clear it.
   * @param {Call} call @param {EndReason} reason @param {{quiet?: boolean}} [options]
   */
  finish(call, reason, { quiet = false } = {}) {
    if (call.state === "ended") return;
    call.end(reason);
    if (readRejoin() === call.id) forgetRejoin();
    if (quiet) {
      if (this._call === call) this._call = null;
      return;
    }
    this.changed(call);
    this.dispatchEvent(new CustomEvent("ended", { detail: { call, reason } }));
    setTimeout(() => {
      if (this._call === call) {
        this._call = null;
        this.dispatchEvent(new CustomEvent("cleared", { detail: call }));
      }
    }, ENDED_SHOWN_MS);
  }
}
