// Calls: a CallManager owns at most one live Call and its RTCPeerConnection. No DOM here:
// views read the Call and listen to the manager's events.

import { getMedia, otherCamera } from "./media.js";
import {
  callAnswer,
  callDescription,
  callEnd,
  callMedia,
  callOffer,
  callRejected,
  callResume,
  iceCandidate,
  newId,
} from "./protocol.js";
import { securityCode } from "./securitycode.js";

/** @typedef {"idle"|"calling"|"ringing"|"incoming"|"connecting"|"connected"|"reconnecting"|"ended"} CallState */
/** @typedef {"hangup"|"remote_hangup"|"declined"|"busy"|"timeout"|"unsupported"|"cancelled"|"disconnected"|"failed"|"error"} EndReason */
/** @typedef {{id: number, username: string}} User */
/** @typedef {{callId: string, roomId: number, from: User, media: "audio"|"video", sdp: string, candidates: RTCIceCandidateInit[], timer: number}} Incoming */

const RESTART_AFTER_MS = 1500; // a "disconnected" path gets this long to heal by itself
const RETRY_GAP_MS = 2000; // between ICE restarts while the path stays down
const LOCAL_RING_TIMEOUT_MS = 35000;
const ENDED_SHOWN_MS = 2500;
const CREDENTIAL_MARGIN_MS = 60000;
const QUALITY_EVERY_MS = 2000; // no inbound bytes for one interval reads as "No media"
const REJOIN_KEY = "parley.call"; // this tab's live call, so a reload (not another device) rejoins it

/** Whether this browser can make and take calls at all (Debian's WebKitGTK is built without WebRTC). */
export const canCall = typeof RTCPeerConnection === "function";

/** @typedef {"good"|"fair"|"poor"|"no_media"|"reconnecting"} QualityLabel */

/** Detach every handler, then close: no late event of an old connection acts on the call. @param {RTCPeerConnection | null} pc */
function closePeer(pc) {
  if (!pc) return;
  pc.onicecandidate = null;
  pc.ontrack = null;
  pc.onconnectionstatechange = null;
  pc.oniceconnectionstatechange = null;
  pc.onnegotiationneeded = null;
  pc.close();
}

export class Call {
  /** @param {{id: string, roomId: number, peer: User, media: "audio"|"video", role: "caller"|"callee"}} init */
  constructor({ id, roomId, peer, media, role }) {
    this.id = id;
    this.roomId = roomId;
    this.peer = peer;
    this.media = media;
    this.role = role;
    /** @type {CallState} */
    this.state = role === "caller" ? "calling" : "connecting";
    this.polite = role === "callee";
    /** @type {MediaStream|null} */
    this.localStream = null;
    /** @type {MediaStream|null} */
    this.remoteStream = null;
    this.muted = false;
    this.cameraOff = false;
    /** What the other side sends, from its `call_media`: microphone and camera on. */
    this.remoteMedia = { audio: true, video: media === "video" };
    this.facingMode = "user";
    /** @type {number|null} */
    this.connectedAt = null;
    /** @type {EndReason|null} */
    this.endReason = null;
    /** @type {string|null} */
    this.error = null;
    /** @type {string|null} */
    this.warning = null;
    /** @type {{rttMs: number|null, bitrateKbps: number|null, packetsLostPct: number|null, label: QualityLabel}|null} */
    this.quality = null;
    /** @type {RTCPeerConnection|null} */
    this.pc = null;
    this.negotiated = false; // the first offer/answer is done; later ones are perfect negotiation
    this.makingOffer = false;
    this.ignoreOffer = false;
    /** @type {RTCIceCandidateInit[]} */
    this.remoteQueue = [];
    /** @type {RTCIceCandidateInit[]} */
    this.localQueue = [];
    this.canSendCandidates = false;
    this.configFetchedAt = 0;
    this.ttlMs = 0;
    this.timers = { restart: 0, quality: 0 };
    this.lastRestart = 0;
    this.downSince = 0;
    this.lastBytes = { at: 0, bytes: 0 };
    /** True from sending a restart offer (a new peer connection after a reload) until its answer. */
    this.rejoining = false;
    /** Rejoining needs a tap (media could not be had without one): views show "Rejoin call". */
    this.rejoinable = false;
    /** @type {string|null} the other side's restart offer, kept until this side has media to answer it */
    this.pendingOffer = null;
    /** @type {import("./securitycode.js").SecurityCode|null} from both DTLS fingerprints, once connected */
    this.securityCode = null;
    /**
     * The other side's last description as it came, for the security code: a browser's own
     * remoteDescription is re-serialised (Chromium keeps one of several fingerprints).
     * @type {string|null}
     */
    this.remoteSdp = null;
  }
}

export class CallManager extends EventTarget {
  /**
   * @param {{signaling: import("./signaling.js").SignalingClient,
   *          iceConfig: () => Promise<{iceServers: RTCIceServer[], iceTransportPolicy?: RTCIceTransportPolicy, ttl?: number}>}} deps
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

  // --- intents ---------------------------------------------------------------------------

  /** @param {{roomId: number, peer: User, media: "audio"|"video"}} what */
  async start({ roomId, peer, media }) {
    if (!canCall) throw new Error("This browser can't make calls.");
    if (this._call && this._call.state !== "ended") throw new Error("already in a call");
    const call = new Call({ id: newId(), roomId, peer, media, role: "caller" });
    this.setCall(call);
    try {
      await this.prepare(call);
      if (this._call !== call) return call;
      const pc = /** @type {RTCPeerConnection} */ (call.pc);
      await pc.setLocalDescription(await pc.createOffer());
      if (this._call !== call) return call;
      const sdp = /** @type {RTCSessionDescription} */ (pc.localDescription).sdp;
      if (!this.signaling.send(callOffer(call.id, roomId, peer.id, media, sdp))) {
        throw new Error("You are offline: the call could not be placed.");
      }
      call.canSendCandidates = true;
      this.flushLocalCandidates(call);
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
    const call = new Call({
      id: incoming.callId,
      roomId: incoming.roomId,
      peer: incoming.from,
      media: incoming.media,
      role: "callee",
    });
    call.remoteQueue.push(...incoming.candidates);
    this.setCall(call);
    try {
      await this.prepare(call);
      if (this._call !== call) return;
      const pc = /** @type {RTCPeerConnection} */ (call.pc);
      await this.setRemote(call, pc, { type: "offer", sdp: incoming.sdp });
      await this.flushRemoteCandidates(call);
      await pc.setLocalDescription(await pc.createAnswer());
      if (this._call !== call) return;
      const sdp = /** @type {RTCSessionDescription} */ (pc.localDescription).sdp;
      this.signaling.send(callAnswer(call.id, sdp));
      call.negotiated = true;
      call.canSendCandidates = true;
      this.flushLocalCandidates(call);
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

  /** @param {boolean} muted */
  setMuted(muted) {
    const call = this._call;
    if (!call || !call.localStream) return;
    for (const track of call.localStream.getAudioTracks()) track.enabled = !muted;
    call.muted = muted;
    this.changed(call);
    this.sendMedia(call);
  }

  /** @param {boolean} off */
  setCameraOff(off) {
    const call = this._call;
    if (!call || !call.localStream) return;
    for (const track of call.localStream.getVideoTracks()) track.enabled = !off;
    call.cameraOff = off;
    this.changed(call);
    this.sendMedia(call);
  }

  async switchCamera() {
    const call = this._call;
    if (!call || !call.pc || !call.localStream) return;
    const facing = call.facingMode === "user" ? "environment" : "user";
    const track = await otherCamera(facing);
    const sender = call.pc.getSenders().find((s) => s.track && s.track.kind === "video");
    if (!sender) {
      track.stop();
      return;
    }
    const old = sender.track;
    await sender.replaceTrack(track);
    if (old) {
      call.localStream.removeTrack(old);
      old.stop();
    }
    track.enabled = !call.cameraOff;
    call.localStream.addTrack(track);
    call.facingMode = facing;
    this.changed(call);
  }

  /** Restart ICE now (also used when the network changed). */
  async restartIce() {
    const call = this._call;
    if (!call || !call.pc || call.state === "ended") return;
    call.lastRestart = Date.now();
    await this.refreshCredentials(call);
    call.pc.restartIce();
  }

  /** Numbers for tests and the quality readout; null without a call. */
  async stats() {
    const call = this._call;
    if (!call || !call.pc) return null;
    const report = await call.pc.getStats();
    const video = { framesDecoded: 0, bytesReceived: 0, frameWidth: 0, frameHeight: 0 };
    const audio = { bytesReceived: 0, bytesSent: 0 };
    /** @type {Map<string, any>} */
    const byId = new Map();
    report.forEach((s) => byId.set(s.id, s));
    let selectedId = "";
    /** @type {any[]} */
    const rawPairs = [];
    report.forEach((s) => {
      const kind = s.kind || s.mediaType;
      if (s.type === "inbound-rtp" && kind === "video") {
        video.framesDecoded += s.framesDecoded || 0;
        video.bytesReceived += s.bytesReceived || 0;
        video.frameWidth = s.frameWidth || video.frameWidth;
        video.frameHeight = s.frameHeight || video.frameHeight;
      } else if (s.type === "inbound-rtp" && kind === "audio") {
        audio.bytesReceived += s.bytesReceived || 0;
      } else if (s.type === "outbound-rtp" && kind === "audio") {
        audio.bytesSent += s.bytesSent || 0;
      } else if (s.type === "transport" && s.selectedCandidatePairId) {
        selectedId = s.selectedCandidatePairId;
      } else if (s.type === "candidate-pair") {
        rawPairs.push(s);
      }
    });
    const pairs = rawPairs.map((p) => ({
      nominated: Boolean(p.nominated),
      selected: Boolean(p.selected) || p.id === selectedId,
      state: p.state,
      localType: (byId.get(p.localCandidateId) || {}).candidateType,
      remoteType: (byId.get(p.remoteCandidateId) || {}).candidateType,
    }));
    return {
      state: call.state,
      connectionState: call.pc.connectionState,
      iceConnectionState: call.pc.iceConnectionState,
      video,
      audio,
      pairs,
    };
  }

  /**
   * Take up a live call this tab had before it reloaded: new media, a new peer connection, and a
   * restart offer that makes the other side replace its connection.
   * @param {import("./protocol.js").CallInfo} info
   */
  async rejoin(info) {
    const call = new Call({ id: info.call_id, roomId: info.room_id, peer: info.peer, media: info.media, role: info.role });
    call.state = "reconnecting";
    call.polite = info.polite;
    call.quality = { rttMs: null, bitrateKbps: null, packetsLostPct: null, label: "reconnecting" };
    call.connectedAt = readSince();
    this.setCall(call);
    this.signaling.send(callResume(call.id)); // binds this socket to the call before the offer
    await this.rejoinNow();
  }

  /**
   * Get media and send the restart offer (or answer the other side's, if one came while this page
   * had no media); on failure leave "Rejoin call" for a tap.
   */
  async rejoinNow() {
    const call = this._call;
    if (!call || call.state === "ended" || call.pc) return;
    call.rejoinable = false;
    call.error = null;
    this.changed(call);
    /** @type {RTCPeerConnection|null} */
    let pc = null;
    try {
      await this.prepare(call);
      if (this._call !== call || !call.pc) return;
      pc = call.pc;
      if (call.pendingOffer) {
        // The other side reloaded too and offered first: it waits for an answer to that offer,
        // and would ignore ours if it is the impolite side (the stall this avoids).
        await this.answerRestart(call, pc);
        return;
      }
      call.rejoining = true;
      call.remoteQueue = [];
      await pc.setLocalDescription(await pc.createOffer());
      if (call.pc !== pc) return;
      const sdp = /** @type {RTCSessionDescription} */ (pc.localDescription).sdp;
      this.signaling.send(callDescription(call.id, { type: "offer", sdp }, true));
      call.canSendCandidates = true;
      this.flushLocalCandidates(call);
    } catch (error) {
      if (this._call !== call || call.state === "ended") return;
      if (pc && call.pc !== pc) return; // a restart offer replaced this connection meanwhile
      // Keep the other side's candidates for its pending offer: they are not sent again.
      const queued = call.pendingOffer ? call.remoteQueue : [];
      this.dropPeer(call);
      call.remoteQueue = queued;
      if (call.localStream) for (const track of call.localStream.getTracks()) track.stop();
      call.localStream = null;
      call.rejoining = false;
      call.rejoinable = true;
      call.error = `Tap Rejoin call to continue. ${(error && error.message) || error}`;
      this.changed(call);
    }
  }

  /**
   * The other side has a new peer connection (it reloaded): replace ours and answer its offer.
   * @param {Call} call @param {string} sdp
   */
  async replacePeer(call, sdp) {
    const stream = call.localStream;
    this.dropPeer(call);
    call.rejoining = false;
    call.pendingOffer = sdp;
    call.state = "reconnecting";
    call.quality = { rttMs: null, bitrateKbps: null, packetsLostPct: null, label: "reconnecting" };
    this.changed(call);
    // Without media yet (getting it, or waiting for a tap) rejoinNow answers the offer later.
    if (!stream) return;
    try {
      const config = await this.iceConfig();
      if (this._call !== call || call.state === "ended" || call.pc || call.pendingOffer !== sdp) return;
      this.buildPeer(call, stream, config);
      await this.answerRestart(call, /** @type {RTCPeerConnection} */ (call.pc));
    } catch (error) {
      this.fail(call, error);
    }
  }

  /** Answer the other side's restart offer from our new peer connection. @param {Call} call @param {RTCPeerConnection} pc */
  async answerRestart(call, pc) {
    const sdp = /** @type {string} */ (call.pendingOffer);
    call.pendingOffer = null;
    await this.setRemote(call, pc, { type: "offer", sdp });
    await this.flushRemoteCandidates(call);
    await pc.setLocalDescription(await pc.createAnswer());
    if (call.pc !== pc) return;
    const local = /** @type {RTCSessionDescription} */ (pc.localDescription);
    this.signaling.send(callDescription(call.id, { type: "answer", sdp: local.sdp }));
    call.negotiated = true;
    call.canSendCandidates = true;
    this.flushLocalCandidates(call);
  }

  // --- the peer connection ---------------------------------------------------------------

  /** Get media and ICE servers, then build the peer connection. @param {Call} call */
  async prepare(call) {
    const [stream, config] = await Promise.all([getMedia(call.media, this.devices), this.iceConfig()]);
    if (this._call !== call || call.state === "ended") {
      for (const track of stream.getTracks()) track.stop();
      return;
    }
    call.localStream = stream;
    call.warning = stream.parleyWarning || null;
    this.buildPeer(call, stream, config);
  }

  /**
   * Build the peer connection around the local stream.
   * @param {Call} call @param {MediaStream} stream
   * @param {{iceServers: RTCIceServer[], iceTransportPolicy?: RTCIceTransportPolicy, ttl?: number}} config
   */
  buildPeer(call, stream, config) {
    call.configFetchedAt = Date.now();
    call.ttlMs = (config.ttl || 0) * 1000;
    const pc = new RTCPeerConnection({
      iceServers: config.iceServers,
      iceTransportPolicy: config.iceTransportPolicy || "all",
    });
    call.pc = pc;
    call.remoteStream = new MediaStream();
    for (const track of stream.getTracks()) pc.addTrack(track, stream);
    if (call.media === "video" && stream.getVideoTracks().length === 0) {
      pc.addTransceiver("video", { direction: "recvonly" }); // still see the other side
    }
    pc.onicecandidate = ({ candidate }) => {
      if (!candidate || !candidate.candidate) return;
      call.localQueue.push(candidate.toJSON());
      this.flushLocalCandidates(call);
    };
    pc.ontrack = ({ track }) => {
      const remote = /** @type {MediaStream} */ (call.remoteStream);
      if (!remote.getTracks().includes(track)) remote.addTrack(track);
      this.changed(call);
    };
    pc.onconnectionstatechange = () => this.connectionChanged(call);
    pc.oniceconnectionstatechange = () => {
      // Firefox reports some transitions only here.
      if (pc.iceConnectionState === "failed") this.connectionChanged(call);
    };
    pc.onnegotiationneeded = () => this.negotiate(call);
    call.lastBytes = { at: 0, bytes: 0 };
    this.changed(call);
  }

  /** Close the peer connection without touching the local tracks (they go on in the next one). @param {Call} call */
  dropPeer(call) {
    clearInterval(call.timers.restart);
    call.timers.restart = 0;
    closePeer(call.pc);
    call.pc = null;
    call.remoteQueue = []; // candidates of the old connection
    call.localQueue = [];
    call.canSendCandidates = false;
    call.negotiated = false;
    call.makingOffer = false;
    call.ignoreOffer = false;
    call.securityCode = null; // the next connection has certificates of its own
    call.remoteSdp = null;
  }

  /** Perfect negotiation: later offers (ICE restarts) go as call_description. @param {Call} call */
  async negotiate(call) {
    const pc = call.pc;
    if (!pc || !call.negotiated || call.state === "ended") return;
    try {
      call.makingOffer = true;
      await pc.setLocalDescription();
      if (call.pc !== pc) return; // replaced meanwhile (the other side reloaded)
      const description = /** @type {RTCSessionDescription} */ (pc.localDescription);
      this.signaling.send(callDescription(call.id, { type: /** @type {"offer"} */ (description.type), sdp: description.sdp }));
    } catch (error) {
      console.warn("renegotiation failed", error);
    } finally {
      call.makingOffer = false;
    }
  }

  /** @param {Call} call */
  connectionChanged(call) {
    const pc = call.pc;
    if (!pc || this._call !== call || call.state === "ended") return;
    const state = pc.connectionState;
    if (state === "connected") {
      clearInterval(call.timers.restart);
      call.timers.restart = 0;
      if (call.connectedAt === null) {
        call.connectedAt = Date.now();
        rememberRejoin(call.id, call.connectedAt); // the duration goes on after a reload
      }
      call.state = "connected";
      this.startQuality(call);
      this.sendMedia(call); // (again) after every (re)connection, so a new page learns it
      this.updateSecurityCode(call, pc);
    } else if (state === "disconnected" || state === "failed" || pc.iceConnectionState === "failed") {
      if (call.state !== "reconnecting") call.downSince = Date.now();
      call.state = "reconnecting";
      call.quality = { rttMs: null, bitrateKbps: null, packetsLostPct: null, label: "reconnecting" };
      if (state !== "disconnected") this.restartIce();
      // Keep trying while the path is down, so media returns soon after the network does.
      if (!call.timers.restart) {
        call.timers.restart = setInterval(() => {
          const now = call.pc && call.pc.connectionState;
          if (now !== "disconnected" && now !== "failed") return; // connected, or a restart is under way
          if (Date.now() - call.lastRestart < RETRY_GAP_MS) return;
          // "disconnected" often heals by itself: give it RESTART_AFTER_MS first.
          if (now === "disconnected" && Date.now() - call.downSince < RESTART_AFTER_MS) return;
          this.restartIce();
        }, 1000);
      }
    }
    this.changed(call);
  }

  /**
   * Apply the other side's description and keep it as it came, for the security code.
   * @param {Call} call @param {RTCPeerConnection} pc @param {RTCSessionDescriptionInit} description
   */
  async setRemote(call, pc, description) {
    await pc.setRemoteDescription(description);
    call.remoteSdp = description.sdp ?? null;
  }

  /**
   * Work out the security code from the descriptions this connection exchanged (both sides'
   * DTLS fingerprints: ours as sent, theirs as received) and show it.
   * @param {Call} call @param {RTCPeerConnection} pc
   */
  async updateSecurityCode(call, pc) {
    const local = pc.localDescription;
    if (!local || !call.remoteSdp) return;
    try {
      const code = await securityCode(local.sdp, call.remoteSdp);
      if (call.pc !== pc || call.state === "ended") return;
      call.securityCode = code;
      this.changed(call);
    } catch (error) {
      console.warn("security code", error); // no code shown: nothing to compare, nothing wrong
    }
  }

  /** Fetch fresh TURN credentials when the ones in use are close to expiry. @param {Call} call */
  async refreshCredentials(call) {
    if (!call.pc || !call.ttlMs) return;
    if (Date.now() + CREDENTIAL_MARGIN_MS < call.configFetchedAt + call.ttlMs) return;
    const config = await this.iceConfig();
    if (!call.pc || call.state === "ended") return;
    call.pc.setConfiguration({
      iceServers: config.iceServers,
      iceTransportPolicy: config.iceTransportPolicy || "all",
    });
    call.configFetchedAt = Date.now();
    call.ttlMs = (config.ttl || 0) * 1000;
  }

  /** @param {Call} call */
  flushLocalCandidates(call) {
    if (!call.canSendCandidates) return;
    while (call.localQueue.length) {
      const candidate = /** @type {RTCIceCandidateInit} */ (call.localQueue.shift());
      this.signaling.send(iceCandidate(call.id, /** @type {any} */ (candidate)));
    }
  }

  /** Candidates that came before the remote description (TESTING-NOTES). @param {Call} call */
  async flushRemoteCandidates(call) {
    const pc = call.pc;
    if (!pc || !pc.remoteDescription) return;
    while (call.remoteQueue.length) {
      const candidate = /** @type {RTCIceCandidateInit} */ (call.remoteQueue.shift());
      try {
        await pc.addIceCandidate(candidate);
      } catch (error) {
        if (!call.ignoreOffer) console.warn("remote candidate refused", error);
      }
    }
  }

  /** @param {Call} call */
  startQuality(call) {
    if (call.timers.quality) return;
    call.timers.quality = setInterval(() => this.measure(call), QUALITY_EVERY_MS);
  }

  /** @param {Call} call */
  async measure(call) {
    const pc = call.pc;
    if (!pc || call.state === "ended") return;
    const report = await pc.getStats();
    if (call.pc !== pc) return;
    let rtt = null;
    let bytes = 0;
    let lost = 0;
    let received = 0;
    report.forEach((s) => {
      if (s.type === "candidate-pair" && (s.nominated || s.selected) && s.currentRoundTripTime !== undefined) {
        rtt = Math.round(s.currentRoundTripTime * 1000);
      }
      if (s.type === "inbound-rtp") {
        bytes += s.bytesReceived || 0;
        lost += Math.max(0, s.packetsLost || 0);
        received += s.packetsReceived || 0;
      }
    });
    const now = Date.now();
    const bitrate = call.lastBytes.at ? Math.round(((bytes - call.lastBytes.bytes) * 8) / (now - call.lastBytes.at)) : null;
    const flowing = bytes > call.lastBytes.bytes;
    call.lastBytes = { at: now, bytes };
    const lossPct = received + lost > 0 ? Math.round((lost / (received + lost)) * 1000) / 10 : 0;
    const ice = pc.iceConnectionState;
    /** @type {QualityLabel} */
    let label = "good";
    // A frozen path can stay "connected" for seconds: no new bytes means no media, whatever ICE says.
    if (call.state === "reconnecting" || ice === "disconnected" || ice === "checking" || ice === "failed") label = "reconnecting";
    else if (!flowing) label = "no_media";
    else if ((rtt !== null && rtt > 400) || lossPct > 5) label = "poor";
    else if ((rtt !== null && rtt > 200) || lossPct > 2) label = "fair";
    call.quality = { rttMs: rtt, bitrateKbps: bitrate, packetsLostPct: lossPct, label };
    this.changed(call);
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
    if (!call || !call.pc || call.negotiated) return;
    call.state = "connecting";
    call.polite = Boolean(msg.polite);
    this.changed(call);
    try {
      await this.setRemote(call, call.pc, { type: "answer", sdp: msg.sdp });
      call.negotiated = true;
      await this.flushRemoteCandidates(call);
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
    call.remoteQueue.push(msg.candidate);
    await this.flushRemoteCandidates(call);
  }

  /** @param {import("./protocol.js").DescriptionIn} msg */
  async gotDescription(msg) {
    const call = this.mine(msg.call_id);
    if (!call) return;
    const description = msg.description;
    if (msg.restart && description.type === "offer") {
      // Both reloaded at once: the polite side's new connection gives way to the impolite side's.
      if (call.rejoining && !call.polite) return;
      await this.replacePeer(call, description.sdp);
      return;
    }
    if (!call.pc) return;
    const pc = call.pc;
    if (call.rejoining) {
      if (description.type === "offer") return; // meant for the connection this page had before it reloaded
      try {
        await this.setRemote(call, pc, description);
        call.rejoining = false;
        call.negotiated = true;
        await this.flushRemoteCandidates(call);
      } catch (error) {
        console.warn("rejoin answer refused", error);
      }
      return;
    }
    const collision = description.type === "offer" && (call.makingOffer || pc.signalingState !== "stable");
    call.ignoreOffer = !call.polite && collision;
    if (call.ignoreOffer) return;
    try {
      await this.setRemote(call, pc, description);
      await this.flushRemoteCandidates(call);
      if (description.type === "offer") {
        await pc.setLocalDescription();
        const local = /** @type {RTCSessionDescription} */ (pc.localDescription);
        this.signaling.send(callDescription(call.id, { type: /** @type {"answer"} */ (local.type), sdp: local.sdp }));
      }
    } catch (error) {
      console.warn("renegotiation failed", error);
    }
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
    call.polite = msg.polite;
    // Signalling is back; if the network changed meanwhile, a restart gets new paths.
    if (call.pc && call.pc.connectionState !== "connected") this.restartIce();
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

  /** Tell the other side whether our microphone and camera are on (once the call is answered). @param {Call} call */
  sendMedia(call) {
    if (this._call !== call || !call.negotiated || call.state === "ended") return;
    const stream = call.localStream;
    const audio = Boolean(stream && stream.getAudioTracks().length) && !call.muted;
    const video = Boolean(stream && stream.getVideoTracks().length) && call.media === "video" && !call.cameraOff;
    this.signaling.send(callMedia(call.id, audio, video));
  }

  /** @param {Call} call */
  changed(call) {
    if (this._call === call) this.dispatchEvent(new CustomEvent("change", { detail: call }));
  }

  /** @param {Call} call @param {any} error */
  fail(call, error) {
    if (this._call !== call || call.state === "ended") return;
    call.error = (error && error.message) || String(error);
    if (call.pc || call.role === "callee") this.signaling.send(callEnd(call.id));
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
   * Tear everything down: tracks, timers, handlers, the peer connection.
   * @param {Call} call @param {EndReason} reason @param {{quiet?: boolean}} [options]
   */
  finish(call, reason, { quiet = false } = {}) {
    if (call.state === "ended") return;
    call.state = "ended";
    call.endReason = reason;
    call.rejoinable = false;
    if (readRejoin() === call.id) forgetRejoin();
    clearInterval(call.timers.restart);
    clearInterval(call.timers.quality);
    if (call.localStream) for (const track of call.localStream.getTracks()) track.stop();
    closePeer(call.pc);
    call.pc = null;
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

function readRejoin() {
  try {
    return sessionStorage.getItem(REJOIN_KEY);
  } catch {
    return null;
  }
}

/** When the call this tab rejoins first connected, for its duration; null if unknown. */
function readSince() {
  try {
    const since = Number(sessionStorage.getItem(`${REJOIN_KEY}.since`));
    return since > 0 ? since : null;
  } catch {
    return null;
  }
}

/** @param {string} callId @param {number|null} since */
function rememberRejoin(callId, since) {
  try {
    sessionStorage.setItem(REJOIN_KEY, callId);
    if (since) sessionStorage.setItem(`${REJOIN_KEY}.since`, String(since));
    else sessionStorage.removeItem(`${REJOIN_KEY}.since`);
  } catch {
    // storage refused (private mode): a reload then drops the call, as before
  }
}

function forgetRejoin() {
  try {
    sessionStorage.removeItem(REJOIN_KEY);
    sessionStorage.removeItem(`${REJOIN_KEY}.since`);
  } catch {
    // nothing to forget
  }
}
