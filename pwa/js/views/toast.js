// The toast: one short notice near the bottom of the page (#toast), gone after four seconds.

const el = /** @type {HTMLElement} */ (document.getElementById("toast"));
let timer = 0;

/** @param {string} text */
export function toast(text) {
  el.textContent = text;
  el.hidden = false;
  clearTimeout(timer);
  timer = setTimeout(() => (el.hidden = true), 4000);
}
