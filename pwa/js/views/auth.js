// Sign in / create account.

import { h } from "./dom.js";

// The server's rules (backend/auth.py), shown before anyone gets them wrong.
const USERNAME_RULE = "3-32 characters: a-z, 0-9, _ . -";
const PASSWORD_RULE = "at least 8 characters";

/**
 * @param {HTMLElement} root
 * @param {{signIn: (u: string, p: string) => Promise<void>, signUp: (u: string, p: string) => Promise<void>}} intents
 */
export function renderAuth(root, intents) {
  const username = h("input", { name: "username", autocomplete: "username", autocapitalize: "none", spellcheck: false, required: true });
  const rules = h("p", { id: "auth-rules", class: "rules" }, `New here? Username: ${USERNAME_RULE}. Password: ${PASSWORD_RULE}.`);
  const password = h("input", { name: "password", type: "password", autocomplete: "current-password", required: true, "aria-describedby": "auth-rules" });
  const error = h("p", { class: "error", role: "alert" });
  /** @param {"signIn"|"signUp"} which */
  const submit = async (which) => {
    error.textContent = "";
    const u = /** @type {HTMLInputElement} */ (username).value.trim();
    const p = /** @type {HTMLInputElement} */ (password).value;
    if (!u || !p) {
      error.textContent = "Enter a username and a password.";
      return;
    }
    try {
      await intents[which](u, p);
    } catch (e) {
      error.textContent = /** @type {Error} */ (e).message;
    }
  };
  const form = h(
    "form",
    { class: "auth", onsubmit: (/** @type {Event} */ e) => { e.preventDefault(); submit("signIn"); } },
    h("p", {}, "Chat, voice and video calls with the people you know."),
    h("label", {}, "Username", username),
    h("label", {}, "Password", password),
    rules,
    error,
    h(
      "div",
      { class: "actions" },
      h("button", { type: "submit", class: "primary" }, "Sign in"),
      h("button", { type: "button", onclick: () => submit("signUp") }, "Create account"),
    ),
  );
  root.replaceChildren(form);
  username.focus();
}
