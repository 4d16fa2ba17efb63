// A group room's header: its name and size, Members (the list, with who is online), Add member,
// Rename group, Leave group (after a confirmation) and Join call while a call is live there. Also
// how a group's call records read.

import { duration, h, paintAvatar } from "./dom.js";

/** @typedef {{id: number, username: string}} User */

/** "alice", "alice and bob", "alice, bob and carol". @param {User[]} users */
export function names(users) {
  const all = users.map((u) => u.username);
  return all.length < 2 ? all.join("") : `${all.slice(0, -1).join(", ")} and ${all.at(-1)}`;
}

/**
 * How a group call's record reads to the user `me`: "Group video call · 12:03 · 3 people" when
 * they were in it, "Missed group video call" when they never joined.
 * @param {{media: string, outcome: string, duration: number|null, caller_id?: number, participants?: User[]|null}} call
 * @param {number} me
 */
export function groupCallText(call, me) {
  const kind = `group ${call.media === "video" ? "video" : "voice"} call`;
  const people = call.participants || [];
  if (!people.some((p) => p.id === me)) return `Missed ${kind}`;
  const Kind = kind[0].toUpperCase() + kind.slice(1);
  if (call.outcome === "completed") return `${Kind} · ${duration(call.duration || 0)} · ${people.length} people`;
  // Only an SFU call fails as a whole: Janus restarted mid-call, or never made its room.
  if (call.outcome === "failed" && call.duration !== null) return `${Kind} · ${duration(call.duration || 0)} · ended: the call server restarted`;
  if (call.outcome === "failed") return `${Kind} · the call server could not be reached`;
  return call.outcome === "cancelled" ? `Cancelled ${kind}` : `${Kind} · no answer`;
}

/** A live call as a line: "Video call · alice and bob are in it". @param {import("../chat.js").GroupCall} live */
export function liveCallText(live) {
  const who = live.participants.length ? `${names(live.participants)} ${live.participants.length > 1 ? "are" : "is"} in it` : "ringing";
  return `${live.media === "video" ? "Video" : "Voice"} call · ${who}`;
}

/**
 * The header of a group room; `draw` follows the store (it hides itself in a direct room).
 * @param {import("../chat.js").ChatStore} store @param {number} roomId
 * @param {{joinCall?: () => void}} intents
 * @returns {{el: HTMLElement, draw: () => void}}
 */
export function groupHeader(store, roomId, intents) {
  const me = store.user.id;
  const title = h("h2", { class: "group-name" });
  const size = h("p", { class: "group-size" });
  const live = h("p", { class: "group-live" });
  const join = h("button", { type: "button", class: "accept", hidden: true, onclick: () => intents.joinCall && intents.joinCall() }, "Join call");
  const list = h("ul", { class: "members", "aria-label": "Members" });
  const error = h("p", { class: "error", role: "alert" });
  const say = (/** @type {string} */ text) => (error.textContent = text);

  /** Run a change on the server; a refusal is shown and the field keeps its text. @param {() => Promise<unknown>} change */
  const attempt = async (change) => {
    say("");
    try {
      await change();
      return true;
    } catch (err) {
      say(/** @type {Error} */ (err).message);
      return false;
    }
  };
  /**
   * One field and its button that change the group: a refusal is shown and the text stays.
   * @param {string} label @param {string} button @param {string} empty what to say when blank
   * @param {(value: string) => Promise<unknown>} change
   */
  const fieldForm = (label, button, empty, change) => {
    const input = /** @type {HTMLInputElement} */ (h("input", { autocapitalize: "none", autocomplete: "off", spellcheck: false }));
    /** @param {Event} e */
    const onsubmit = async (e) => {
      e.preventDefault();
      const value = input.value.trim();
      if (!value) return say(empty);
      if (await attempt(() => change(value))) input.value = "";
    };
    return h("form", { class: "group-form", onsubmit }, h("label", {}, label, input), h("button", { type: "submit" }, button));
  };
  const addForm = fieldForm("Add member", "Add member", "Type the username of the person to add.", (username) =>
    store.addMember(roomId, username),
  );
  const renameForm = fieldForm("New group name", "Rename group", "Type the group's new name.", (name) => store.renameGroup(roomId, name));
  const question = h("p", { id: `leave-${roomId}` });
  const confirm = h(
    "div",
    { class: "leave-confirm", role: "alertdialog", "aria-label": "Leave group?", "aria-describedby": `leave-${roomId}`, hidden: true },
    question,
    h("button", { type: "button", class: "danger", onclick: () => attempt(() => store.leaveGroup(roomId)) }, "Leave"),
    h("button", { type: "button", onclick: () => ask(false) }, "Stay"),
  );
  const leave = h("button", { type: "button", class: "leave-group", onclick: () => ask(true) }, "Leave group");
  const ask = (/** @type {boolean} */ open) => {
    confirm.hidden = !open;
    leave.hidden = open;
    if (open) /** @type {HTMLElement} */ (confirm.querySelector("button")).focus();
    else leave.focus();
  };
  const panel = h("div", { class: "members-panel", id: `members-${roomId}`, hidden: true }, list, addForm, renameForm, error, leave, confirm);
  const toggle = h(
    "button",
    {
      type: "button",
      "aria-expanded": "false",
      "aria-controls": `members-${roomId}`,
      onclick: () => {
        panel.hidden = !panel.hidden;
        toggle.setAttribute("aria-expanded", String(!panel.hidden));
      },
    },
    "Members",
  );
  const el = h("section", { class: "group-head", "aria-label": "Group", hidden: true }, h("div", { class: "group-title" }, title, size, live), join, toggle, panel);

  const draw = () => {
    const room = store.room(roomId);
    el.hidden = !room || room.kind !== "group";
    if (!room || room.kind !== "group") return;
    /** @type {User[]} */
    const members = room.members || [];
    const isOnline = (/** @type {User} */ m) => m.id === me || store.online.has(m.id);
    title.textContent = room.name;
    size.textContent = `${members.length} members · ${members.filter(isOnline).length} online`;
    question.textContent = `Leave “${room.name}”? You will no longer see its messages.`;
    const call = store.groupCalls.get(roomId);
    live.textContent = call ? liveCallText(call) : "";
    join.hidden = !store.joinable(roomId);
    list.replaceChildren(
      ...members.map((m) => {
        const avatar = h("span", { class: "avatar chip", "aria-hidden": "true" });
        paintAvatar(avatar, m.username);
        const online = isOnline(m);
        return h(
          "li",
          { class: online ? "online" : "" },
          avatar,
          h("span", { class: "member-name" }, m.id === me ? `${m.username} (you)` : m.username),
          h("span", { class: "member-state" }, online ? "online" : "offline"),
        );
      }),
    );
  };
  return { el, draw };
}
