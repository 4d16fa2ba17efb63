// Ringing you can hear, synthesised with Web Audio (no audio files): a ringback tone for the caller
// while the other side rings, a ringtone for the callee while the incoming dialog shows. No DOM:
// main.js has it follow the CallManager and a view calls unlock() on the first tap, since browsers
// keep audio suspended until the page has had one. While audio stays blocked the ringtone falls
// back to vibration where the browser allows it; the dialog is the visual alert either way.
// Tests hear it as window.parley.ringer (state, peak()).

/** @typedef {"ringback"|"ringtone"} RingKind */
/**
 * @typedef {{freqs: number[], bursts: [number, number][], period: number, volume: number}} Pattern
 * Sine tones mixed together, sounding for each [start, length] burst (seconds) of every period.
 */

/** @type {Record<RingKind, Pattern>} */
export const PATTERNS = {
  // North American ringback (ITU-T E.180): 440 + 480 Hz, 2 s on, 4 s off; quiet, it is a cue.
  ringback: { freqs: [440, 480], bursts: [[0, 2]], period: 6, volume: 0.12 },
  // A double ring every 3 s on other notes, so no one mistakes it for their own ringback.
  ringtone: {
    freqs: [660, 880],
    bursts: [
      [0, 0.4],
      [0.6, 0.4],
    ],
    period: 3,
    volume: 0.25,
  },
};

// Tones are scheduled ahead for this long; the ring timeouts (35 s here, 30 s on the server) are far shorter.
const SCHEDULED_SECONDS = 180;
const FADE = 0.02; // seconds of ramp at each edge: no clicks
const BUZZ = Array.from({ length: 30 }, (_, i) => (i % 2 ? 400 : 800)); // ms on/off, about 18 s

/** What should ring for this page's calls. @param {import("./call.js").CallManager} calls @returns {RingKind|null} */
export function ringFor(calls) {
  if (calls.incoming) return "ringtone";
  const call = calls.call;
  return call && call.role === "caller" && call.state === "ringing" ? "ringback" : null;
}

/** Chromium refuses vibration (logging an error) until the page has had a tap. */
function mayVibrate() {
  if (!("vibrate" in navigator)) return false;
  const activation = /** @type {any} */ (navigator).userActivation;
  return !activation || activation.hasBeenActive;
}

export class Ringer {
  constructor() {
    /** @type {AudioContext|null} one for the page: each new one would need another tap */
    this.ctx = null;
    /** @type {AnalyserNode|null} everything the ringer plays passes through it to the speaker */
    this.output = null;
    /** @type {RingKind|null} */
    this.kind = null;
    /** @type {(() => void)|null} silences the tone that is playing */
    this.silence = null;
    this.vibrating = false;
    this.idleTimer = 0;
  }

  /** Whether the ringing can be heard now (the audio context runs). */
  get audible() {
    return Boolean(this.kind && this.silence && this.ctx && this.ctx.state === "running");
  }

  /** What is ringing and how, for tests and the curious. */
  get state() {
    return {
      kind: this.kind,
      audible: this.audible,
      blocked: Boolean(this.kind) && !this.audible,
      vibrating: this.vibrating,
      context: this.ctx ? this.ctx.state : "none",
    };
  }

  /** Ring what the CallManager's state asks for, from now on. @param {import("./call.js").CallManager} calls */
  follow(calls) {
    const update = () => this.ring(ringFor(calls));
    for (const type of ["call", "change", "ended", "cleared", "incoming", "incoming_end"]) {
      calls.addEventListener(type, update);
    }
    update();
  }

  /** Start ringing `kind`, or stop with null. @param {RingKind|null} kind */
  ring(kind) {
    if (kind === this.kind) return;
    this.stopTone();
    this.kind = kind;
    const ctx = kind ? this.context() : null;
    if (kind && ctx) {
      clearTimeout(this.idleTimer);
      this.silence = playPattern(ctx, /** @type {AnalyserNode} */ (this.output), PATTERNS[kind]);
      if (ctx.state !== "running") {
        // Allowed once the page has had a tap; before that it stays suspended until unlock().
        // Decide on vibrating once the resume had its chance, not in the moment it takes.
        ctx.resume().catch(() => {});
        setTimeout(() => this.buzz(), 300);
        return;
      }
    } else if (this.ctx) {
      this.idleSoon();
    }
    this.buzz();
  }

  /** A tap or key anywhere: the browser now lets audio start, so resume what should ring. */
  unlock() {
    const ctx = this.ctx;
    if (this.kind && ctx && ctx.state === "suspended") ctx.resume().catch(() => {});
  }

  /** The loudest frequency coming out now and its level in dB (-Infinity when silent). */
  peak() {
    const { ctx, output } = this;
    if (!ctx || !output || ctx.state !== "running") return { hz: 0, db: -Infinity };
    const bins = new Float32Array(output.frequencyBinCount);
    output.getFloatFrequencyData(bins);
    let best = 0;
    for (let i = 1; i < bins.length; i++) if (bins[i] > bins[best]) best = i;
    return { hz: (best * ctx.sampleRate) / output.fftSize, db: bins[best] };
  }

  // --- helpers -----------------------------------------------------------------------------

  /** The page's audio context and output, made on first use; null where Web Audio is missing. */
  context() {
    if (this.ctx) return this.ctx;
    const Context = globalThis.AudioContext || /** @type {any} */ (globalThis).webkitAudioContext;
    if (!Context) return null;
    try {
      const ctx = /** @type {AudioContext} */ (new Context());
      const output = ctx.createAnalyser();
      output.fftSize = 4096; // about 12 Hz a bin: 440 and 480 Hz land apart
      output.smoothingTimeConstant = 0; // each reading is the sound of that moment
      output.connect(ctx.destination);
      ctx.addEventListener("statechange", () => this.buzz());
      Object.assign(this, { ctx, output });
      return ctx;
    } catch {
      return null; // e.g. too many contexts: ring without sound
    }
  }

  stopTone() {
    if (this.silence) this.silence();
    this.silence = null;
  }

  /** Let the audio device sleep once nothing rings (resuming later needs no new tap). */
  idleSoon() {
    clearTimeout(this.idleTimer);
    this.idleTimer = setTimeout(() => {
      const ctx = this.ctx;
      if (!this.kind && ctx && ctx.state === "running") ctx.suspend().catch(() => {});
    }, 500);
  }

  /** Vibrate for an incoming call while its ringtone cannot be heard; stop otherwise. */
  buzz() {
    const want = this.kind === "ringtone" && !this.audible && mayVibrate();
    if (want === this.vibrating) return;
    try {
      this.vibrating = navigator.vibrate(want ? BUZZ : 0) && want;
    } catch {
      this.vibrating = false;
    }
  }
}

/**
 * Play `pattern` into `out` from now on; return the function that silences it.
 * @param {AudioContext} ctx @param {AudioNode} out @param {Pattern} pattern
 */
function playPattern(ctx, out, pattern) {
  const envelope = ctx.createGain();
  envelope.gain.value = 0;
  envelope.connect(out);
  const tones = pattern.freqs.map((hz) => {
    const tone = ctx.createOscillator();
    tone.frequency.value = hz;
    tone.connect(envelope);
    tone.start();
    return tone;
  });
  const level = pattern.volume / pattern.freqs.length;
  const gain = envelope.gain;
  const start = ctx.currentTime + 0.05;
  for (let cycle = start; cycle < start + SCHEDULED_SECONDS; cycle += pattern.period) {
    for (const [at, length] of pattern.bursts) {
      gain.setValueAtTime(0, cycle + at);
      gain.linearRampToValueAtTime(level, cycle + at + FADE);
      gain.setValueAtTime(level, cycle + at + length - FADE);
      gain.linearRampToValueAtTime(0, cycle + at + length);
    }
  }
  return () => {
    const now = ctx.currentTime;
    if (ctx.state !== "running") {
      envelope.disconnect(); // nothing is heard: no fade needed, and time may never move again
      for (const tone of tones) tone.stop();
      return;
    }
    gain.cancelScheduledValues(now);
    gain.setValueAtTime(gain.value, now);
    gain.linearRampToValueAtTime(0, now + FADE);
    for (const tone of tones) tone.stop(now + 2 * FADE);
    tones[0].addEventListener("ended", () => envelope.disconnect());
  };
}
