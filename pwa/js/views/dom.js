// A tiny element builder for the views (no framework, no innerHTML with data).

import { reportWords } from "../stats.js";

/**
 * @param {string} tag
 * @param {Record<string, any>} [attrs]
 * @param {(Node|string|null|undefined|false)[]} children
 * @returns {HTMLElement}
 */
export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (value === undefined || value === null || value === false) continue;
    if (key.startsWith("on")) el.addEventListener(key.slice(2), value);
    else if (key === "class") el.className = value;
    else if (key in el && key !== "list") /** @type {any} */ (el)[key] = value;
    else el.setAttribute(key, value === true ? "" : String(value));
  }
  for (const child of children) {
    if (child === null || child === undefined || child === false) continue;
    el.append(typeof child === "string" ? document.createTextNode(child) : child);
  }
  return el;
}

const AVATAR_COLOURS = 8; // .avatar-c0 … .avatar-c7 in app.css

/**
 * Show `username` as messengers do without a photo: its first letter on a colour of its own.
 * @param {HTMLElement} el @param {string} username
 */
export function paintAvatar(el, username) {
  let hash = 0;
  for (const ch of username) hash = (hash * 31 + /** @type {number} */ (ch.codePointAt(0))) >>> 0;
  el.textContent = [...username][0]?.toUpperCase() || "?";
  for (let i = 0; i < AVATAR_COLOURS; i++) el.classList.toggle(`avatar-c${i}`, i === hash % AVATAR_COLOURS);
}

/** @param {number} seconds */
export function duration(seconds) {
  const s = Math.max(0, Math.round(seconds));
  const hours = Math.floor(s / 3600);
  const minutes = Math.floor((s % 3600) / 60);
  const rest = String(s % 60).padStart(2, "0");
  return hours ? `${hours}:${String(minutes).padStart(2, "0")}:${rest}` : `${minutes}:${rest}`;
}

/**
 * A call's running duration in `el`: "0:00" until it connects, then ticking every second until it
 * ends. update() after every change of the call; stop() when it is gone.
 * @param {HTMLElement} el @param {() => ({state: string, connectedAt: number|null}|null)} current
 */
export function durationClock(el, current) {
  let ticker = 0;
  const tick = () => {
    const since = current()?.connectedAt;
    el.textContent = since ? duration((Date.now() - since) / 1000) : "0:00";
  };
  const stop = () => {
    clearInterval(ticker);
    ticker = 0;
  };
  const update = () => {
    tick();
    const call = current();
    if (!call || call.state === "ended") stop();
    else if (!ticker) ticker = setInterval(tick, 1000);
  };
  return { update, stop };
}

/**
 * How a call record reads in the timeline; a completed call with a report card adds its path and
 * quality ("Video call · 3:12 · direct · good", stats.js reportWords).
 * @param {{media: string, outcome: string, duration: number|null, reports?: {caller?: any, callee?: any}}} call
 */
export function callRecordText(call) {
  const kind = call.media === "video" ? "video call" : "voice call";
  const Kind = kind[0].toUpperCase() + kind.slice(1);
  switch (call.outcome) {
    case "completed": {
      const card = reportWords(call.reports);
      return `${Kind} · ${duration(call.duration || 0)}${card ? ` · ${card.path} · ${card.quality}` : ""}`;
    }
    case "missed":
      return `Missed ${kind}`;
    case "declined":
      return `Declined ${kind}`;
    case "cancelled":
      return `Cancelled ${kind}`;
    case "busy":
      return `Busy · ${kind}`;
    default:
      return `Failed ${kind}`;
  }
}

/**
 * Show `nodes` in `parent`, in order, keeping any element already there that reads the same (the
 * same markup): a render after a tick or a new message leaves the unchanged messages as they are,
 * so a selection, a screen reader's place in the log and anyone's handle on an element survive it;
 * only new or changed ones go in. @param {HTMLElement} parent @param {HTMLElement[]} nodes
 */
export function reconcile(parent, nodes) {
  /** @type {Map<string, Element[]>} */
  const shown = new Map();
  for (const el of parent.children) {
    const same = shown.get(el.outerHTML);
    if (same) same.push(el);
    else shown.set(el.outerHTML, [el]);
  }
  const wanted = nodes.map((node) => shown.get(node.outerHTML)?.shift() || node);
  wanted.forEach((node, i) => {
    if (parent.children[i] !== node) parent.insertBefore(node, parent.children[i] || null);
  });
  while (parent.children.length > wanted.length) parent.lastElementChild?.remove();
}
