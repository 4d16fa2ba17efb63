// Who is speaking in a group call: the loudness of each remote audio track, read through a Web Audio
// AnalyserNode (the same in every browser; inbound-rtp's audio energy is updated too seldom, and not
// by every browser, to tell a voice from silence). No DOM: groupcall.js asks, views show it.

const WINDOW = 2048; // samples read each time (about 43 ms at 48 kHz)

export class SpeakingMeter {
  constructor() {
    /** @type {AudioContext|null} */
    this.ctx = null;
    /** @type {Map<MediaStreamTrack, {source: MediaStreamAudioSourceNode, analyser: AnalyserNode}>} */
    this.taps = new Map();
    this.samples = new Float32Array(WINDOW);
  }

  /** The page's audio context for the meter, made on first use; null without Web Audio. */
  context() {
    if (this.ctx) return this.ctx;
    const Context = globalThis.AudioContext || /** @type {any} */ (globalThis).webkitAudioContext;
    if (!Context) return null;
    try {
      this.ctx = /** @type {AudioContext} */ (new Context());
    } catch {
      return null; // e.g. too many contexts: no highlight, nothing else lost
    }
    return this.ctx;
  }

  /** The loudness (RMS, 0..1) of `track` now; 0 where it cannot be heard here. @param {MediaStreamTrack} track */
  level(track) {
    const ctx = this.context();
    if (!ctx || track.readyState === "ended") return 0;
    if (ctx.state === "suspended") ctx.resume().catch(() => {});
    let tap = this.taps.get(track);
    if (!tap) {
      // Nothing is connected to the speakers: the meter only listens.
      const source = ctx.createMediaStreamSource(new MediaStream([track]));
      const analyser = ctx.createAnalyser();
      analyser.fftSize = WINDOW;
      source.connect(analyser);
      tap = { source, analyser };
      this.taps.set(track, tap);
    }
    tap.analyser.getFloatTimeDomainData(this.samples);
    let sum = 0;
    for (const x of this.samples) sum += x * x;
    return Math.sqrt(sum / this.samples.length);
  }

  /** Stop listening to the tracks that are gone. @param {Set<MediaStreamTrack>} keep */
  keepOnly(keep) {
    for (const [track, tap] of this.taps) {
      if (keep.has(track)) continue;
      tap.source.disconnect();
      this.taps.delete(track);
    }
  }

  close() {
    this.keepOnly(new Set());
    if (this.ctx) this.ctx.close().catch(() => {});
    this.ctx = null;
  }
}
