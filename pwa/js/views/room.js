// One chat room: the timeline (messages and call records), the composer and the call buttons.

import { callRecordText, h } from "./dom.js";

/**
 * @param {HTMLElement} root
 * @param {import("../chat.js").ChatStore} store
 * @param {number} roomId
 * @param {{call: (media: "audio"|"video") => void}} intents
 * @returns {() => void}
 */
export function renderRoom(root, store, roomId, intents) {
  const me = store.user.id;
  const log = h("ol", { class: "messages", role: "log", "aria-label": "Messages", "aria-live": "polite" });
  const input = h("input", { name: "message", autocomplete: "off", maxlength: 4000, enterkeyhint: "send" });
  const error = h("p", { class: "error", role: "alert" });
  const form = h(
    "form",
    {
      class: "composer",
      onsubmit: (/** @type {Event} */ e) => {
        e.preventDefault();
        const el = /** @type {HTMLInputElement} */ (input);
        const text = el.value;
        if (!text.trim()) return;
        el.value = "";
        store.send(roomId, text);
      },
    },
    h("label", {}, h("span", { class: "visually-hidden" }, "Message"), input),
    h("button", { type: "submit", class: "primary" }, "Send"),
  );
  const actions = h(
    "div",
    { class: "room-actions" },
    h("button", { type: "button", onclick: () => intents.call("audio") }, "Voice call"),
    h("button", { type: "button", onclick: () => intents.call("video") }, "Video call"),
  );
  const draw = () => {
    const { stored, pending } = store.timeline(roomId);
    const items = stored.map((m) => {
      if (m.kind === "call" && m.call) {
        return h("li", { class: "call-record", "data-id": m.id }, callRecordText(m.call));
      }
      const mine = m.sender.id === me;
      const status = mine ? store.statusOf(m.client_id) : null;
      return h(
        "li",
        { class: mine ? "mine" : "", "data-id": m.id },
        m.text,
        h("span", { class: "meta" }, time(m.created_at), status ? ` · ${status}` : ""),
      );
    });
    for (const p of pending) {
      items.push(h("li", { class: "mine pending" }, p.text, h("span", { class: "meta" }, "Sending")));
    }
    const atBottom = log.scrollHeight - log.scrollTop - log.clientHeight < 80;
    log.replaceChildren(...items);
    if (atBottom || pending.length) log.scrollTop = log.scrollHeight;
    const last = stored[stored.length - 1];
    if (last && document.visibilityState === "visible") store.markRead(roomId, last.id);
  };
  /** @param {Event} e */
  const onMessages = (e) => {
    const detail = /** @type {CustomEvent} */ (e).detail;
    if (!detail.roomId || detail.roomId === roomId) draw();
  };
  /** @param {Event} e */
  const onError = (e) => {
    error.textContent = /** @type {CustomEvent} */ (e).detail.message;
  };
  root.replaceChildren(h("div", { class: "room" }, actions, log, error, form));
  store.addEventListener("messages", onMessages);
  store.addEventListener("error", onError);
  draw();
  store.loadRoom(roomId).catch((e) => {
    error.textContent = e.message;
  });
  input.focus();
  return () => {
    store.removeEventListener("messages", onMessages);
    store.removeEventListener("error", onError);
  };
}

/** @param {string} iso */
function time(iso) {
  const date = new Date(iso);
  return Number.isNaN(date.getTime()) ? "" : date.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
}
