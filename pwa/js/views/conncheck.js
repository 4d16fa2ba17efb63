// The connection check on the chat list: one button, a plain verdict, and one line per path
// ("Direct: works", "Relay over TLS: not set up"). The probing itself is conncheck.js's.

import { OUTCOME_WORDS, PATH_LABELS, PROBE_TIMEOUT_MS } from "../conncheck.js";
import { h } from "./dom.js";

const MARKS = { works: "✓", failed: "✗", absent: "–" };

/**
 * @param {(() => Promise<import("../conncheck.js").CheckReport>) | null} check null: the browser cannot
 * @returns {HTMLElement|null}
 */
export function connectionCheck(check) {
  if (!check) return null; // hidden where the browser has no WebRTC, as other call controls are
  const status = h("p", { class: "conncheck-status", role: "status", "aria-live": "polite", "aria-label": "Connection check" });
  const results = h("ul", { class: "conncheck-results", "aria-label": "Connection check results", hidden: true });
  const button = /** @type {HTMLButtonElement} */ (
    h(
      "button",
      {
        type: "button",
        class: "setting-entry",
        onclick: async () => {
          button.disabled = true;
          results.hidden = true;
          status.textContent = `Checking… (up to ${Math.ceil(PROBE_TIMEOUT_MS / 1000)} seconds)`;
          try {
            const report = await check();
            status.textContent = report.verdict;
            results.replaceChildren(
              ...report.paths.map((p) =>
                h(
                  "li",
                  { class: `conncheck-${p.outcome}` },
                  h("span", { class: "mark", "aria-hidden": "true" }, MARKS[p.outcome]),
                  `${PATH_LABELS[p.kind]}: ${OUTCOME_WORDS[p.outcome]}`,
                ),
              ),
            );
            results.hidden = false;
          } catch (err) {
            status.textContent = `The check could not run: ${/** @type {Error} */ (err).message}`;
          } finally {
            button.disabled = false;
          }
        },
      },
      h("span", { class: "setting-text" }, "Check connection"),
    )
  );
  return h(
    "section",
    { class: "settings conncheck", "aria-labelledby": "conncheck-title" },
    h("h2", { id: "conncheck-title" }, "Connection"),
    button,
    h("div", { class: "conncheck-panel" }, status, results),
  );
}
