// Picture in picture for the remote video, so a person keeps seeing the other while in another tab:
// the Document Picture-in-Picture API where the browser has it (a muted copy of the video plays in
// the small window until it closes), else the video element's own. The button is hidden where
// neither exists and while there is no remote picture (a voice call, before it connects).

import { h } from "./dom.js";

/** Which picture in picture this browser offers. @returns {"document"|"element"|null} */
export function pipKind() {
  if ("documentPictureInPicture" in window) return "document";
  if (document.pictureInPictureEnabled && "requestPictureInPicture" in HTMLVideoElement.prototype) return "element";
  return null;
}

/**
 * Build the Picture in picture button and keep it in step with the calls; the call screen places it.
 * @param {import("../call.js").CallManager} calls
 * @param {HTMLVideoElement} video the remote video
 * @param {() => boolean} pictured whether the call screen shows the remote picture now
 * @returns {HTMLElement}
 */
export function mountPictureInPicture(calls, video, pictured) {
  const kind = pipKind();
  const button = h("button", { type: "button", id: "pip", hidden: true, "aria-pressed": "false" }, "Picture in picture");
  // Where the video was: says where it went, and is where it comes back to.
  const away = h("p", { class: "pip-away" }, "Showing in picture in picture");
  /** @type {Window|null} the Document Picture-in-Picture window holding the video */
  let win = null;
  /** @type {HTMLVideoElement|null} the copy of the video playing in `win` */
  let shown = null;
  /** closes the copy in `win` and shows the page's video again (once) */
  let restore = () => {};

  const active = () => Boolean(win) || document.pictureInPictureElement === video;

  async function openWindow() {
    const pip = await /** @type {any} */ (window).documentPictureInPicture.requestWindow({ width: 400, height: 300 });
    for (const sheet of document.querySelectorAll('link[rel="stylesheet"]')) {
      pip.document.head.append(h("link", { rel: "stylesheet", href: /** @type {HTMLLinkElement} */ (sheet).href }));
    }
    pip.document.body.className = "pip-window";
    // A muted copy of the picture: the sound stays on the page's element (and its chosen speaker),
    // and a muted video may play in the new window without a tap of its own.
    const copy = /** @type {HTMLVideoElement} */ (
      h("video", { id: "remote-video", "aria-label": "Remote video", autoplay: true, playsInline: true, muted: true })
    );
    copy.srcObject = video.srcObject;
    pip.document.body.append(copy);
    copy.play().catch(() => {});
    video.classList.add("elsewhere");
    video.after(away);
    win = pip;
    shown = copy;
    const back = () => {
      if (win !== pip) return;
      win = null;
      shown = null;
      copy.srcObject = null;
      video.classList.remove("elsewhere");
      away.remove();
      render();
    };
    // The window's own close button, "back to tab", or leave() below.
    pip.addEventListener("pagehide", back, { once: true });
    restore = back;
  }

  async function enter() {
    if (kind === "document") {
      try {
        await openWindow();
        render();
        return;
      } catch {
        // Refused (no user activation, or the browser cannot open the window): the element's own.
      }
    }
    if (document.pictureInPictureEnabled && video.requestPictureInPicture) await video.requestPictureInPicture().catch(() => {});
  }

  function leave() {
    if (win) {
      win.close();
      restore(); // at once, whether or not the browser fires pagehide for a close() from here
    } else if (document.pictureInPictureElement === video) {
      document.exitPictureInPicture().catch(() => {});
    }
  }

  function render() {
    const call = calls.call;
    const on = active();
    if (shown && shown.srcObject !== video.srcObject) shown.srcObject = video.srcObject;
    if (on && (!call || call.state === "ended")) {
      leave();
      return;
    }
    // Kept while on, even with their camera off for a moment: it is how to leave from here.
    button.hidden = !kind || !(on || (call && pictured()));
    button.setAttribute("aria-pressed", String(on));
  }

  button.addEventListener("click", () => (active() ? leave() : enter()));
  video.addEventListener("enterpictureinpicture", render);
  video.addEventListener("leavepictureinpicture", render);
  for (const type of ["call", "change", "ended", "cleared"]) calls.addEventListener(type, render);
  return button;
}
