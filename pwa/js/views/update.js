// The update offer: a banner with an Update button when a new version of Parley is waiting, or when
// this one is too old for the server. It stays hidden during a call and appears when the call ends.

import { h } from "./dom.js";

/**
 * @param {HTMLElement} el
 * @param {import("../updater.js").Updater} updater
 */
export function mountUpdateBanner(el, updater) {
  const render = () => {
    if (!updater.offering) {
      el.hidden = true;
      el.replaceChildren();
      return;
    }
    const text = updater.outdated
      ? "Parley has been updated and this version can no longer connect."
      : "A new version of Parley is ready.";
    el.replaceChildren(
      h("span", {}, text),
      h(
        "button",
        { type: "button", class: "primary", disabled: updater.applying, onclick: () => updater.apply() },
        updater.applying ? "Updating…" : "Update",
      ),
    );
    el.hidden = false;
  };
  updater.addEventListener("change", render);
  render();
}
