// Camera and microphone: constraints, device choice, camera flip, and errors in plain words.

export class MediaError extends Error {
  /** @param {"no-device"|"denied"|"busy"|"insecure"|"unknown"} code @param {string} message */
  constructor(code, message) {
    super(message);
    this.code = code;
  }
}

const AUDIO = { echoCancellation: true, noiseSuppression: true, autoGainControl: true };

/** @param {string} facingMode @param {string} [deviceId] */
const video = (facingMode, deviceId) =>
  deviceId
    ? { deviceId: { exact: deviceId }, width: { ideal: 640 }, height: { ideal: 480 } }
    : { facingMode, width: { ideal: 640 }, height: { ideal: 480 } };

/** @param {any} error @param {"audio"|"video"} kind */
function explain(error, kind) {
  const what = kind === "video" ? "camera or microphone" : "microphone";
  switch (error && error.name) {
    case "NotAllowedError":
    case "SecurityError":
      return new MediaError("denied", `Permission to use your ${what} was denied. Allow it in the browser's site settings and try again.`);
    case "NotFoundError":
    case "OverconstrainedError":
      return new MediaError("no-device", `No ${what} was found on this device.`);
    case "NotReadableError":
    case "AbortError":
      return new MediaError("busy", `Your ${what} is in use by another app. Close it and try again.`);
    default:
      return new MediaError("unknown", `Could not start your ${what}: ${(error && error.message) || error}`);
  }
}

/**
 * Get a stream for a call. A video call on a device without a camera falls back to audio only and
 * says so in `stream.parleyWarning`.
 * @param {"audio"|"video"} kind
 * @param {{audioDeviceId?: string, videoDeviceId?: string, facingMode?: string}} [choice]
 * @returns {Promise<MediaStream & {parleyWarning?: string}>}
 */
export async function getMedia(kind, choice = {}) {
  if (!navigator.mediaDevices || !navigator.mediaDevices.getUserMedia) {
    throw new MediaError("insecure", "Calls need a secure (https) connection and a browser with camera support.");
  }
  const audio = choice.audioDeviceId ? { ...AUDIO, deviceId: { exact: choice.audioDeviceId } } : AUDIO;
  try {
    if (kind === "audio") return await navigator.mediaDevices.getUserMedia({ audio });
    return await navigator.mediaDevices.getUserMedia({ audio, video: video(choice.facingMode || "user", choice.videoDeviceId) });
  } catch (error) {
    if (kind === "video" && error && (error.name === "NotFoundError" || error.name === "OverconstrainedError")) {
      try {
        /** @type {MediaStream & {parleyWarning?: string}} */
        const stream = await navigator.mediaDevices.getUserMedia({ audio });
        stream.parleyWarning = "No camera found: you are sending audio only.";
        return stream;
      } catch (audioError) {
        throw explain(audioError, "audio");
      }
    }
    throw explain(error, kind);
  }
}

/**
 * The devices a person picks for their calls, remembered for the next one (session.js).
 * @typedef {{audioDeviceId?: string, videoDeviceId?: string, audioOutputId?: string}} DeviceChoice
 */

// Entries that stand for another device rather than being one (Chromium lists them first).
const ALIASES = new Set(["default", "communications"]);

/** List microphones, cameras and speakers (labels appear once permission was granted). */
export async function listDevices() {
  const devices = navigator.mediaDevices ? await navigator.mediaDevices.enumerateDevices() : [];
  return {
    audioInputs: devices.filter((d) => d.kind === "audioinput"),
    videoInputs: devices.filter((d) => d.kind === "videoinput"),
    audioOutputs: devices.filter((d) => d.kind === "audiooutput" && d.deviceId && !ALIASES.has(d.deviceId)),
  };
}

/** Whether a page can send its sound to a speaker of its choice (HTMLMediaElement.setSinkId). */
export function canChooseSpeaker() {
  return typeof HTMLMediaElement !== "undefined" && "setSinkId" in HTMLMediaElement.prototype;
}

/** The speakers a person can choose between: none where there is no choice to make. */
export async function speakers() {
  if (!canChooseSpeaker()) return [];
  const { audioOutputs } = await listDevices();
  return audioOutputs.length > 1 ? audioOutputs : [];
}

export async function canSwitchCamera() {
  return (await listDevices()).videoInputs.length > 1;
}

/**
 * Get a video track from the other camera (front <-> back), or from the chosen one.
 * @param {string} facingMode @param {string} [deviceId]
 */
export async function otherCamera(facingMode, deviceId) {
  const stream = await navigator.mediaDevices.getUserMedia({ video: video(facingMode, deviceId) });
  return stream.getVideoTracks()[0];
}

/** Get the camera's video track for a call that had none (Camera on in a voice call). @param {{videoDeviceId?: string}} choice */
export async function startCamera(choice) {
  try {
    return await otherCamera("user", choice.videoDeviceId);
  } catch (error) {
    throw explain(error, "video");
  }
}

// Screen sharing: desktop browsers only. Phones either lack getDisplayMedia or cannot pick a screen.
const PHONE_UA = /Android|iPhone|iPad|iPod|Mobi/i;

/** Whether this browser can share a screen, window or tab (getDisplayMedia on a desktop). */
export function canShareScreen() {
  const devices = navigator.mediaDevices;
  if (!devices || typeof devices.getDisplayMedia !== "function") return false;
  const hints = /** @type {any} */ (navigator).userAgentData;
  const touchOnly = typeof matchMedia === "function" && matchMedia("(hover: none) and (pointer: coarse)").matches;
  return !(hints && hints.mobile) && !PHONE_UA.test(navigator.userAgent) && !touchOnly;
}

/** Ask for a screen, window or tab to share; its video track (no sound: the microphone goes on). */
export async function getScreen() {
  const stream = await navigator.mediaDevices.getDisplayMedia({ video: true, audio: false });
  return stream.getVideoTracks()[0];
}
