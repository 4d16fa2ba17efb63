// The call screen and the incoming-call dialog: they render the CallManager's state and turn taps
// into intents. They never touch RTCPeerConnection.

import { canShareScreen, canSwitchCamera, listDevices } from "../media.js";
import { durationClock, h, paintAvatar } from "./dom.js";
import { mountPictureInPicture } from "./pip.js";
import { mountSpeaker } from "./speaker.js";

/** @type {Record<string, string>} */
const STATUS = {
  calling: "Calling…",
  ringing: "Ringing…",
  connecting: "Connecting…",
  connected: "Connected",
  reconnecting: "Reconnecting…",
  ended: "Call ended",
};
/** @type {Record<string, string>} */
const ENDED = {
  declined: "Declined",
  busy: "Busy",
  timeout: "No answer",
  unsupported: "Cannot take calls on this device",
  cancelled: "Cancelled",
  disconnected: "Connection lost",
  failed: "Call failed",
  error: "Call failed",
  hangup: "",
  remote_hangup: "",
};

const $ = (/** @type {string} */ id) => /** @type {HTMLElement} */ (document.getElementById(id));

/**
 * @param {import("../call.js").CallManager} calls
 * @param {import("../signaling.js").SignalingClient} signaling
 * @param {{chooseDevices: (choice: import("../media.js").DeviceChoice) => void}} intents
 */
export function mountCallView(calls, signaling, intents) {
  const screen = $("call");
  const remoteVideo = /** @type {HTMLVideoElement} */ ($("remote-video"));
  const remoteAudio = /** @type {HTMLAudioElement} */ ($("remote-audio"));
  const localVideo = /** @type {HTMLVideoElement} */ ($("local-video"));
  const mute = $("mute");
  const camera = $("camera");
  const flip = $("switch-camera");
  const controls = /** @type {HTMLElement} */ (screen.querySelector(".controls"));
  // Security code: the same four emoji on both screens mean no one sits between the two (call.js).
  const codeEmoji = h("span", { class: "code-emoji", "aria-hidden": "true" });
  const codeWords = h("span", { class: "code-words" });
  const code = h(
    "div",
    { id: "security-code", class: "security-code", role: "group", "aria-label": "Security code", hidden: true },
    codeEmoji,
    codeWords,
    h("span", { class: "code-hint" }, "Same code on both screens: the call is end to end."),
  );
  /** @type {HTMLElement} */ (screen.querySelector(".call-info")).append(code);
  const clock = durationClock($("call-duration"), () => calls.call);
  /** @type {WakeLockSentinel|null} */
  let wakeLock = null;

  mute.addEventListener("click", () => calls.call && calls.setMuted(!calls.call.muted));
  // Camera on in a voice call (no camera track yet) starts the camera: setCameraOff(false).
  camera.addEventListener("click", () => calls.call && calls.setCameraOff(sendsCamera(calls.call)));
  // Share screen: desktop browsers with getDisplayMedia only (media.js); hidden elsewhere.
  const share = h("button", { type: "button", id: "share-screen", hidden: true }, "Share screen");
  flip.after(share);
  share.addEventListener("click", () => {
    const call = calls.call;
    if (call) (call.screenTrack ? calls.stopSharing() : calls.shareScreen()).catch(() => {});
  });
  let cameras = true; // a camera to turn on; counted when a call starts
  flip.addEventListener("click", () => calls.switchCamera().catch(() => {}));
  $("hangup").addEventListener("click", () => calls.end());
  // The whole picture by default (nothing of the other person is cut off); a tap fills the screen.
  remoteVideo.addEventListener("click", () => remoteVideo.classList.toggle("fill"));
  // A call taken up after a reload may need a tap to get the camera and microphone again.
  const rejoin = $("rejoin");
  rejoin.addEventListener("click", () => calls.rejoinNow());

  /** @param {HTMLMediaElement} el @param {MediaStream|null} stream */
  const attach = (el, stream) => {
    if (el.srcObject !== stream) {
      el.srcObject = stream;
      if (stream) el.play().catch(() => {}); // autoplay is allowed: the tap that started the call
    }
  };

  const render = () => {
    const call = calls.call;
    if (!call) {
      screen.hidden = true;
      clock.stop();
      attach(remoteVideo, null);
      attach(remoteAudio, null);
      attach(localVideo, null);
      if (wakeLock) wakeLock.release().catch(() => {});
      wakeLock = null;
      return;
    }
    screen.hidden = false;
    const live = call.state === "connected" || call.state === "reconnecting";
    const hasCamera = Boolean(call.localStream && call.localStream.getVideoTracks().length);
    // A voice call shows video too once either side turns a camera on (or shares a screen).
    const theirs = live && call.remoteMedia.video && Boolean(call.remoteStream && call.remoteStream.getVideoTracks().length);
    const voice = call.media !== "video";
    const video = !voice || theirs;
    remoteVideo.hidden = !video;
    localVideo.hidden = !hasCamera && !call.screenTrack;
    localVideo.classList.toggle("screen", Boolean(call.screenTrack)); // not mirrored, not cropped
    // Their picture once it can come and while their camera is on (their call_media says so);
    // otherwise who they are, never plain black.
    $("audio-only").hidden = video && live && call.remoteMedia.video;
    paintAvatar($("avatar"), call.peer.username);
    $("call-peer").textContent = call.peer.username;
    $("remote-camera-off").hidden = !(video && live && !call.remoteMedia.video);
    $("remote-muted").hidden = !(live && !call.remoteMedia.audio);
    // A voice call's sound stays on the audio element (its picture, muted, comes and goes without
    // a gap in the sound); a video call's plays from the video element as it always did.
    remoteVideo.muted = voice;
    attach(remoteVideo, video ? call.remoteStream : null);
    attach(remoteAudio, voice ? call.remoteStream : null);
    attach(localVideo, call.previewStream);
    let status = STATUS[call.state] || "";
    if (call.state !== "ended" && call.state !== "calling" && signaling.state !== "open" && call.state === "connected") {
      status = "Connected · reconnecting to the server…";
    }
    if (call.state === "ended" && call.endReason && ENDED[call.endReason]) status = `Call ended · ${ENDED[call.endReason]}`;
    $("call-status").textContent = status;
    $("call-error").textContent = call.error || call.warning || "";
    controls.hidden = call.state === "ended"; // nothing left to press: gone in the same tap
    mute.textContent = call.muted ? "Unmute" : "Mute";
    mute.setAttribute("aria-pressed", String(call.muted));
    const cameraOn = sendsCamera(call);
    // A camera can be added once the call is up (a renegotiation); before that only toggled.
    camera.hidden = !hasCamera && !(live && cameras);
    camera.textContent = cameraOn ? "Camera off" : "Camera on";
    camera.setAttribute("aria-pressed", String(!cameraOn));
    share.hidden = !live || !canShareScreen();
    share.textContent = call.screenTrack ? "Stop sharing" : "Share screen";
    share.setAttribute("aria-pressed", String(Boolean(call.screenTrack)));
    rejoin.hidden = !call.rejoinable || call.state === "ended";
    const sc = call.securityCode;
    code.hidden = !(live && sc);
    if (sc && codeWords.textContent !== sc.text) {
      codeEmoji.replaceChildren(...sc.emoji.map((e, i) => h("span", { title: sc.words[i] }, e)));
      codeWords.textContent = sc.text;
    }
    const q = call.quality;
    // Never "good · 0 kbit/s": without media the readout says so instead of numbers.
    $("call-quality").textContent = !q
      ? ""
      : q.label === "no_media"
        ? "No media"
        : q.label === "reconnecting"
          ? "Reconnecting…"
          : `Quality: ${q.label}${q.rttMs !== null ? ` · ${q.rttMs} ms` : ""}${q.bitrateKbps !== null ? ` · ${q.bitrateKbps} kbit/s` : ""}`;
    clock.update();
  };
  calls.addEventListener("call", async () => {
    remoteVideo.classList.remove("fill");
    render();
    flip.hidden = !(await canSwitchCamera().catch(() => false));
    cameras = await listDevices().then((d) => d.videoInputs.length > 0, () => true);
    render();
    if ("wakeLock" in navigator && !wakeLock) {
      wakeLock = await navigator.wakeLock.request("screen").catch(() => null);
    }
  });
  calls.addEventListener("change", render);
  calls.addEventListener("ended", render);
  calls.addEventListener("cleared", render);
  signaling.addEventListener("state", render);
  // Where the other person is heard and seen: mounted after render so they read what it showed.
  $("hangup").before(
    mountSpeaker(calls, [remoteVideo, remoteAudio], intents.chooseDevices),
    mountPictureInPicture(calls, remoteVideo, () => !remoteVideo.hidden && $("audio-only").hidden),
  );
}

/** Whether the call sends its camera now. @param {import("../livecall.js").Call} call */
function sendsCamera(call) {
  return Boolean(call.localStream && call.localStream.getVideoTracks().length) && !call.cameraOff;
}

/** @param {import("../call.js").CallManager} calls */
export function mountIncomingView(calls) {
  const dialog = $("incoming");
  const accept = $("accept");
  const decline = $("decline");
  /** @type {Element|null} */
  let returnFocus = null;

  // A call this browser could not take (no WebRTC): the dialog says who called, with only OK.
  let notice = false;
  const closeNotice = () => {
    notice = false;
    accept.hidden = false;
    decline.textContent = "Decline";
    decline.classList.add("danger");
    dialog.hidden = true;
    if (returnFocus instanceof HTMLElement) returnFocus.focus();
  };

  accept.addEventListener("click", () => calls.accept()); // the ringing stops with it (ringer.js)
  decline.addEventListener("click", () => (notice ? closeNotice() : calls.decline()));
  // Keep focus inside the dialog while it is open.
  dialog.addEventListener("keydown", (e) => {
    if (e.key === "Escape") {
      if (notice) closeNotice();
      else calls.decline();
    }
    if (e.key !== "Tab") return;
    const first = notice ? decline : accept;
    const last = decline;
    if (e.shiftKey && document.activeElement === first) {
      e.preventDefault();
      last.focus();
    } else if (!e.shiftKey && document.activeElement === last) {
      e.preventDefault();
      first.focus();
    }
  });

  calls.addEventListener("unsupported", (e) => {
    const incoming = /** @type {CustomEvent} */ (e).detail;
    const name = incoming.from.username;
    const kind = incoming.media === "video" ? "video call" : "voice call";
    $("incoming-caller").textContent = `${name} tried to call you`;
    $("incoming-kind").textContent = `A ${kind} came in, but this browser can't take calls. ${name} has been told you cannot take calls on this device; open Parley in another browser to talk.`;
    paintAvatar($("incoming-avatar"), name);
    if (!notice) returnFocus = document.activeElement;
    notice = true;
    accept.hidden = true;
    decline.textContent = "OK";
    decline.classList.remove("danger"); // nothing to turn down: a plain OK
    dialog.hidden = false;
    decline.focus();
  });
  calls.addEventListener("incoming", (e) => {
    const incoming = /** @type {CustomEvent} */ (e).detail;
    $("incoming-caller").textContent = `${incoming.from.username} is calling`;
    $("incoming-kind").textContent = incoming.media === "video" ? "Video call" : "Voice call";
    paintAvatar($("incoming-avatar"), incoming.from.username);
    returnFocus = document.activeElement;
    dialog.hidden = false;
    accept.focus();
  });
  calls.addEventListener("incoming_end", () => {
    dialog.hidden = true;
    if (returnFocus instanceof HTMLElement) returnFocus.focus();
  });
}
