// One walk over an RTCStatsReport, read by the quality readout (peer.js), the call report card
// (ReportCard, livecall.js) and the tests (through CallManager.stats()), so all see the same
// numbers. Pure: no DOM, no peer connection.

import { LIMITS } from "./wire.js";

/**
 * @typedef {{localType?: string, remoteType?: string, localProtocol?: string, relayProtocol?: string, nominated: boolean, selected: boolean, state: string}} Pair
 * @typedef {{
 *   video: {framesDecoded: number, bytesReceived: number, frameWidth: number, frameHeight: number, framesEncoded: number},
 *   audio: {bytesReceived: number, bytesSent: number, packetsSent: number, totalAudioEnergy: number},
 *   inbound: {bytes: number, packetsLost: number, packetsReceived: number},
 *   rttMs: number|null,
 *   pairs: Pair[],
 * }} Stats
 * @typedef {"good"|"fair"|"poor"|"no_media"|"reconnecting"} QualityLabel
 * @typedef {{rttMs: number|null, bitrateKbps: number|null, packetsLostPct: number|null, label: QualityLabel}} Quality
 * @typedef {"good"|"fair"|"poor"} Grade
 * @typedef {{path: "direct"|"relayed", transport: "udp"|"tcp"|"tls", rtt_ms: number|null, loss: number, reconnects: number, duration_s: number}} Report
 */

/** The readout while the path is down: no numbers worth showing. @type {Quality} */
export const RECONNECTING = Object.freeze({ rttMs: null, bitrateKbps: null, packetsLostPct: null, label: "reconnecting" });

/** Sum what a report says about media in and out, the round trip and the candidate pairs. @param {RTCStatsReport} report @returns {Stats} */
export function walkStats(report) {
  const video = { framesDecoded: 0, bytesReceived: 0, frameWidth: 0, frameHeight: 0, framesEncoded: 0 };
  const audio = { bytesReceived: 0, bytesSent: 0, packetsSent: 0, totalAudioEnergy: 0 };
  const inbound = { bytes: 0, packetsLost: 0, packetsReceived: 0 };
  /** @type {number|null} */
  let rttMs = null;
  /** @type {Map<string, any>} */
  const byId = new Map();
  report.forEach((s) => byId.set(s.id, s));
  let selectedId = "";
  /** @type {any[]} */
  const rawPairs = [];
  report.forEach((s) => {
    const kind = s.kind || s.mediaType; // older Firefox says mediaType
    if (s.type === "inbound-rtp") {
      inbound.bytes += s.bytesReceived || 0;
      inbound.packetsLost += Math.max(0, s.packetsLost || 0);
      inbound.packetsReceived += s.packetsReceived || 0;
      if (kind === "video") {
        video.framesDecoded += s.framesDecoded || 0;
        video.bytesReceived += s.bytesReceived || 0;
        video.frameWidth = s.frameWidth || video.frameWidth;
        video.frameHeight = s.frameHeight || video.frameHeight;
      } else if (kind === "audio") {
        audio.bytesReceived += s.bytesReceived || 0;
        audio.totalAudioEnergy += s.totalAudioEnergy || 0;
      }
    } else if (s.type === "outbound-rtp" && kind === "audio") {
      audio.bytesSent += s.bytesSent || 0;
      audio.packetsSent += s.packetsSent || 0;
    } else if (s.type === "outbound-rtp" && kind === "video") {
      video.framesEncoded += s.framesEncoded || 0;
    } else if (s.type === "transport" && s.selectedCandidatePairId) {
      selectedId = s.selectedCandidatePairId;
    } else if (s.type === "candidate-pair") {
      rawPairs.push(s);
      if ((s.nominated || s.selected) && s.currentRoundTripTime !== undefined) {
        rttMs = Math.round(s.currentRoundTripTime * 1000);
      }
    }
  });
  const pairs = rawPairs.map((p) => ({
    nominated: Boolean(p.nominated),
    selected: Boolean(p.selected) || p.id === selectedId,
    state: p.state,
    localType: (byId.get(p.localCandidateId) || {}).candidateType,
    remoteType: (byId.get(p.remoteCandidateId) || {}).candidateType,
    localProtocol: (byId.get(p.localCandidateId) || {}).protocol,
    relayProtocol: (byId.get(p.localCandidateId) || {}).relayProtocol,
  }));
  return { video, audio, inbound, rttMs, pairs };
}

/**
 * Rate the path from this walk (taken at `at`, ms) and the one before it (null for the first).
 * @param {Stats} now @param {{stats: Stats, at: number}|null} before @param {number} at @param {boolean} down the path is down
 * @returns {Quality}
 */
export function rate(now, before, at, down) {
  const rtt = now.rttMs;
  const { bytes, packetsLost: lost, packetsReceived: received } = now.inbound;
  const bitrate = before ? Math.round(((bytes - before.stats.inbound.bytes) * 8) / (at - before.at)) : null;
  const flowing = bytes > (before ? before.stats.inbound.bytes : 0);
  const lossPct = received + lost > 0 ? Math.round((lost / (received + lost)) * 1000) / 10 : 0;
  /** @type {QualityLabel} */
  let label = grade(rtt, lossPct);
  // A frozen path can stay "connected" for seconds: no new bytes means no media, whatever ICE says.
  if (down) label = "reconnecting";
  else if (!flowing) label = "no_media";
  return { rttMs: rtt, bitrateKbps: bitrate, packetsLostPct: lossPct, label };
}

/**
 * The quality word for a round trip and a loss: good up to 200 ms and 2 %, fair up to 400 ms and
 * 5 %, poor beyond either (a missing round trip is judged on loss alone). The live readout and the
 * call report card both use it.
 * @param {number|null} rttMs @param {number} lossPct @returns {Grade}
 */
export function grade(rttMs, lossPct) {
  if ((rttMs !== null && rttMs > 400) || lossPct > 5) return "poor";
  if ((rttMs !== null && rttMs > 200) || lossPct > 2) return "fair";
  return "good";
}

const GRADES = ["good", "fair", "poor"];
const MAX_RTT_SAMPLES = 1800; // an hour of samples every 2 s; older ones give way

/**
 * The call report card, collected while a call runs (the connection is closed when it ends, so
 * the numbers are gathered from every walk, not read at the end). `add` each walk with the
 * connection it came from (a reload brings a new one, whose counters start again).
 */
export class ReportCard {
  constructor() {
    /** @type {number[]} */
    this.rtts = [];
    /** @type {Map<object, {lost: number, received: number}>} inbound counters per connection */
    this.inbound = new Map();
    /** @type {Pair|null} the newest selected candidate pair */
    this.pair = null;
    this.reconnects = 0;
  }

  /** @param {Stats} stats one walk @param {object} source the connection it came from */
  add(stats, source) {
    const pair = stats.pairs.find((p) => p.selected) || stats.pairs.find((p) => p.nominated && p.state === "succeeded");
    if (pair && pair.localType) this.pair = pair;
    if (stats.rttMs !== null) {
      this.rtts.push(stats.rttMs);
      if (this.rtts.length > MAX_RTT_SAMPLES) this.rtts.shift();
    }
    this.inbound.set(source, { lost: stats.inbound.packetsLost, received: stats.inbound.packetsReceived });
  }

  /** The path went down (Reconnecting…). */
  reconnected() {
    this.reconnects += 1;
  }

  /** What this side sends as `call_report`, or null without a path seen. @param {number} durationS @returns {Report|null} */
  summary(durationS) {
    const pair = this.pair;
    if (!pair) return null;
    const relayed = pair.localType === "relay" || pair.remoteType === "relay";
    const proto = String((pair.localType === "relay" && pair.relayProtocol) || pair.localProtocol || "udp").toLowerCase();
    let lost = 0;
    let received = 0;
    for (const counts of this.inbound.values()) {
      lost += counts.lost;
      received += counts.received;
    }
    const sorted = [...this.rtts].sort((a, b) => a - b);
    const mid = sorted.length >> 1;
    const median = !sorted.length ? null : sorted.length % 2 ? sorted[mid] : Math.round((sorted[mid - 1] + sorted[mid]) / 2);
    const clamp = (/** @type {number} */ n, /** @type {number} */ max) => Math.min(max, Math.max(0, Math.round(n)));
    return {
      path: relayed ? "relayed" : "direct",
      transport: proto === "tcp" || proto === "tls" ? proto : "udp",
      rtt_ms: median === null ? null : clamp(median, LIMITS.MAX_REPORT_RTT_MS),
      loss: lost + received > 0 ? Math.round((lost / (lost + received)) * 10000) / 10000 : 0,
      reconnects: clamp(this.reconnects, LIMITS.MAX_REPORT_RECONNECTS),
      duration_s: clamp(durationS, LIMITS.MAX_REPORT_DURATION_S),
    };
  }
}

/**
 * What a call record's reports say, in words: the path ("relayed" if either side's was) and the
 * worse side's grade; null without a report.
 * @param {{caller?: Report|null, callee?: Report|null}|undefined} reports
 * @returns {{path: "direct"|"relayed", quality: Grade}|null}
 */
export function reportWords(reports) {
  const sides = [reports?.caller, reports?.callee].filter((r) => r && r.path);
  if (!sides.length) return null;
  const path = sides.some((r) => r?.path === "relayed") ? "relayed" : "direct";
  const grades = sides.map((r) => GRADES.indexOf(grade(r?.rtt_ms ?? null, (r?.loss || 0) * 100)));
  return { path, quality: /** @type {Grade} */ (GRADES[Math.max(...grades)]) };
}
