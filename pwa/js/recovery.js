// Whether media flows on a connection that ICE calls connected: after a network-change ICE restart
// (Peer.networkChanged), and all along the call. ICE can call a pair connected that carries no media:
// after an ICE restart between Chromium and Firefox, Chromium (controlling) may send on another of
// its nominated pairs than the one Firefox selected, and Firefox drops the RTP that arrives off its
// selected pair while consent checks go on passing (docs/benchmarks.md, section 6). Another ICE
// restart can land the same way; a new connection does not, so a stalled Peer raises "stalled" and
// its call replaces the connection. No DOM and no signalling: a Peer's connection and its stats.

import { walkStats } from "./stats.js";

const MEDIA_POLL_MS = 250; // after a network restart, how often to look for media on the new path
// A network restart not answered and connected by then hands over to the down/retry path.
const RECOVER_WITHIN_MS = 10000;
// Answered and connected after a network restart, and still no media this long after: stalled.
const SETTLED_NO_MEDIA_MS = 4000;
// Quality walks (2 s apart) in a row with almost no inbound packets while ICE is connected and the
// other side sends: stalled (the side that did not restart learns it this way).
const STALL_WALKS = 4;
// Fewer packets than this in a walk is "almost none": a muted microphone still sends 50 a second,
// while a sender with no track (Firefox) trickles a few.
const STALL_PACKETS = 10;

/** @param {number} ms */
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

/** @param {RTCSessionDescription|null} d @returns {string} the description's ICE username fragment */
export const ufrag = (d) => ((d && /a=ice-ufrag:(\S+)/.exec(d.sdp)) || [])[1] || "";

/** Media received so far on `pc` (bytes and packets); -1 each once it is closed. @param {RTCPeerConnection} pc */
async function inbound(pc) {
  try {
    const { bytes, packetsReceived: packets } = walkStats(await pc.getStats()).inbound;
    return { bytes, packets };
  } catch {
    return { bytes: -1, packets: -1 }; // closed meanwhile
  }
}

/** Whether media packets arrive on `pc` now (any within `ms`). @param {RTCPeerConnection} pc @param {number} [ms] */
export async function arriving(pc, ms = 500) {
  const before = (await inbound(pc)).packets;
  await sleep(ms);
  return before >= 0 && (await inbound(pc)).packets > before;
}

/**
 * Follow a network restart until media flows on the new path.
 * @param {RTCPeerConnection} pc @param {string} oldUfrag our ICE ufrag before the restart
 * @param {() => boolean} current false once the connection closed or another restart took over
 * @param {boolean} [inbound_] whether media comes in on `pc` (false: a sending-only connection,
 *   "flowing" once answered and connected)
 * @returns {Promise<"flowing"|"stalled"|"down"|"gone">} "stalled": answered and connected, no media;
 *   "down": not answered and connected within RECOVER_WITHIN_MS; "gone": `current` turned false
 */
export async function mediaBack(pc, oldUfrag, current, inbound_ = true) {
  const since = Date.now();
  let [before, settledAt] = [-1, 0];
  for (;;) {
    await sleep(MEDIA_POLL_MS);
    if (!current()) return "gone";
    const settled = pc.signalingState === "stable" && ufrag(pc.localDescription) !== oldUfrag && pc.connectionState === "connected";
    if (settled && !inbound_) return "flowing";
    const bytes = settled ? (await inbound(pc)).bytes : -1;
    if (!current()) return "gone";
    if (settled && before >= 0 && bytes > before) return "flowing";
    before = bytes;
    settledAt = settled ? settledAt || Date.now() : 0;
    if (settledAt && Date.now() - settledAt > SETTLED_NO_MEDIA_MS) return "stalled";
    if (!settledAt && Date.now() - since > RECOVER_WITHIN_MS) return "down";
  }
}

/** Whether the other side sends us media on `pc` (a negotiated transceiver that receives). @param {RTCPeerConnection} pc */
const receiving = (pc) => pc.getTransceivers().some((t) => t.currentDirection === "sendrecv" || t.currentDirection === "recvonly");

/** Counts quality walks with almost no inbound packets while ICE is connected and the other side sends. */
export class StallWatch {
  constructor() {
    this.quiet = 0;
    this.packets = -1;
  }

  /**
   * One quality walk: true once, when the connection has just gone STALL_WALKS walks without media.
   * @param {RTCPeerConnection} pc @param {number} packets inbound media packets now
   */
  stalled(pc, packets) {
    const still = this.packets >= 0 && packets - this.packets < STALL_PACKETS && pc.connectionState === "connected" && receiving(pc);
    this.packets = packets;
    this.quiet = still ? this.quiet + 1 : 0;
    return this.quiet === STALL_WALKS;
  }

  /** Media flowed on the walk just counted. */
  get flowing() {
    return this.quiet === 0;
  }
}
