// The group call screen: a grid of tiles (each remote participant's video, "Video of NAME", or their
// name and avatar without one; the local preview), who is speaking highlighted, the status and the
// duration, Mute / Camera off / Leave call; and the group ring in the incoming-call dialog. It renders
// the GroupCallManager's state and turns taps into intents; it never touches RTCPeerConnection.

import { durationClock, h, paintAvatar } from "./dom.js";

/** @type {Record<string, string>} */
const STATUS = {
  ringing: "Ringing…",
  connecting: "Connecting…",
  connected: "Connected",
  reconnecting: "Reconnecting…",
  ended: "Call ended",
};
/** @type {Record<string, string>} */
const ENDED = { left: "You left", ended: "", removed: "You left the group", full: "This call is full", disconnected: "Connection lost", error: "Call failed" };

const $ = (/** @type {string} */ id) => /** @type {HTMLElement} */ (document.getElementById(id));

/**
 * @typedef {{el: HTMLElement, video: HTMLVideoElement, face: HTMLElement, label: HTMLElement}} Tile
 */

/** @param {string} username @param {boolean} local @returns {Tile} */
function tile(username, local) {
  const video = /** @type {HTMLVideoElement} */ (
    h("video", { playsInline: true, autoplay: true, muted: local, "aria-label": local ? "Your video" : `Video of ${username}` })
  );
  const avatar = h("div", { class: "avatar", "aria-hidden": "true" });
  paintAvatar(avatar, username);
  const face = h("div", { class: "tile-face" }, avatar);
  const label = h("p", { class: "tile-name" }, local ? "You" : username);
  const el = h("div", { class: local ? "tile local" : "tile", role: "group", "aria-label": local ? "You" : username }, video, face, label);
  return { el, video, face, label };
}

/** @param {HTMLMediaElement} el @param {MediaStream|null} stream */
function attach(el, stream) {
  if (el.srcObject === stream) return;
  el.srcObject = stream;
  if (stream) el.play().catch(() => {});
}

/**
 * @param {import("../groupcalls.js").GroupCallManager} groups
 * @param {import("../signaling.js").SignalingClient} signaling
 * @param {{roomName: (roomId: number) => string}} names
 */
export function mountGroupView(groups, signaling, names) {
  const grid = h("div", { class: "group-grid" });
  const status = h("p", { role: "status", "aria-live": "polite" });
  const clock = h("p", { "aria-label": "Call duration" }, "0:00");
  const error = h("p", { class: "error", role: "alert" });
  const mute = h("button", { type: "button", onclick: () => groups.call && groups.setMuted(!groups.call.muted) }, "Mute");
  const camera = h("button", { type: "button", onclick: () => groups.call && groups.setCameraOff(sendsCamera(groups.call)) }, "Camera off");
  const leave = h("button", { type: "button", class: "danger", onclick: () => groups.leave() }, "Leave call");
  const controls = h("div", { class: "controls" }, mute, camera, leave);
  const screen = h(
    "section",
    { class: "call group-call", "aria-label": "Group call", hidden: true },
    grid,
    h("div", { class: "call-info" }, status, clock, error),
    controls,
  );
  // In the page only during a group call: its labels never stand beside the direct call screen's.
  /** @type {Map<number, Tile>} */
  const tiles = new Map();
  /** @type {Tile|null} */
  let local = null;
  const ticking = durationClock(clock, () => groups.call);

  const render = () => {
    const call = groups.call;
    if (!call) {
      screen.hidden = true;
      screen.remove();
      ticking.stop();
      for (const t of tiles.values()) attach(t.video, null);
      tiles.clear();
      if (local) attach(local.video, null);
      local = null;
      grid.replaceChildren();
      return;
    }
    screen.hidden = false;
    if (!screen.isConnected) document.body.append(screen);
    if (!local) local = tile(call.me.username, true);
    const ids = [...call.participants.keys()];
    for (const [id, t] of tiles) {
      if (ids.includes(id)) continue;
      attach(t.video, null);
      tiles.delete(id);
    }
    for (const id of ids) {
      const user = call.user(id);
      let t = tiles.get(id);
      if (!t || t.video.getAttribute("aria-label") !== `Video of ${user.username}`) {
        t = tile(user.username, false);
        tiles.set(id, t);
      }
      const peer = call.peers.get(id);
      const stream = peer && !peer.closed ? peer.remoteStream : null;
      const sent = call.remoteMedia.get(id);
      const video = Boolean(stream && stream.getVideoTracks().length) && (sent ? sent.video : call.media === "video");
      // The element stays (hidden without a picture): it plays their sound as well.
      t.video.hidden = !video;
      t.face.hidden = video;
      attach(t.video, stream);
      const up = peer && call.up.has(peer);
      const notes = [sent && !sent.audio ? "Muted" : "", !up && call.state !== "ended" ? "Connecting…" : ""].filter(Boolean);
      t.label.textContent = [user.username, ...notes].join(" · ");
      t.el.classList.toggle("speaking", call.speaking(id));
      t.el.setAttribute("aria-description", call.speaking(id) ? "speaking" : "");
    }
    const hasCamera = Boolean(call.localStream && call.localStream.getVideoTracks().length) && !call.cameraOff;
    local.video.hidden = !hasCamera;
    local.face.hidden = hasCamera;
    attach(local.video, call.localStream);
    const order = [...ids.map((id) => /** @type {Tile} */ (tiles.get(id)).el), local.el];
    if (order.some((el, i) => grid.children[i] !== el) || grid.children.length !== order.length) grid.replaceChildren(...order);
    grid.className = `group-grid tiles-${Math.min(order.length, 4)}`;
    let text = STATUS[call.state] || "";
    if (call.state === "ringing") text = `Ringing ${names.roomName(call.roomId)}…`;
    if (call.state === "connected" && signaling.state !== "open") text = "Connected · reconnecting to the server…";
    if (call.state === "ended" && call.endReason && ENDED[call.endReason]) text = `Call ended · ${ENDED[call.endReason]}`;
    status.textContent = text;
    error.textContent = call.error || call.warning || "";
    controls.hidden = call.state === "ended";
    mute.textContent = call.muted ? "Unmute" : "Mute";
    mute.setAttribute("aria-pressed", String(call.muted));
    camera.textContent = sendsCamera(call) ? "Camera off" : "Camera on";
    camera.setAttribute("aria-pressed", String(!sendsCamera(call)));
    ticking.update();
  };
  for (const type of ["call", "change", "ended", "cleared"]) groups.addEventListener(type, render);
  signaling.addEventListener("state", render);
  mountGroupRing(groups, names);
}

/** Whether the call sends its camera now. @param {import("../groupcall.js").GroupCall} call */
function sendsCamera(call) {
  return Boolean(call.localStream && call.localStream.getVideoTracks().length) && !call.cameraOff;
}

/**
 * The group ring in the incoming-call dialog (views/callscreen.js owns it for direct calls): who
 * calls and which group; Accept joins, Decline leaves the ring.
 * @param {import("../groupcalls.js").GroupCallManager} groups @param {{roomName: (roomId: number) => string}} names
 */
function mountGroupRing(groups, names) {
  const dialog = $("incoming");
  const accept = $("accept");
  const decline = $("decline");
  /** @type {Element|null} */
  let returnFocus = null;
  // The direct call's handlers stay: each manager does nothing without a ring of its own.
  accept.addEventListener("click", () => groups.accept().catch(() => {}));
  decline.addEventListener("click", () => groups.decline());
  dialog.addEventListener("keydown", (e) => {
    if (e.key === "Escape") groups.decline();
  });
  groups.addEventListener("incoming", (e) => {
    const ring = /** @type {CustomEvent} */ (e).detail;
    $("incoming-caller").textContent = `${ring.from.username} is calling`;
    $("incoming-kind").textContent = `Group ${ring.media === "video" ? "video" : "voice"} call in ${names.roomName(ring.roomId)}`;
    paintAvatar($("incoming-avatar"), ring.from.username);
    returnFocus = document.activeElement;
    dialog.hidden = false;
    accept.focus();
  });
  groups.addEventListener("incoming_end", () => {
    dialog.hidden = true;
    if (returnFocus instanceof HTMLElement) returnFocus.focus();
  });
}
