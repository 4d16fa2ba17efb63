// One call: its state, the local media, and its peers keyed by participant (user id; a direct call
// has one, the other person). It turns its Peers' events (peer.js) into signals and call states.
// No DOM: views read the Call; the CallManager (call.js) holds it and announces changes.

import { getMedia, getScreen, otherCamera, startCamera } from "./media.js";
import { Peer } from "./peer.js";
import { callDescription, callMedia, callReport, iceCandidate } from "./protocol.js";
import { cameraWasOn, keepReport, rememberCamera, rememberRejoin } from "./rejoin.js";
import { RECONNECTING, ReportCard } from "./stats.js";

/** @typedef {"calling"|"ringing"|"connecting"|"connected"|"reconnecting"|"ended"} CallState */
/** @typedef {"hangup"|"remote_hangup"|"declined"|"busy"|"timeout"|"unsupported"|"cancelled"|"disconnected"|"failed"|"error"} EndReason */
/** @typedef {{id: number, username: string}} User */
/** @typedef {import("./peer.js").IceConfig} IceConfig */

const RENEW_GAP_MS = 15000; // at most one new connection in this long for a connection with no media

export class Call {
  /**
   * @param {{id: string, roomId: number, peer: User, media: "audio"|"video", role: "caller"|"callee",
   *          signaling: import("./signaling.js").SignalingClient, iceConfig: () => Promise<IceConfig>,
   *          changed: (call: Call) => void}} init
   *   `peer`: the other person; `changed`: how the manager hears that views have something new
   */
  constructor({ id, roomId, peer, media, role, signaling, iceConfig, changed }) {
    this.id = id;
    this.roomId = roomId;
    this.peer = peer;
    this.media = media;
    this.role = role;
    this.signaling = signaling;
    this.iceConfig = iceConfig;
    this.onchange = changed;
    /** @type {CallState} */
    this.state = role === "caller" ? "calling" : "connecting";
    this.polite = role === "callee";
    /** @type {Map<number, Peer>} one per remote participant, by user id */
    this.peers = new Map();
    /** @type {RTCIceCandidateInit[]} the other side's candidates that came before its Peer */
    this.pendingCandidates = [];
    /** @type {string|null} the other side's restart offer, kept until this side has media to answer it */
    this.pendingOffer = null;
    /** @type {MediaStream|null} */
    this.localStream = null;
    this.muted = false;
    this.cameraOff = false;
    /** What the other side sends, from its `call_media`: microphone and camera on. */
    this.remoteMedia = { audio: true, video: media === "video" };
    this.facingMode = "user";
    /** @type {{audioDeviceId?: string, videoDeviceId?: string}} the devices chosen when the call began */
    this.devices = {};
    /** @type {MediaStreamTrack|null} the screen, window or tab sent instead of the camera */
    this.screenTrack = null;
    /** @type {MediaStream|null} the shared screen, for the local preview */
    this.screenStream = null;
    this.addingCamera = false;
    /** @type {number|null} */
    this.connectedAt = null;
    /** @type {EndReason|null} */
    this.endReason = null;
    /** @type {string|null} */
    this.error = null;
    /** @type {string|null} */
    this.warning = null;
    /** Rejoining needs a tap (media could not be had without one): views show "Rejoin call". */
    this.rejoinable = false;
    /** @type {import("./stats.js").Quality|null} the readout as it was when the call ended */
    this.endQuality = null;
    /** The call report card, gathered from every stats walk while the call runs (stats.js). */
    this.card = new ReportCard();
    /** @type {import("./stats.js").Report|null} what this side reports once the call ended */
    this.report = null;
    this.renewedAt = 0;
  }

  /** The other person's Peer (a direct call has one); null before it is built or once replaced. */
  get other() {
    return this.peers.get(this.peer.id) || null;
  }

  /** @returns {Peer[]} the peers whose connections are open */
  live() {
    return [...this.peers.values()].filter((peer) => !peer.closed);
  }

  /** @returns {MediaStream|null} */
  get remoteStream() {
    const other = this.other;
    return other ? other.remoteStream : null;
  }

  get securityCode() {
    const other = this.other;
    return other ? other.securityCode : null;
  }

  /** @returns {import("./stats.js").Quality|null} */
  get quality() {
    if (this.state === "ended") return this.endQuality;
    if (this.state === "reconnecting") return RECONNECTING;
    const other = this.other;
    return other ? other.quality : null;
  }

  /**
   * Get media and ICE servers, then build the other person's Peer; null if the call ended meanwhile.
   * @param {{audioDeviceId?: string, videoDeviceId?: string}} devices
   */
  async prepare(devices) {
    this.devices = devices;
    // A voice call whose camera was on before this tab reloaded comes back with it on.
    const kind = this.media === "audio" && cameraWasOn(this.id) ? "video" : this.media;
    const [stream, config] = await Promise.all([getMedia(kind, devices), this.iceConfig()]);
    if (this.state === "ended") {
      for (const track of stream.getTracks()) track.stop();
      return null;
    }
    this.localStream = stream;
    this.warning = stream.parleyWarning || null;
    return this.addPeer(stream, config);
  }

  /**
   * Build the other person's Peer around the local stream and turn its events into signals.
   * @param {MediaStream} stream @param {IceConfig} config
   */
  addPeer(stream, config) {
    const peer = new Peer({
      id: this.peer.id,
      polite: this.polite,
      stream,
      media: this.media,
      config,
      iceConfig: this.iceConfig,
      candidates: this.pendingCandidates,
    });
    this.pendingCandidates = [];
    this.peers.set(peer.id, peer);
    if (this.screenTrack) peer.sendVideo(this.screenTrack, stream); // a new connection shows the screen too
    peer.addEventListener("candidate", (e) => this.signaling.send(iceCandidate(this.id, /** @type {CustomEvent} */ (e).detail)));
    peer.addEventListener("description", (e) => this.signaling.send(callDescription(this.id, /** @type {CustomEvent} */ (e).detail)));
    peer.addEventListener("connected", () => this.peerConnected());
    peer.addEventListener("stalled", () => this.renew(peer));
    peer.addEventListener("down", () => {
      if (this.state !== "ended" && this.state !== "reconnecting" && this.connectedAt !== null) this.card.reconnected();
      if (this.state !== "ended") this.state = "reconnecting";
    });
    peer.addEventListener("stats", (e) => this.card.add(/** @type {CustomEvent} */ (e).detail, peer));
    peer.addEventListener("change", () => this.onchange(this));
    this.onchange(this);
    return peer;
  }

  peerConnected() {
    if (this.state === "ended") return;
    if (this.connectedAt === null) {
      this.connectedAt = Date.now();
      rememberRejoin(this.id, this.connectedAt); // the duration goes on after a reload
    }
    this.state = "connected";
    this.sendMedia(); // (again) after every (re)connection, so a new page learns it
  }

  /** Close the peers without touching the local tracks (they go on in the next connection). */
  dropPeers() {
    for (const peer of this.peers.values()) peer.close();
    this.peers.clear();
    this.pendingCandidates = []; // candidates of the old connection
  }

  /** @param {boolean} polite who gives way when both offer at once (the server decides) */
  setPolite(polite) {
    this.polite = polite;
    for (const peer of this.peers.values()) peer.polite = polite;
  }

  /** Tell the others whether our microphone and camera are on (once the call is answered). */
  sendMedia() {
    if (this.state === "ended" || !this.live().some((peer) => peer.negotiated)) return;
    const stream = this.localStream;
    const audio = Boolean(stream && stream.getAudioTracks().length) && !this.muted;
    const video = Boolean(this.screenTrack) || (Boolean(stream && stream.getVideoTracks().length) && !this.cameraOff);
    this.signaling.send(callMedia(this.id, audio, video));
    if (this.media === "audio") rememberCamera(this.id, Boolean(stream && stream.getVideoTracks().length) && !this.cameraOff);
  }

  /** @param {boolean} muted */
  setMuted(muted) {
    if (!this.localStream) return;
    for (const track of this.localStream.getAudioTracks()) track.enabled = !muted;
    this.muted = muted;
    this.onchange(this);
    this.sendMedia();
  }

  /** Camera off or on; on in a call without a camera track (a voice call) starts the camera. @param {boolean} off */
  setCameraOff(off) {
    if (!this.localStream) return;
    if (!off && !this.localStream.getVideoTracks().length) {
      this.addCamera();
      return;
    }
    for (const track of this.localStream.getVideoTracks()) track.enabled = !off;
    this.cameraOff = off;
    this.onchange(this);
    this.sendMedia();
  }

  async switchCamera() {
    const stream = this.localStream;
    const peers = this.live();
    if (!stream || !peers.length) return;
    const facing = this.facingMode === "user" ? "environment" : "user";
    const track = await otherCamera(facing);
    // While a screen is shared the new camera waits in the local stream for Stop sharing.
    const sent = this.screenTrack ? [true] : await Promise.all(peers.map((peer) => peer.replaceTrack(track)));
    if (!sent.some(Boolean)) {
      track.stop();
      return;
    }
    for (const old of stream.getVideoTracks()) {
      stream.removeTrack(old);
      old.stop();
    }
    track.enabled = !this.cameraOff;
    stream.addTrack(track);
    this.facingMode = facing;
    this.onchange(this);
  }

  /**
   * Camera on in a call that sends no video: get the camera and send it (a new video sender and a
   * renegotiation through call_description; Peer.sendVideo). The other side shows it once our
   * call_media says the camera is on.
   */
  async addCamera() {
    const stream = this.localStream;
    if (!stream || this.addingCamera) return;
    this.addingCamera = true;
    try {
      const track = await startCamera(this.devices);
      if (this.state === "ended" || this.localStream !== stream) {
        track.stop();
        return;
      }
      stream.addTrack(track);
      this.cameraOff = false;
      this.warning = null;
      if (!this.screenTrack) await Promise.all(this.live().map((peer) => peer.sendVideo(track, stream)));
    } catch (error) {
      this.warning = (error && error.message) || String(error);
    } finally {
      this.addingCamera = false;
    }
    this.onchange(this);
    this.sendMedia();
  }

  /** The picture this side sends, for the local preview: the shared screen, else the camera. */
  get previewStream() {
    return this.screenStream || this.localStream;
  }

  /**
   * Share a screen, window or tab instead of the camera: the video sender's track is replaced
   * (no renegotiation), or a video sender is added where there is none (a voice call). The
   * browser's own "Stop sharing" ends the track, which switches back as the button does.
   */
  async shareScreen() {
    const stream = this.localStream;
    if (!stream || this.screenTrack) return;
    /** @type {MediaStreamTrack} */
    let track;
    try {
      track = await getScreen();
    } catch (error) {
      // Cancelling the picker is a choice, not a failure.
      if (!error || error.name !== "NotAllowedError") {
        this.warning = `Could not share your screen: ${(error && error.message) || error}`;
        this.onchange(this);
      }
      return;
    }
    if (this.state === "ended" || this.localStream !== stream || this.screenTrack) {
      track.stop();
      return;
    }
    this.screenTrack = track;
    this.screenStream = new MediaStream([track]);
    track.addEventListener("ended", () => this.stopSharing(track));
    await Promise.all(this.live().map((peer) => peer.sendVideo(track, stream)));
    this.onchange(this);
    this.sendMedia();
  }

  /** Back from the screen to the camera (or to no video, where the call had no camera). */
  async stopSharing(track = this.screenTrack) {
    if (!track || track !== this.screenTrack) return;
    this.screenTrack = null;
    this.screenStream = null;
    track.stop();
    const stream = this.localStream;
    if (this.state !== "ended" && stream) {
      const camera = stream.getVideoTracks()[0] || null;
      await Promise.all(this.live().map((peer) => peer.sendVideo(camera, stream)));
    }
    this.onchange(this);
    this.sendMedia();
  }

  /** Restart ICE on every open connection now. */
  async restartIce() {
    if (this.state === "ended") return;
    await Promise.all(this.live().map((peer) => peer.restartIce()));
  }

  /**
   * The network changed (online again, another network) or signalling came back after a drop:
   * each connection restarts ICE at once and the call reads "Reconnecting…" until media flows
   * (Peer.networkChanged says why even a "connected" one restarts).
   * @param {"online"|"connection"|"signaling"} reason
   */
  networkChanged(reason) {
    if (this.state !== "connected" && this.state !== "reconnecting") return; // nothing to move yet
    for (const peer of this.live()) peer.networkChanged(reason);
  }

  /** Signalling is back after a drop: the network may have changed under the call. */
  resumed() {
    this.networkChanged("signaling");
  }

  /** The call's state and the other person's connection's stats (stats.js); null without one. */
  async stats() {
    const other = this.other;
    if (!other || other.closed) return null;
    return { state: this.state, ...(await other.stats()) };
  }

  // --- after a reload ----------------------------------------------------------------------

  /**
   * Get media and send a restart offer from a new connection (or answer the other side's, if one
   * came while this page had no media); on failure leave "Rejoin call" for a tap.
   * @param {{audioDeviceId?: string, videoDeviceId?: string}} devices
   */
  async rejoinNow(devices) {
    if (this.state === "ended" || this.other) return;
    this.rejoinable = false;
    this.error = null;
    this.onchange(this);
    /** @type {Peer|null} */
    let other = null;
    try {
      other = await this.prepare(devices);
      if (!other) return;
      if (this.pendingOffer) {
        // The other side reloaded too and offered first: it waits for an answer to that offer,
        // and would ignore ours if it is the impolite side (the stall this avoids).
        await this.answerRestart(other);
        return;
      }
      await this.offerRestart(other);
    } catch (error) {
      if (this.state === "ended") return;
      if (other && this.other !== other) return; // a restart offer replaced this connection meanwhile
      // Keep the other side's candidates for its pending offer: they are not sent again.
      const queued = this.pendingOffer ? (other ? other.remoteQueue : this.pendingCandidates) : [];
      this.dropPeers();
      this.pendingCandidates = queued;
      if (this.localStream) for (const track of this.localStream.getTracks()) track.stop();
      this.localStream = null;
      this.rejoinable = true;
      this.error = `Tap Rejoin call to continue. ${(error && error.message) || error}`;
      this.onchange(this);
    }
  }

  /** Offer from our new connection `other`: a restart offer, so the other side replaces its own. @param {Peer} other */
  async offerRestart(other) {
    other.rejoining = true;
    other.remoteQueue = [];
    const sdp = await other.offer();
    if (sdp === null) return;
    this.signaling.send(callDescription(this.id, { type: "offer", sdp }, true));
    other.sendCandidates();
  }

  /** Connected with no media (recovery.js): a new connection, as after a reload, if signalling is up. @param {Peer} peer */
  async renew(peer) {
    if (this.state === "ended" || this.other !== peer || !this.localStream || this.signaling.state !== "open") return;
    if (Date.now() - this.renewedAt < RENEW_GAP_MS) return;
    this.renewedAt = Date.now();
    try {
      const [stream, config] = [this.localStream, await this.iceConfig()];
      if (this.state === "ended" || this.other !== peer) return;
      this.dropPeers();
      await this.offerRestart(this.addPeer(stream, config));
    } catch (error) {
      console.warn("no new connection", error); // the down path's restarts go on
    }
  }

  /** The other side has a new connection (it reloaded): replace ours and answer its offer. @param {string} sdp */
  async replaceOther(sdp) {
    const stream = this.localStream;
    this.dropPeers();
    this.pendingOffer = sdp;
    this.state = "reconnecting";
    this.onchange(this);
    // Without media yet (getting it, or waiting for a tap) rejoinNow answers the offer later.
    if (!stream) return;
    const config = await this.iceConfig();
    if (this.state === "ended" || this.other || this.pendingOffer !== sdp) return;
    await this.answerRestart(this.addPeer(stream, config));
  }

  /** Answer the other side's restart offer from our new connection. @param {Peer} other */
  async answerRestart(other) {
    const offer = /** @type {string} */ (this.pendingOffer);
    this.pendingOffer = null;
    const sdp = await other.answer(offer);
    if (sdp === null) return;
    this.signaling.send(callDescription(this.id, { type: "answer", sdp }));
    other.sendCandidates();
  }

  /** Tear everything down: tracks, timers, handlers, the peer connections. @param {EndReason} reason */
  end(reason) {
    this.endQuality = this.quality;
    // Built before the connections close: the card needs no connection, only the walks it kept.
    if (this.connectedAt !== null && this.state !== "ended") {
      this.report = this.card.summary((Date.now() - this.connectedAt) / 1000);
      // After call_end: the server matches the report to the call's record, not the live call.
      const frame = this.report && callReport(this.id, this.report);
      if (frame && !this.signaling.send(frame)) keepReport(frame); // sent when the socket is back
    }
    this.state = "ended";
    this.endReason = reason;
    this.rejoinable = false;
    if (this.localStream) for (const track of this.localStream.getTracks()) track.stop();
    if (this.screenTrack) this.screenTrack.stop();
    this.screenTrack = null;
    this.screenStream = null;
    for (const peer of this.peers.values()) peer.close(); // kept: the ended screen still shows them
  }
}
