// New group, on the chat list: a name and the members' usernames (comma-separated). A refusal (an
// unknown username, a name too long) shows in the server's words and what was typed stays.

import { goToRoom } from "../router.js";
import { h } from "./dom.js";

const MAX_NAME = 64; // the server's limit (docs/api.md)

/** Usernames as typed: separated by commas (spaces and new lines too), blanks dropped. @param {string} text */
export const usernamesIn = (text) => text.split(/[\s,]+/).filter(Boolean);

/**
 * The New group button and the form it opens.
 * @param {import("../chat.js").ChatStore} store
 * @returns {HTMLElement}
 */
export function groupForm(store) {
  const name = /** @type {HTMLInputElement} */ (h("input", { name: "group-name", autocomplete: "off" }));
  const members = /** @type {HTMLInputElement} */ (
    h("input", {
      name: "group-members",
      autocapitalize: "none",
      autocomplete: "off",
      spellcheck: false,
      placeholder: "bob, carol",
      "aria-describedby": "group-members-hint",
    })
  );
  const error = h("p", { class: "error", role: "alert" });
  const create = /** @type {HTMLButtonElement} */ (h("button", { type: "submit", class: "primary" }, "Create group"));
  const show = (/** @type {boolean} */ open) => {
    form.hidden = !open;
    toggle.setAttribute("aria-expanded", String(open));
    if (open) name.focus();
    else error.textContent = "";
  };
  const toggle = h(
    "button",
    { type: "button", class: "new-group", "aria-expanded": "false", "aria-controls": "group-new", onclick: () => show(form.hidden) },
    "New group",
  );
  const form = h(
    "form",
    {
      id: "group-new",
      class: "group-new",
      hidden: true,
      onsubmit: async (/** @type {Event} */ e) => {
        e.preventDefault();
        const title = name.value.trim();
        const usernames = usernamesIn(members.value);
        error.textContent = !title
          ? "Give the group a name."
          : [...title].length > MAX_NAME
            ? `A group name has at most ${MAX_NAME} characters (this one has ${[...title].length}).`
            : !usernames.length
              ? "Add at least one member's username."
              : "";
        if (error.textContent) return;
        create.disabled = true;
        try {
          const room = await store.createGroup(title, usernames);
          name.value = members.value = "";
          show(false);
          goToRoom(room.id);
        } catch (err) {
          error.textContent = /** @type {Error} */ (err).message; // the fields keep what was typed
        } finally {
          create.disabled = false;
        }
      },
    },
    h("label", {}, "Group name", name),
    h("label", {}, "Members", members),
    h("p", { id: "group-members-hint", class: "note" }, "Their usernames, separated by commas."),
    error,
    h("div", { class: "group-buttons" }, create, h("button", { type: "button", onclick: () => show(false) }, "Cancel")),
  );
  return h("div", { class: "group-create" }, toggle, form);
}
