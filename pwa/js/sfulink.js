// A group call through the SFU (Janus, behind Parley): two connections instead of one per person.
// The sending one carries our microphone and camera (we offer, Parley brings Janus's answer); the
// receiving one carries everyone else (Parley brings Janus's offer, with `streams` saying whose
// audio or video each m-line is, and we answer; again whenever someone comes or goes). Each other
// participant is an SfuRemote, shaped like a mesh Peer where views and GroupCall read one (its
// stream, `closed`, stats), so tiles and the speaking highlight work the same. No DOM.

import { sfuCandidate, sfuDescription } from "./protocol.js";
import { mediaBack, ufrag } from "./recovery.js";
import { walkStats } from "./stats.js";

/** @typedef {{mid: string, user_id: number, kind: "audio"|"video"}} SfuStream */

/** One other participant's media, as the receiving connection brings it. */
export class SfuRemote {
  /** @param {SfuLink} link @param {number} id */
  constructor(link, id) {
    this.link = link;
    this.id = id;
    this.closed = false;
    this.remoteStream = new MediaStream();
  }

  close() {
    this.closed = true;
  }

  /** This participant's part of the receiving connection's stats (the same shape as a Peer's). */
  async stats() {
    return this.link.statsFor(this.id);
  }

  /** The network changed: the link restarts ICE for everyone (GroupCall.networkChanged). */
  networkChanged() {}
}

export class SfuLink extends EventTarget {
  /**
   * @param {{callId: string, stream: MediaStream, config: RTCConfiguration,
   *          signaling: import("./signaling.js").SignalingClient}} init
   */
  constructor({ callId, stream, config, signaling }) {
    super();
    Object.assign(this, { callId, stream, config, signaling });
    this.closed = false;
    /** @type {RTCPeerConnection|null} */
    this.publisher = null;
    /** @type {RTCPeerConnection|null} */
    this.subscriber = null;
    /** @type {Map<string, SfuStream>} what each m-line of the receiving connection carries */
    this.streams = new Map();
    /** @type {Map<number, SfuRemote>} */
    this.remotes = new Map();
    /** @type {Promise<void>} descriptions are taken one at a time, in order */
    this.queue = Promise.resolve();
    /** @type {object|null} an ICE restart under way (restart()) */
    this.recovering = null;
  }

  /** Offer our microphone and camera to the call. */
  async publish() {
    const pc = (this.publisher = this.connection("publish"));
    for (const track of this.stream.getTracks()) pc.addTransceiver(track, { direction: "sendonly", streams: [this.stream] });
    await this.offer();
  }

  /** Start sending a camera started mid-call (a voice call's Camera on): a new offer. @param {MediaStreamTrack} track */
  async sendVideo(track) {
    if (!this.publisher || this.closed) return;
    this.publisher.addTransceiver(track, { direction: "sendonly", streams: [this.stream] });
    await this.offer();
  }

  /**
   * The network changed: restart ICE on both connections, keeping them and every subscription.
   * Our offer with new ICE credentials for the sending connection also has Parley ask Janus for a
   * restart offer of the receiving one. False when no restart can be made (not negotiated yet) or
   * media did not come back on a new path: the call then starts over (call_resume).
   * @param {RTCConfiguration} [config] fresh ICE servers (TURN credentials) for the new paths
   * @returns {Promise<boolean>}
   */
  async restart(config) {
    if (this.recovering) return true; // one is under way
    const [pub, sub] = [this.publisher, this.subscriber];
    if (this.closed || !pub || pub.signalingState !== "stable" || (sub && sub.signalingState !== "stable")) return false;
    const token = (this.recovering = {});
    const current = () => !this.closed && this.recovering === token;
    const old = { pub: ufrag(pub.localDescription), sub: sub ? ufrag(sub.localDescription) : "" };
    this.emit("change");
    try {
      if (config) for (const pc of [pub, sub]) pc?.setConfiguration(config);
      await this.offer({ iceRestart: true });
      const outcomes = await Promise.all([mediaBack(pub, old.pub, current, false), sub ? mediaBack(sub, old.sub, current) : "flowing"]);
      return this.closed || outcomes.every((o) => o === "flowing");
    } catch (error) {
      console.warn("sfu restart", error);
      return this.closed;
    } finally {
      if (this.recovering === token) this.recovering = null;
      this.emit("change");
    }
  }

  /** @param {{pc: "publish"|"subscribe", description: RTCSessionDescriptionInit, streams?: SfuStream[]}} msg */
  gotDescription(msg) {
    this.queue = this.queue.then(() => this.take(msg)).catch((error) => console.warn("sfu description", error));
    return this.queue;
  }

  /** @param {{pc: "publish"|"subscribe", description: RTCSessionDescriptionInit, streams?: SfuStream[]}} msg */
  async take(msg) {
    if (this.closed) return;
    if (msg.pc === "publish") {
      if (this.publisher && msg.description.type === "answer") await this.publisher.setRemoteDescription(msg.description);
      return;
    }
    if (msg.description.type !== "offer") return;
    this.streams = new Map((msg.streams || []).map((s) => [String(s.mid), s]));
    const pc = this.subscriber || (this.subscriber = this.connection("subscribe"));
    await pc.setRemoteDescription(msg.description);
    const answer = await pc.createAnswer();
    await pc.setLocalDescription(answer);
    if (this.closed) return;
    this.signaling.send(sfuDescription(this.callId, "subscribe", { type: "answer", sdp: answer.sdp || "" }));
    this.place();
  }

  /** Put each receiving track in its participant's stream; take out the ones that stopped. */
  place() {
    if (!this.subscriber) return;
    /** @type {Map<number, MediaStreamTrack[]>} */
    const wanted = new Map();
    for (const t of this.subscriber.getTransceivers()) {
      const stream = t.mid === null ? undefined : this.streams.get(t.mid);
      if (!stream || t.currentDirection === "inactive" || t.direction === "inactive") continue;
      wanted.set(stream.user_id, [...(wanted.get(stream.user_id) || []), t.receiver.track]);
    }
    for (const [id, tracks] of wanted) {
      let remote = this.remotes.get(id);
      if (!remote || remote.closed) this.remotes.set(id, (remote = new SfuRemote(this, id)));
      for (const track of remote.remoteStream.getTracks()) if (!tracks.includes(track)) remote.remoteStream.removeTrack(track);
      for (const track of tracks) if (!remote.remoteStream.getTracks().includes(track)) remote.remoteStream.addTrack(track);
    }
    for (const [id, remote] of this.remotes) if (!wanted.has(id)) remote.remoteStream.getTracks().forEach((t) => remote.remoteStream.removeTrack(t));
    this.emit("change");
  }

  /** Whether media can flow: the receiving connection is up (or, alone in the call, the sending one). */
  get up() {
    const state = (this.subscriber || this.publisher)?.connectionState;
    return !this.closed && !this.recovering && state === "connected";
  }

  /** One participant's stats, in the shape GroupCall.stats and the tests read for a Peer. @param {number} id */
  async statsFor(id) {
    const pc = this.subscriber;
    /** @type {Map<string, any>} */
    const merged = new Map();
    if (pc) {
      for (const t of pc.getTransceivers()) {
        const stream = t.mid === null ? undefined : this.streams.get(t.mid);
        if (!stream || stream.user_id !== id) continue;
        (await t.receiver.getStats()).forEach((s, key) => merged.set(key, s));
      }
    }
    return {
      connectionState: pc ? pc.connectionState : "new",
      iceConnectionState: pc ? pc.iceConnectionState : "new",
      ...walkStats(/** @type {any} */ (merged)),
    };
  }

  close() {
    if (this.closed) return;
    this.closed = true;
    for (const pc of [this.publisher, this.subscriber]) {
      if (!pc) continue;
      pc.onicecandidate = pc.onconnectionstatechange = pc.ontrack = null;
      pc.close();
    }
    for (const remote of this.remotes.values()) remote.close();
  }

  // --- helpers -----------------------------------------------------------------------------

  /** @param {"publish"|"subscribe"} name */
  connection(name) {
    const pc = new RTCPeerConnection(this.config);
    pc.onicecandidate = (e) => {
      if (!this.closed) this.signaling.send(sfuCandidate(this.callId, name, e.candidate ? e.candidate.toJSON() : null));
    };
    pc.onconnectionstatechange = () => this.emit(pc.connectionState === "connected" ? "up" : "change");
    if (name === "subscribe") pc.ontrack = () => this.place();
    return pc;
  }

  /** @param {RTCOfferOptions} [options] */
  async offer(options) {
    const pc = this.publisher;
    if (!pc) return;
    const offer = await pc.createOffer(options);
    await pc.setLocalDescription(offer);
    if (!this.closed) this.signaling.send(sfuDescription(this.callId, "publish", { type: "offer", sdp: offer.sdp || "" }));
  }

  /** @param {string} type */
  emit(type) {
    if (!this.closed) this.dispatchEvent(new Event(type));
  }
}
