// One RTCPeerConnection to one participant of a call (Galène's Stream): its tracks, perfect
// negotiation, the remote-candidate queue, ICE restarts with fresh TURN credentials, the quality
// readout and the security code. No DOM and no wire format: it raises events and the CallManager
// (call.js) turns them into signals and call states.
//
// Events: "description" (detail: a description to send the other side), "candidate" (detail: a
// local candidate to send), "connected" (media can flow; after a network change, once it does),
// "down" (the path broke, or the network changed under it: restarts are under way), "stalled" (ICE
// is connected and no media comes: the call replaces this connection, recovery.js), "restart"
// (detail: {reason}; an ICE restart begins) and "change" (tracks, quality or security code:
// something views show).

import { Credentials, rtcConfig } from "./credentials.js";
import { arriving, mediaBack, StallWatch, ufrag } from "./recovery.js";
import { securityCode } from "./securitycode.js";
import { rate, walkStats } from "./stats.js";

const RESTART_AFTER_MS = 1500; // a "disconnected" path gets this long to heal by itself
const RETRY_GAP_MS = 2000; // between ICE restarts while the path stays down
const QUALITY_EVERY_MS = 2000; // no inbound bytes for one interval reads as "No media"

/** @typedef {"down"|"online"|"connection"|"signaling"|"manual"} RestartReason */
/** @typedef {{ufrag: string, reason: "online"|"connection"|"signaling"}} Recovery */

/** @typedef {import("./credentials.js").IceConfig} IceConfig */

export class Peer extends EventTarget {
  /**
   * Build the connection around the local stream.
   * @param {{id: number, polite: boolean, stream: MediaStream, media: "audio"|"video", config: IceConfig,
   *          configFetchedAt?: number, iceConfig: () => Promise<IceConfig>, candidates?: RTCIceCandidateInit[]}} init
   *   `id`: the participant (user id); `configFetchedAt`: when `config` was fetched (Date.now(); now
   *   if not given); `candidates`: theirs that came before this connection
   */
  constructor({ id, polite, stream, media, config, configFetchedAt = Date.now(), iceConfig, candidates = [] }) {
    super();
    this.id = id;
    this.polite = polite;
    this.pc = new RTCPeerConnection(rtcConfig(config));
    this.credentials = new Credentials(config, configFetchedAt, iceConfig);
    this.remoteStream = new MediaStream();
    this.closed = false;
    this.negotiated = false; // the first offer/answer is done; later ones are perfect negotiation
    this.makingOffer = false;
    this.ignoreOffer = false;
    this.srdAnswerPending = false; // an answer is being applied: an offer now is no collision
    /** True from sending a restart offer (a new connection after a reload) until its answer. */
    this.rejoining = false;
    /** @type {RTCIceCandidateInit[]} */
    this.remoteQueue = [...candidates];
    /** @type {RTCIceCandidateInit[]} */
    this.localQueue = [];
    this.canSendCandidates = false;
    /**
     * The other side's last description as it came, for the security code: a browser's own
     * remoteDescription is re-serialised (Chromium keeps one of several fingerprints).
     * @type {string|null}
     */
    this.remoteSdp = null;
    /** @type {import("./securitycode.js").SecurityCode|null} from both DTLS fingerprints, once connected */
    this.securityCode = null;
    /** @type {import("./stats.js").Quality|null} */
    this.quality = null;
    this.timers = { restart: 0, quality: 0 };
    this.lastRestart = 0;
    this.down = false;
    this.downSince = 0;
    /**
     * From a network-change restart until media flows on the new path: "connected" waits for it.
     * @type {Recovery|null} our ICE ufrag when it began, and why
     */
    this.recovering = null;
    /** ICE connected and no media: "stalled" was raised; "connected" waits for media again. */
    this.stalled = false;
    this.stallWatch = new StallWatch();
    /** @type {{stats: import("./stats.js").Stats, at: number}|null} */
    this.lastWalk = null;
    /** @type {RTCRtpSender|null} the video sender sendVideo() added (its track may be null now) */
    this.videoSender = null;

    const pc = this.pc;
    for (const track of stream.getTracks()) pc.addTrack(track, stream);
    if (media === "video" && stream.getVideoTracks().length === 0) {
      pc.addTransceiver("video", { direction: "recvonly" }); // still see the other side
    }
    pc.onicecandidate = ({ candidate }) => {
      if (!candidate || !candidate.candidate) return;
      this.localQueue.push(candidate.toJSON());
      this.flushLocalCandidates();
    };
    pc.ontrack = ({ track }) => {
      if (!this.remoteStream.getTracks().includes(track)) this.remoteStream.addTrack(track);
      this.emit("change");
    };
    pc.onconnectionstatechange = () => this.connectionChanged();
    pc.oniceconnectionstatechange = () => {
      // Firefox reports some transitions only here.
      if (pc.iceConnectionState === "failed") this.connectionChanged();
    };
    pc.onnegotiationneeded = () => this.negotiate();
  }

  /** @param {string} type @param {any} [detail] */
  emit(type, detail) {
    if (!this.closed) this.dispatchEvent(new CustomEvent(type, { detail }));
  }

  // --- the first offer and answer ------------------------------------------------------------

  /** Make an offer (the first one, or a restart offer from a new connection); null once closed. */
  async offer() {
    await this.credentials.refresh(this.pc, "connecting");
    if (this.closed) return null;
    await this.pc.setLocalDescription(await this.pc.createOffer());
    return this.closed ? null : /** @type {RTCSessionDescription} */ (this.pc.localDescription).sdp;
  }

  /** Take the other side's offer and answer it; null once closed. @param {string} sdp */
  async answer(sdp) {
    await this.credentials.refresh(this.pc, "connecting");
    if (this.closed) return null;
    await this.setRemote({ type: "offer", sdp });
    await this.flushRemoteCandidates();
    await this.pc.setLocalDescription(await this.pc.createAnswer());
    if (this.closed) return null;
    this.negotiated = true;
    return /** @type {RTCSessionDescription} */ (this.pc.localDescription).sdp;
  }

  /** Take the answer to our first offer. @param {string} sdp */
  async accept(sdp) {
    await this.setRemote({ type: "answer", sdp });
    this.negotiated = true;
    await this.flushRemoteCandidates();
  }

  /**
   * Apply the other side's description and keep it as it came, for the security code.
   * @param {RTCSessionDescriptionInit} description
   */
  async setRemote(description) {
    await this.pc.setRemoteDescription(description);
    this.remoteSdp = description.sdp ?? null;
  }

  // --- perfect negotiation (webrtc/samples, MDN) ---------------------------------------------

  /** Later offers (ICE restarts) go out as "description" events. */
  async negotiate() {
    if (this.closed || !this.negotiated) return;
    try {
      this.makingOffer = true;
      await this.pc.setLocalDescription();
      const description = /** @type {RTCSessionDescription} */ (this.pc.localDescription);
      this.emit("description", { type: description.type, sdp: description.sdp });
    } catch (error) {
      console.warn("renegotiation failed", error);
    } finally {
      this.makingOffer = false;
    }
  }

  /** A later description from the other side (not a restart offer). @param {RTCSessionDescriptionInit} description */
  async gotDescription(description) {
    if (this.closed) return;
    if (this.rejoining) {
      if (description.type === "offer") return; // meant for the connection this page had before it reloaded
      try {
        await this.setRemote(description);
        this.rejoining = false;
        this.negotiated = true;
        await this.flushRemoteCandidates();
      } catch (error) {
        console.warn("rejoin answer refused", error);
      }
      return;
    }
    const pc = this.pc;
    if (description.type === "offer" && ufrag(/** @type {any} */ (description)) !== ufrag(pc.remoteDescription)) {
      // Their ICE restart makes us gather again too: with TURN credentials still valid.
      await this.credentials.refresh(pc, "restarting");
      if (this.closed) return;
    }
    // While our answer is being applied the state is not yet "stable", but an offer is no collision.
    const readyForOffer = !this.makingOffer && (pc.signalingState === "stable" || this.srdAnswerPending);
    const collision = description.type === "offer" && !readyForOffer;
    this.ignoreOffer = !this.polite && collision;
    if (this.ignoreOffer) return;
    try {
      this.srdAnswerPending = description.type === "answer";
      await this.setRemote(description);
      this.srdAnswerPending = false;
      await this.flushRemoteCandidates();
      if (description.type === "offer") {
        await pc.setLocalDescription();
        const local = /** @type {RTCSessionDescription} */ (pc.localDescription);
        this.emit("description", { type: local.type, sdp: local.sdp });
      }
    } catch (error) {
      this.srdAnswerPending = false;
      console.warn("renegotiation failed", error);
    }
  }

  // --- candidates ------------------------------------------------------------------------------

  /** Ours go out once the other side knows the call (our offer or answer is sent). */
  sendCandidates() {
    this.canSendCandidates = true;
    this.flushLocalCandidates();
  }

  flushLocalCandidates() {
    if (!this.canSendCandidates) return;
    while (this.localQueue.length) this.emit("candidate", this.localQueue.shift());
  }

  /** @param {RTCIceCandidateInit} candidate */
  async addCandidate(candidate) {
    this.remoteQueue.push(candidate);
    await this.flushRemoteCandidates();
  }

  /** Candidates that came before the remote description (adding them then throws): added now. */
  async flushRemoteCandidates() {
    if (this.closed || !this.pc.remoteDescription) return;
    while (this.remoteQueue.length) {
      const candidate = /** @type {RTCIceCandidateInit} */ (this.remoteQueue.shift());
      try {
        await this.pc.addIceCandidate(candidate);
      } catch (error) {
        if (!this.ignoreOffer) console.warn("remote candidate refused", error);
      }
    }
  }

  // --- the path: connected, down, restarts -----------------------------------------------------

  connectionChanged() {
    if (this.closed) return;
    const pc = this.pc;
    const state = pc.connectionState;
    if (state === "connected") {
      clearInterval(this.timers.restart);
      this.timers.restart = 0;
      this.down = false;
      this.startQuality();
      this.updateSecurityCode();
      if (!this.recovering && !this.stalled) this.emit("connected"); // else once media flows
    } else if (state === "disconnected" || state === "failed" || pc.iceConnectionState === "failed") {
      if (!this.down) this.downSince = Date.now();
      this.down = true;
      if (state !== "disconnected") this.restartIce("down");
      // Keep trying while the path is down, so media returns soon after the network does.
      if (!this.timers.restart) {
        this.timers.restart = setInterval(() => {
          const now = this.pc.connectionState;
          if (now !== "disconnected" && now !== "failed") return; // connected, or a restart is under way
          if (this.recovering) return; // a network restart is under way: one at a time
          if (Date.now() - this.lastRestart < RETRY_GAP_MS) return;
          // "disconnected" often heals by itself: give it RESTART_AFTER_MS first.
          if (now === "disconnected" && Date.now() - this.downSince < RESTART_AFTER_MS) return;
          this.restartIce("down");
        }, 1000);
      }
      this.emit("down");
    }
    this.emit("change");
  }

  /**
   * Restart ICE now, with fresh TURN credentials if the ones in use are close to expiry.
   * @param {RestartReason} [reason]
   */
  async restartIce(reason = "manual") {
    if (this.closed) return;
    this.lastRestart = Date.now();
    this.emit("restart", { reason });
    await this.credentials.refresh(this.pc, "restarting");
    if (!this.closed) this.pc.restartIce();
  }

  /**
   * The network changed (online again, navigator.connection "change", signalling back after a
   * drop): restart ICE now, even if "connected": after a path change the pair in use can be dead
   * for seconds before ICE notices (up to 30 s to "failed"), and a restart on a healthy path costs
   * one offer and answer while media goes on over the old pair. One restart at a time. Signalling
   * back is the weakest sign (a server restart drops every socket): it restarts only if no media
   * arrives, since Firefox stops media from its restart offer until the answer, which a server
   * going away again never brings.
   * @param {"online"|"connection"|"signaling"} reason @param {boolean} [checked] media was looked for
   * @returns {boolean} whether a restart began
   */
  networkChanged(reason, checked = false) {
    if (this.closed || !this.negotiated || this.rejoining) return false; // the first paths are not chosen yet
    const pc = this.pc;
    const offer = pc.localDescription;
    if (this.recovering || pc.signalingState !== "stable") {
      // Under way; but its offer may have been lost with the old socket: send it again.
      if (reason === "signaling" && pc.signalingState === "have-local-offer" && !this.makingOffer && offer) {
        this.emit("description", { type: offer.type, sdp: offer.sdp });
      }
      return false;
    }
    if (reason === "signaling" && !checked) {
      arriving(pc).then((yes) => yes || this.networkChanged(reason, true));
      return false;
    }
    this.recovering = { ufrag: ufrag(offer), reason };
    this.stalled = false; // the restart's outcome decides now
    this.emit("down");
    this.emit("change");
    this.restartIce(reason);
    this.watchRecovery(this.recovering);
    return true;
  }

  /**
   * "connected" once the restart is answered, ICE connected and media bytes rising again; "stalled"
   * if ICE connects and no media comes (recovery.js); else the down path's retries take over.
   * @param {Recovery} recovery
   */
  async watchRecovery(recovery) {
    const outcome = await mediaBack(this.pc, recovery.ufrag, () => !this.closed && this.recovering === recovery);
    if (outcome === "gone") return;
    this.recovering = null;
    if (outcome === "stalled") this.stall(`ICE connected but no media after the ${recovery.reason} restart`);
    else this.connectionChanged(); // "connected" now, or the down path's retries take over
  }

  /** Raise "stalled" (the call replaces this connection); "connected" waits for media. @param {string} why */
  stall(why) {
    console.warn(`${why}: a new connection`);
    this.stalled = true;
    this.emit("down");
    this.emit("stalled");
    this.emit("change");
  }

  /**
   * Work out the security code from the descriptions this connection exchanged (both sides'
   * DTLS fingerprints: ours as sent, theirs as received).
   */
  async updateSecurityCode() {
    const local = this.pc.localDescription;
    if (!local || !this.remoteSdp) return;
    try {
      const code = await securityCode(local.sdp, this.remoteSdp);
      if (this.closed) return;
      this.securityCode = code;
      this.emit("change");
    } catch (error) {
      console.warn("security code", error); // no code shown: nothing to compare, nothing wrong
    }
  }

  // --- tracks and numbers ----------------------------------------------------------------------

  /** Send `track` instead of the one of its kind we send now; false if we send none of that kind. @param {MediaStreamTrack} track */
  async replaceTrack(track) {
    const sender = this.pc.getSenders().find((s) => s.track && s.track.kind === track.kind);
    if (!sender) return false;
    await sender.replaceTrack(track);
    return true;
  }

  /**
   * Send `track` as our video (camera or screen; null sends none): on the video sender there is,
   * without renegotiating, else on a new one (addTrack takes over a receive-only video transceiver
   * if there is one), which fires negotiationneeded and so an offer through perfect negotiation.
   * @param {MediaStreamTrack|null} track @param {MediaStream} stream
   */
  async sendVideo(track, stream) {
    const sender = this.pc.getSenders().find((s) => s.track && s.track.kind === "video") || this.videoSender;
    if (sender) {
      await sender.replaceTrack(track);
      return;
    }
    if (track) this.videoSender = this.pc.addTrack(track, stream);
  }

  /** The connection's states and one walk of its stats (stats.js). */
  async stats() {
    const report = await this.pc.getStats();
    return {
      connectionState: this.pc.connectionState,
      iceConnectionState: this.pc.iceConnectionState,
      ...walkStats(report),
    };
  }

  startQuality() {
    if (this.timers.quality) return;
    this.timers.quality = setInterval(() => this.measure(), QUALITY_EVERY_MS);
  }

  async measure() {
    if (this.closed) return;
    const report = await this.pc.getStats();
    if (this.closed) return;
    const stats = walkStats(report);
    const at = Date.now();
    const stalledNow = this.stallWatch.stalled(this.pc, stats.inbound.packetsReceived);
    // During a network restart watchRecovery looks after media.
    if (!this.recovering && stalledNow && !this.stalled) this.stall("ICE connected and no media coming");
    else if (!this.recovering && this.stalled && this.stallWatch.flowing) {
      this.stalled = false; // media again after all
      this.connectionChanged();
    }
    const ice = this.pc.iceConnectionState;
    const down = this.down || ice === "disconnected" || ice === "checking" || ice === "failed";
    this.quality = rate(stats, this.lastWalk, at, down);
    this.lastWalk = { stats, at };
    // "stats" (detail: this walk, every 2 s once connected): the call report card (livecall.js).
    this.emit("stats", stats);
    this.emit("change");
  }

  /** Detach every handler, then close: no late event of this connection acts on the call. */
  close() {
    if (this.closed) return;
    this.closed = true;
    clearInterval(this.timers.restart);
    clearInterval(this.timers.quality);
    const pc = this.pc;
    pc.onicecandidate = null;
    pc.ontrack = null;
    pc.onconnectionstatechange = null;
    pc.oniceconnectionstatechange = null;
    pc.onnegotiationneeded = null;
    pc.close();
  }
}
