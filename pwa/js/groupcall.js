// One group call in a full mesh: the local media and one Peer (peer.js) per other participant,
// keyed by user id. The newcomer offers to everyone present; in each pair the participant with the
// larger user id is polite. Every description and candidate is addressed (`to`) to one participant.
// No DOM: views read the GroupCall; the GroupCallManager (groupcalls.js) feeds it the server's frames.

import { getMedia, startCamera } from "./media.js";
import { Peer } from "./peer.js";
import { callMedia, callResume, groupCandidate, groupDescription } from "./protocol.js";
import { SfuLink } from "./sfulink.js";
import { SpeakingMeter } from "./speaking.js";

/** @typedef {"ringing"|"connecting"|"connected"|"reconnecting"|"ended"} GroupState */
/** @typedef {"left"|"ended"|"removed"|"full"|"disconnected"|"error"} GroupEndReason */
/** @typedef {{id: number, username: string}} User */
/** @typedef {import("./peer.js").IceConfig} IceConfig */

const LEVEL_EVERY_MS = 400; // how often the speaking highlight is worked out
export const SPEAKING_LEVEL = 0.02; // loudness (RMS, 0..1) above which a participant is speaking
const LEVEL_DECAY = 0.7; // a level falls off over a second or so: words have gaps
// A pair's path down this long gets a new connection (a restart offer from the impolite side):
// ICE restarts on the old one can fail for good (Chromium refused Firefox's answer after a rollback:
// "Failed to set SSL role for the transport").
const REPLACE_AFTER_MS = 12000;
// A new connection not up this long after its offer is offered again (its offer or answer can be
// lost while the server restarts; nothing else would retry a connection that never connected).
const REOFFER_AFTER_MS = 20000;
const STATS_WITHIN_MS = 5000; // one participant's stats past this are null (stats())

export class GroupCall {
  /**
   * @param {{id: string, roomId: number, media: "audio"|"video", me: User, role: "caller"|"callee",
   *          signaling: import("./signaling.js").SignalingClient, iceConfig: () => Promise<IceConfig>,
   *          changed: (call: GroupCall) => void}} init
   *   `role`: "caller" started the call (it rings until someone joins); `changed`: views have something new
   */
  constructor({ id, roomId, media, me, role, signaling, iceConfig, changed }) {
    Object.assign(this, { id, roomId, media, me, role, signaling });
    /** The ICE servers, fetched (again) by any of the call's connections: each new one starts from the latest. */
    this.iceConfig = async () => {
      const config = await iceConfig();
      Object.assign(this, { config, configFetchedAt: Date.now() });
      return config;
    };
    this.group = true;
    this.onchange = changed;
    /** @type {GroupState} */
    this.state = role === "caller" ? "ringing" : "connecting";
    /** @type {Map<number, User>} the others in the call, as the server lists them */
    this.participants = new Map();
    /** @type {Map<number, Peer>} one connection per other participant */
    this.peers = new Map();
    /** @type {Map<number, {audio: boolean, video: boolean}>} what each sends, from their call_media */
    this.remoteMedia = new Map();
    /** @type {Map<number, number>} each participant's audio level now (0..1), for the speaking highlight */
    this.levels = new Map();
    /** @type {Map<number, RTCIceCandidateInit[]>} candidates that came before their Peer */
    this.pending = new Map();
    /** @type {Set<Peer>} the connections that carry media now */
    this.up = new Set();
    this.meter = new SpeakingMeter();
    /** @type {Promise<boolean>|null} the local media and ICE servers; false if the call ended first */
    this.ready = null;
    /** @type {MediaStream|null} */
    this.localStream = null;
    /** @type {IceConfig|null} */
    this.config = null;
    this.configFetchedAt = 0;
    this.muted = false;
    this.cameraOff = false;
    /** Offers from this page go out as restarts (it reloaded or its socket came back). */
    this.resuming = false;
    /** @type {number|null} */
    this.connectedAt = null;
    /** @type {GroupEndReason|null} */
    this.endReason = null;
    /** @type {string|null} */
    this.error = null;
    /** @type {string|null} */
    this.warning = null;
    /** @type {SfuLink|null} the call goes through the SFU: two connections, not one per person */
    this.sfu = null;
    this.levelTimer = setInterval(() => this.measureLevels(), LEVEL_EVERY_MS);
  }

  /** Through the SFU: (new) connections out and in; each other participant a tile from them. */
  async useSfu() {
    if (!(await this.ready) || this.state === "ended") return;
    if (this.sfu) this.sfu.close();
    const link = (this.sfu = new SfuLink({
      callId: this.id,
      stream: /** @type {MediaStream} */ (this.localStream),
      config: /** @type {RTCConfiguration} */ (/** @type {unknown} */ (this.config)),
      signaling: this.signaling,
    }));
    this.peers = /** @type {Map<number, any>} */ (link.remotes);
    this.up.clear();
    const changed = () => {
      if (this.sfu !== link) return;
      this.up.clear();
      if (link.up) for (const remote of link.remotes.values()) if (remote.remoteStream.getTracks().length) this.up.add(/** @type {any} */ (remote));
      if (link.up && this.connectedAt === null) this.connectedAt = Date.now();
      if (link.up) this.sendMedia();
      this.update();
    };
    link.addEventListener("change", changed);
    link.addEventListener("up", changed);
    await link.publish();
  }

  /** Janus's answer to what we send, or its offer of what we receive. @param {any} msg */
  gotSfu(msg) {
    if (this.sfu && this.state !== "ended") return this.sfu.gotDescription(msg);
  }

  /**
   * Get the camera and microphone and the ICE servers (once); false if the call ended meanwhile.
   * @param {{audioDeviceId?: string, videoDeviceId?: string}} devices
   */
  prepare(devices) {
    if (!this.ready) {
      this.ready = (async () => {
        const [stream] = await Promise.all([getMedia(this.media, devices), this.iceConfig()]);
        if (this.state === "ended") {
          for (const track of stream.getTracks()) track.stop();
          return false;
        }
        Object.assign(this, { localStream: stream, warning: stream.parleyWarning || null });
        this.onchange(this);
        return true;
      })();
    }
    return this.ready;
  }

  /** The participant `id` as the server named them (a placeholder until it does). @param {number} id */
  user(id) {
    return this.participants.get(id) || { id, username: "…" };
  }

  /** The others now in the call, per the server: connections to those who left close. @param {User[]} users */
  setParticipants(users) {
    const ids = new Set();
    for (const user of users) {
      if (user.id === this.me.id) continue;
      ids.add(user.id);
      this.participants.set(user.id, user);
    }
    for (const id of [...this.participants.keys()]) if (!ids.has(id)) this.drop(id);
    if (this.state === "ringing" && ids.size) this.state = "connecting";
    this.update();
  }

  /** Close participant `id`'s connection and forget them. @param {number} id */
  drop(id) {
    const peer = this.peers.get(id);
    if (peer) peer.close();
    if (peer) this.up.delete(peer);
    for (const map of [this.peers, this.participants, this.remoteMedia, this.levels, this.pending]) map.delete(id);
  }

  /** Build the connection to participant `id` around the local stream (replacing any old one). @param {number} id */
  addPeer(id) {
    const old = this.peers.get(id);
    if (old) old.close();
    if (old) this.up.delete(old);
    const peer = new Peer({
      id,
      polite: this.me.id > id,
      stream: /** @type {MediaStream} */ (this.localStream),
      media: this.media,
      config: /** @type {IceConfig} */ (this.config),
      configFetchedAt: this.configFetchedAt,
      iceConfig: this.iceConfig,
      candidates: this.pending.get(id) || [],
    });
    this.pending.delete(id);
    this.peers.set(id, peer);
    const detail = (/** @type {Event} */ e) => /** @type {CustomEvent} */ (e).detail;
    peer.addEventListener("candidate", (e) => this.signaling.send(groupCandidate(this.id, id, detail(e))));
    peer.addEventListener("description", (e) => this.signaling.send(groupDescription(this.id, id, detail(e))));
    peer.addEventListener("connected", () => this.peerConnected(peer));
    peer.addEventListener("down", () => {
      this.up.delete(peer);
      this.update();
      if (this.me.id < id) setTimeout(() => this.replaceIfDown(peer), REPLACE_AFTER_MS);
    });
    peer.addEventListener("stalled", () => this.replaceIfDown(peer)); // connected, no media: recovery.js
    peer.addEventListener("change", () => this.update());
    return peer;
  }

  /**
   * Still not up and still the pair's connection: offer a new one in its place, once signalling is
   * up (an offer sent into a closed socket is lost). @param {Peer} peer
   */
  replaceIfDown(peer) {
    if (this.state === "ended" || peer.closed || this.up.has(peer) || this.peers.get(peer.id) !== peer) return;
    if (this.signaling.state !== "open") setTimeout(() => this.replaceIfDown(peer), REPLACE_AFTER_MS);
    else this.offerTo(this.user(peer.id), true);
  }

  /**
   * Offer to `user` from a new connection: as the newcomer, or (`restart`, and always while
   * resuming) as a restart that makes them replace the connection they had to this page.
   * @param {User} user @param {boolean} [restart]
   */
  async offerTo(user, restart = false) {
    if (!(await this.ready) || this.state === "ended" || user.id === this.me.id) return;
    this.participants.set(user.id, user);
    const peer = this.addPeer(user.id);
    peer.rejoining = true; // Peer.gotDescription takes the answer as the end of this first exchange
    const sdp = await peer.offer();
    if (sdp === null || peer.closed) return;
    this.signaling.send(groupDescription(this.id, user.id, { type: "offer", sdp }, restart || this.resuming));
    peer.sendCandidates();
    setTimeout(() => this.replaceIfDown(peer), REOFFER_AFTER_MS);
    this.update();
  }

  /**
   * A description from participant `from`: an offer from a connection we have none for (or a
   * restart) gets a new Peer and an answer; the rest is perfect negotiation on the pair's Peer.
   * @param {number} from @param {RTCSessionDescriptionInit} description @param {boolean} restart
   */
  async gotDescription(from, description, restart) {
    if (!(await this.ready) || this.state === "ended") return;
    const peer = this.peers.get(from);
    if (description.type === "offer" && (!peer || restart || !peer.negotiated)) {
      // Both offered from new connections at once: the polite one (larger id) gives way.
      if (peer && peer.rejoining && this.me.id < from) return;
      const fresh = this.addPeer(from);
      const sdp = await fresh.answer(/** @type {string} */ (description.sdp));
      if (sdp === null) return;
      this.signaling.send(groupDescription(this.id, from, { type: "answer", sdp }));
      fresh.sendCandidates();
      this.update();
      return;
    }
    if (peer) await peer.gotDescription(description);
  }

  /** @param {number} from @param {RTCIceCandidateInit} candidate */
  async gotCandidate(from, candidate) {
    const peer = this.peers.get(from);
    if (peer) await peer.addCandidate(candidate);
    else this.pending.set(from, [...(this.pending.get(from) || []), candidate]);
  }

  /** @param {number} from @param {{audio: boolean, video: boolean}} media */
  gotMedia(from, media) {
    this.remoteMedia.set(from, { audio: media.audio, video: media.video });
    this.update();
  }

  /** @param {Peer} peer */
  peerConnected(peer) {
    if (this.state === "ended" || peer.closed) return;
    this.up.add(peer);
    if (this.connectedAt === null) this.connectedAt = Date.now();
    this.sendMedia(); // (again) after every (re)connection, so a new connection learns it
    this.update();
  }

  /** The call's state from its connections', then tell the views. */
  update() {
    if (this.state !== "ended") {
      if ([...this.up].some((p) => !p.closed)) this.state = "connected";
      else if (this.connectedAt !== null && this.participants.size) this.state = "reconnecting";
      else if (this.state !== "ringing" || this.participants.size) this.state = "connecting";
    }
    this.onchange(this);
  }

  /** Tell everyone whether our microphone and camera are on. */
  sendMedia() {
    if (this.state === "ended" || !this.localStream) return;
    const audio = this.localStream.getAudioTracks().length > 0 && !this.muted;
    const video = this.localStream.getVideoTracks().length > 0 && !this.cameraOff;
    this.signaling.send(callMedia(this.id, audio, video));
  }

  /** @param {boolean} muted */
  setMuted(muted) {
    if (!this.localStream) return;
    for (const track of this.localStream.getAudioTracks()) track.enabled = !muted;
    this.muted = muted;
    this.sendMedia();
    this.onchange(this);
  }

  /** Camera off or on; on in a voice call starts the camera and sends it to everyone. @param {boolean} off */
  async setCameraOff(off) {
    const stream = this.localStream;
    if (!stream) return;
    if (!off && !stream.getVideoTracks().length) {
      try {
        const track = await startCamera({});
        if (this.state === "ended") return track.stop();
        stream.addTrack(track);
        if (this.sfu) await this.sfu.sendVideo(track);
        else await Promise.all([...this.peers.values()].filter((p) => !p.closed).map((p) => p.sendVideo(track, stream)));
      } catch (error) {
        this.warning = (error && error.message) || String(error);
      }
    }
    for (const track of stream.getVideoTracks()) track.enabled = !off;
    this.cameraOff = off;
    this.sendMedia();
    this.onchange(this);
  }

  /** The network changed or signalling came back: every open connection restarts ICE. @param {"online"|"connection"|"signaling"} reason */
  networkChanged(reason) {
    // Through the SFU: restart ICE on both connections; if that cannot be done or finds no path,
    // start over (call_resume: new connections, the old ones dropped). A socket that came back
    // resumes the call itself (GroupCalls).
    if (this.sfu) return void (reason !== "signaling" && this.restartSfu(this.sfu));
    for (const peer of this.peers.values()) if (!peer.closed) peer.networkChanged(reason);
  }

  /** @param {SfuLink} link */
  async restartSfu(link) {
    // Fresh TURN credentials for the new paths; none fetched (offline still): the ones held.
    const fresh = /** @type {RTCConfiguration} */ (/** @type {unknown} */ (await this.iceConfig()));
    const ok = await link.restart(fresh.iceServers?.length ? fresh : undefined);
    if (!ok && this.sfu === link && this.state !== "ended") this.signaling.send(callResume(this.id));
  }

  /** Work out how loud each participant is now; tell the views when someone starts or stops speaking. */
  measureLevels() {
    if (this.state === "ended") return;
    let changed = false;
    /** @type {Set<MediaStreamTrack>} */
    const heard = new Set();
    for (const [id, peer] of this.peers) {
      const track = peer.closed ? null : peer.remoteStream.getAudioTracks()[0];
      if (!track) continue;
      heard.add(track);
      const was = this.levels.get(id) || 0;
      const level = Math.max(this.meter.level(track), was * LEVEL_DECAY);
      this.levels.set(id, level);
      if (was > SPEAKING_LEVEL !== level > SPEAKING_LEVEL) changed = true;
    }
    this.meter.keepOnly(heard);
    if (changed) this.onchange(this);
  }

  /** Whether participant `id` is speaking now. @param {number} id */
  speaking(id) {
    return (this.levels.get(id) || 0) > SPEAKING_LEVEL && this.remoteMedia.get(id)?.audio !== false;
  }

  /** Each participant's connection state and one stats walk, by username (tests, the readout). */
  async stats() {
    /** @type {Record<string, any>} */
    const out = {};
    // A connection torn down meanwhile may never settle its getStats (Firefox, once, under load):
    // each participant's stats have STATS_WITHIN_MS, and are null past it.
    const late = () => new Promise((resolve) => setTimeout(() => resolve(null), STATS_WITHIN_MS));
    const live = [...this.peers].filter(([, peer]) => !peer.closed);
    const got = await Promise.all(live.map(([, peer]) => Promise.race([peer.stats().catch(() => null), late()])));
    live.forEach(([id], i) => (out[this.user(id).username] = got[i]));
    return out;
  }

  /** Tear everything down: tracks, timers, every connection. @param {GroupEndReason} reason */
  end(reason) {
    if (this.state === "ended") return;
    this.state = "ended";
    this.endReason = reason;
    clearInterval(this.levelTimer);
    this.meter.close();
    if (this.localStream) for (const track of this.localStream.getTracks()) track.stop();
    for (const peer of this.peers.values()) peer.close();
    if (this.sfu) this.sfu.close();
    this.onchange(this);
  }
}

