// The socket's state in the bar: nothing while it is open, "Connecting…" or "Reconnecting…" while
// it is not, and "Update needed" once the server speaks a newer protocol than this page.

/**
 * @param {HTMLElement} el
 * @param {import("../signaling.js").SignalingClient} signaling
 */
export function mountConnectionStatus(el, signaling) {
  signaling.addEventListener("state", (e) => {
    const { state } = /** @type {CustomEvent} */ (e).detail;
    el.textContent = state === "open" ? "" : state === "reconnecting" ? "Reconnecting…" : "Connecting…";
  });
  signaling.addEventListener("outdated", () => (el.textContent = "Update needed"));
}
