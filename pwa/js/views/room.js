// One chat room: the timeline (messages and call records), the composer and the call buttons; in
// a group, its header (views/members.js), senders' names and the group's notices ("alice added carol").

import { count, textLength } from "../chat.js";
import { MAX_TEXT } from "../protocol.js";
import { callRecordText, h, reconcile } from "./dom.js";
import { groupCallText, groupHeader, names } from "./members.js";

// Below this many characters left, the composer shows how many remain.
const NEAR_LIMIT = 200;
// Only these become links; anything else stays text.
const URL_RE = /\bhttps?:\/\/[^\s<>"]+/gi;
const ECHO_HINT = "Tap Video call to see and hear yourself.";

/**
 * @param {HTMLElement} root
 * @param {import("../chat.js").ChatStore} store
 * @param {number} roomId
 * @param {{call: (media: "audio"|"video") => void, canCall?: boolean, joinCall?: () => void, left?: () => void}} intents
 * @returns {() => void}
 */
export function renderRoom(root, store, roomId, intents) {
  const me = store.user.id;
  const draftKey = `parley.draft.${me}.${roomId}`;
  const log = h("ol", { class: "messages", role: "log", "aria-label": "Messages", "aria-live": "polite" });
  const input = /** @type {HTMLTextAreaElement} */ (
    h("textarea", { name: "message", rows: 1, autocomplete: "off", "aria-describedby": "composer-status" })
  );
  const status = h("p", { id: "composer-status", class: "composer-status", "aria-live": "polite" });
  const sendButton = h("button", { type: "submit", class: "primary", "aria-describedby": "composer-status" }, "Send");
  const error = h("p", { class: "error", role: "alert" });
  const hint = h("p", { class: "room-hint", hidden: true });
  // Phones: the return key makes a new line and Send sends (a hardware keyboard's Ctrl+Enter too).
  const coarse = window.matchMedia("(pointer: coarse)");

  /** Size the text area to its lines, up to the cap in app.css, and say where it stands. */
  const update = () => {
    input.style.height = "auto";
    input.style.height = `${input.scrollHeight + input.offsetHeight - input.clientHeight}px`;
    const length = textLength(input.value);
    const over = length - MAX_TEXT;
    status.classList.toggle("over", over > 0);
    // Send stays clickable, to say why it will not send (a disabled button says nothing).
    form.classList.toggle("over", over > 0);
    if (over > 0) status.textContent = `${count(over)} over the limit (${count(length)} of ${count(MAX_TEXT)} characters)`;
    else if (-over <= NEAR_LIMIT) status.textContent = `${count(-over)} characters left`;
    else status.textContent = "";
    input.setAttribute("enterkeyhint", coarse.matches ? "enter" : "send");
  };

  const submit = () => {
    const text = input.value;
    if (!text.trim()) return;
    const length = textLength(text);
    if (length > MAX_TEXT) {
      // Never cut and never sent: the text stays for the person to shorten.
      status.textContent = `Not sent: ${count(length)} of ${count(MAX_TEXT)} characters is too long. Remove ${count(length - MAX_TEXT)} to send.`;
      input.focus();
      return;
    }
    input.value = "";
    localStorage.removeItem(draftKey);
    update();
    store.send(roomId, text);
  };

  const form = h(
    "form",
    {
      class: "composer",
      onsubmit: (/** @type {Event} */ e) => {
        e.preventDefault();
        submit();
      },
    },
    status,
    h("div", { class: "composer-row" }, h("label", {}, h("span", { class: "visually-hidden" }, "Message"), input), sendButton),
  );
  input.addEventListener("input", () => {
    if (input.value) localStorage.setItem(draftKey, input.value);
    else localStorage.removeItem(draftKey);
    update();
  });
  input.addEventListener("keydown", (e) => {
    if (e.key !== "Enter" || e.isComposing || e.shiftKey || e.altKey) return;
    if (coarse.matches && !e.ctrlKey && !e.metaKey) return;
    e.preventDefault();
    submit();
  });

  /** Put a refused message back in the composer, after anything already typed. @param {string} clientId */
  const edit = (clientId) => {
    const pending = store.discard(clientId);
    if (!pending) return;
    input.value = input.value ? `${input.value}\n${pending.text}` : pending.text;
    localStorage.setItem(draftKey, input.value);
    update();
    input.focus();
  };

  // Without WebRTC the call buttons stay where people look for them, aria-disabled, and say why.
  const canCall = intents.canCall !== false;
  const noCalls = canCall ? {} : { "aria-disabled": "true", "aria-describedby": "no-calls" };
  const actions = h(
    "div",
    { class: "room-actions" },
    h("button", { type: "button", onclick: () => canCall && intents.call("audio"), ...noCalls }, "Voice call"),
    h("button", { type: "button", onclick: () => canCall && intents.call("video"), ...noCalls }, "Video call"),
    !canCall && h("p", { id: "no-calls", class: "no-calls" }, "This browser can't make calls. Chat works here; to call, open Parley in another browser."),
  );
  const head = groupHeader(store, roomId, intents);
  const isGroup = () => store.room(roomId)?.kind === "group";
  let drawnAsGroup = false;
  const draw = () => {
    const { stored, pending } = store.timeline(roomId);
    drawnAsGroup = isGroup();
    const items = stored.map((m) => {
      if (m.kind === "system") return h("li", { class: "system-note", "data-id": m.id }, m.text);
      if (m.kind === "call" && m.call) {
        const record = m.call;
        if (record.group) {
          const who = record.outcome === "completed" && record.participants ? names(record.participants) : "";
          return h("li", { class: "call-record", "data-id": m.id }, groupCallText(record, me), who && h("span", { class: "meta" }, who));
        }
        const again = canCall && callsBack(record, me);
        return h(
          "li",
          { class: "call-record", "data-id": m.id },
          callRecordText(record),
          again && h("button", { type: "button", class: "call-back", onclick: () => intents.call(record.media) }, "Call back"),
        );
      }
      const mine = m.sender.id === me;
      const state = mine ? store.statusOf(m) : null;
      return h(
        "li",
        { class: mine ? "mine" : "", "data-id": m.id },
        !mine && drawnAsGroup && h("span", { class: "sender" }, m.sender.username),
        ...linkify(m.text),
        h("span", { class: "meta" }, time(m.created_at), state && " · ", state && h("span", { class: `tick tick-${state.toLowerCase()}` }, state)),
      );
    });
    for (const p of pending) {
      if (p.status === "failed") {
        items.push(
          h(
            "li",
            { class: "mine failed", "data-client": p.client_id },
            ...linkify(p.text),
            h("span", { class: "meta" }, `Not sent · ${p.reason || ""}`),
            h(
              "span",
              { class: "failed-actions" },
              h("button", { type: "button", onclick: () => store.retry(p.client_id) }, "Retry"),
              h("button", { type: "button", onclick: () => edit(p.client_id) }, "Edit"),
              h("button", { type: "button", onclick: () => store.discard(p.client_id) }, "Delete"),
            ),
          ),
        );
      } else {
        items.push(h("li", { class: "mine pending", "data-client": p.client_id }, ...linkify(p.text), h("span", { class: "meta" }, "Sending")));
      }
    }
    const atBottom = log.scrollHeight - log.scrollTop - log.clientHeight < 80;
    reconcile(log, items);
    if (atBottom || pending.length) log.scrollTop = log.scrollHeight;
    const last = stored[stored.length - 1];
    if (last && document.visibilityState === "visible") store.markRead(roomId, last.id);
  };
  const onRooms = () => {
    head.draw();
    drawHint();
    if (isGroup() !== drawnAsGroup) draw(); // the list came after the messages: senders' names now
  };
  /** @param {Event} e */
  const onRemoved = (e) => {
    if (/** @type {CustomEvent} */ (e).detail.roomId === roomId && intents.left) intents.left();
  };
  const drawHint = () => {
    const room = store.room(roomId);
    const echo = canCall && Boolean(room && store.user.echo_username && room.peer?.username === store.user.echo_username);
    hint.textContent = echo ? ECHO_HINT : "";
    hint.hidden = !echo;
  };
  /** @param {Event} e */
  const onMessages = (e) => {
    const detail = /** @type {CustomEvent} */ (e).detail;
    if (!detail.roomId || detail.roomId === roomId) draw();
  };
  // Toasts sit above the composer, never on it (app.css .toast reads this).
  const page = document.documentElement;
  const placeToasts = () => {
    const space = form.isConnected ? window.innerHeight - form.getBoundingClientRect().top : 0;
    page.style.setProperty("--composer-space", `${Math.max(0, space)}px`);
  };
  const resized = new ResizeObserver(placeToasts);
  root.replaceChildren(h("div", { class: "room" }, head.el, actions, hint, log, error, form));
  resized.observe(form);
  window.addEventListener("resize", placeToasts);
  coarse.addEventListener("change", update);
  store.addEventListener("messages", onMessages);
  store.addEventListener("rooms", onRooms);
  store.addEventListener("presence", head.draw);
  store.addEventListener("removed", onRemoved);
  input.value = localStorage.getItem(draftKey) || "";
  update();
  draw();
  onRooms();
  store.loadRoom(roomId).catch((e) => {
    error.textContent = e.message;
  });
  input.focus();
  return () => {
    resized.disconnect();
    window.removeEventListener("resize", placeToasts);
    page.style.removeProperty("--composer-space");
    coarse.removeEventListener("change", update);
    store.removeEventListener("messages", onMessages);
    store.removeEventListener("rooms", onRooms);
    store.removeEventListener("presence", head.draw);
    store.removeEventListener("removed", onRemoved);
  };
}

/**
 * Whether a call record offers Call back: a missed or declined call on both sides, and one the
 * caller gave up on (cancelled) on the side it rang.
 * @param {{outcome: string, caller_id?: number}} record @param {number} me
 */
function callsBack(record, me) {
  if (record.outcome === "missed" || record.outcome === "declined") return true;
  return record.outcome === "cancelled" && record.caller_id !== me;
}

/**
 * A message as text nodes, with http(s) URLs as links; the text is never parsed as HTML.
 * @param {string} text
 * @returns {(Node|string)[]}
 */
function linkify(text) {
  /** @type {(Node|string)[]} */
  const parts = [];
  let at = 0;
  for (const match of text.matchAll(URL_RE)) {
    const raw = trimUrl(match[0]);
    let url;
    try {
      url = new URL(raw);
    } catch {
      continue;
    }
    if (url.protocol !== "http:" && url.protocol !== "https:") continue;
    const start = /** @type {number} */ (match.index);
    if (start > at) parts.push(text.slice(at, start));
    parts.push(h("a", { href: url.href, target: "_blank", rel: "noopener noreferrer" }, raw));
    at = start + raw.length;
  }
  if (at < text.length) parts.push(text.slice(at));
  return parts;
}

/** Leave sentence punctuation (and a closing bracket the URL did not open) outside the link. @param {string} url */
function trimUrl(url) {
  let end = url.length;
  for (;;) {
    const last = url[end - 1];
    if (".,;:!?'*".includes(last)) end -= 1;
    else if (last === ")" && occurrences(url.slice(0, end), "(") < occurrences(url.slice(0, end), ")")) end -= 1;
    else if (last === "]" && occurrences(url.slice(0, end), "[") < occurrences(url.slice(0, end), "]")) end -= 1;
    else return url.slice(0, end);
  }
}

/** @param {string} s @param {string} ch */
const occurrences = (s, ch) => s.split(ch).length - 1;

/** @param {string} iso */
function time(iso) {
  const date = new Date(iso);
  return Number.isNaN(date.getTime()) ? "" : date.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
}
