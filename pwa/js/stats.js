// One walk over an RTCStatsReport, read by the quality readout (peer.js) and by the tests (through
// CallManager.stats()), so both see the same numbers. Pure: no DOM, no peer connection.

/**
 * @typedef {{localType?: string, remoteType?: string, nominated: boolean, selected: boolean, state: string}} Pair
 * @typedef {{
 *   video: {framesDecoded: number, bytesReceived: number, frameWidth: number, frameHeight: number, framesEncoded: number},
 *   audio: {bytesReceived: number, bytesSent: number, packetsSent: number, totalAudioEnergy: number},
 *   inbound: {bytes: number, packetsLost: number, packetsReceived: number},
 *   rttMs: number|null,
 *   pairs: Pair[],
 * }} Stats
 * @typedef {"good"|"fair"|"poor"|"no_media"|"reconnecting"} QualityLabel
 * @typedef {{rttMs: number|null, bitrateKbps: number|null, packetsLostPct: number|null, label: QualityLabel}} Quality
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
  let label = "good";
  // A frozen path can stay "connected" for seconds: no new bytes means no media, whatever ICE says.
  if (down) label = "reconnecting";
  else if (!flowing) label = "no_media";
  else if ((rtt !== null && rtt > 400) || lossPct > 5) label = "poor";
  else if ((rtt !== null && rtt > 200) || lossPct > 2) label = "fair";
  return { rttMs: rtt, bitrateKbps: bitrate, packetsLostPct: lossPct, label };
}
