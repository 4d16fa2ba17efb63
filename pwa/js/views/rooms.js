// The room list: who is signed in, open a chat by username, rooms newest first (name, preview,
// time, unread count, presence; a group's size and Join call while a call is live in it), New
// group (views/groupform.js) and the settings entry for the microphone and camera.

import { listDevices } from "../media.js";
import { connectionCheck } from "./conncheck.js";
import { callRecordText, h, paintAvatar } from "./dom.js";
import { groupForm } from "./groupform.js";
import { groupCallText } from "./members.js";

/**
 * @param {HTMLElement} root
 * @param {import("../chat.js").ChatStore} store
 * @param {{openChat: (username: string) => Promise<void>,
 *          activeRoomId?: number|null,
 *          devices: {audioDeviceId?: string, videoDeviceId?: string},
 *          chooseDevices: (choice: {audioDeviceId?: string, videoDeviceId?: string}) => void,
 *          checkConnection: (() => Promise<import("../conncheck.js").CheckReport>) | null,
 *          joinCall?: (roomId: number) => void}} intents
 * @returns {() => void} a function that stops updating
 */
export function renderRooms(root, store, intents) {
  const input = h("input", { name: "new-chat", autocapitalize: "none", spellcheck: false, placeholder: "username" });
  const error = h("p", { class: "error", role: "alert" });
  const list = h("ul", { class: "rooms", "aria-label": "Chats" });
  const form = h(
    "form",
    {
      class: "new-chat",
      onsubmit: async (/** @type {Event} */ e) => {
        e.preventDefault();
        error.textContent = "";
        const name = /** @type {HTMLInputElement} */ (input).value.trim();
        if (!name) return;
        try {
          await intents.openChat(name);
        } catch (err) {
          error.textContent = /** @type {Error} */ (err).message;
        }
      },
    },
    h("label", {}, "New chat", input),
    h("button", { type: "submit", class: "primary" }, "Open chat"),
  );
  /** @type {Map<number, HTMLElement>} */
  let rows = new Map();
  const draw = () => {
    if (!store.rooms.length) {
      rows = new Map();
      list.replaceChildren(h("li", { class: "empty" }, "No chats yet. Type someone's username above."));
      return;
    }
    // Each row is updated in place: a redraw (someone came online) between the press and the
    // release of a tap would otherwise replace the link under it, and the tap would open nothing.
    const next = new Map();
    for (const room of store.rooms) {
      const fresh = roomRow(store, room, room.id === intents.activeRoomId, intents);
      const old = rows.get(room.id);
      if (old) updateRow(old, fresh);
      next.set(room.id, old || fresh);
    }
    rows = next;
    const order = [...next.values()];
    if (order.length !== list.children.length || order.some((row, i) => list.children[i] !== row)) list.replaceChildren(...order);
  };
  root.replaceChildren(signedInAs(store.user.username), form, error, groupForm(store), list, settings(intents), connectionCheck(intents.checkConnection) || "");
  draw();
  store.addEventListener("rooms", draw);
  store.addEventListener("presence", draw);
  return () => {
    store.removeEventListener("rooms", draw);
    store.removeEventListener("presence", draw);
  };
}

/** @param {string} username */
function signedInAs(username) {
  const avatar = h("span", { class: "avatar chip", "aria-hidden": "true" });
  paintAvatar(avatar, username);
  return h("p", { class: "me" }, avatar, h("span", {}, "Signed in as ", h("strong", {}, username)));
}

/**
 * A room's name: the group's, the other person's username, or "Echo test" for the echo-test bot.
 * @param {{kind?: string, name?: string, peer: {username: string}|null}} room @param {{echo_username?: string|null}} user the signed-in account (/api/me)
 */
export function roomLabel(room, user) {
  if (room.kind === "group" || !room.peer) return room.name || "Group";
  return user.echo_username && room.peer.username === user.echo_username ? "Echo test" : room.peer.username;
}

/**
 * One row as messengers lay it out: avatar, name and time on top, preview and unread count below.
 * @param {import("../chat.js").ChatStore} store @param {any} room @param {boolean} active @param {{joinCall?: (roomId: number) => void}} intents
 */
function roomRow(store, room, active, intents) {
  const last = room.last_message;
  const group = room.kind === "group";
  const online = !group && store.online.has(room.peer.id);
  const label = roomLabel(room, store.user);
  const avatar = h("span", { class: "avatar chip" });
  paintAvatar(avatar, label);
  const ids = { last: `room-${room.id}-last`, when: `room-${room.id}-when`, unread: `room-${room.id}-unread` };
  const stamp = last ? last.created_at : room.last_activity_at;
  return h(
    "li",
    {},
    h(
      "a",
      {
        class: "room-row",
        href: `#/room/${room.id}`,
        "aria-label": label,
        "aria-current": active ? "page" : null,
        "aria-describedby": [ids.last, ids.when, room.unread ? ids.unread : ""].join(" ").trim(),
      },
      h(
        "span",
        { class: "face", "aria-hidden": "true" },
        avatar,
        h("span", { class: `dot${online ? " online" : ""}`, title: online ? "online" : "offline" }),
      ),
      h("span", { class: "name" }, label, group && h("span", { class: "group-size" }, ` · ${(room.members || []).length} members`)),
      h("time", { class: "when", id: ids.when, datetime: stamp || null }, stamp ? when(stamp) : ""),
      h("span", { class: `last${last ? "" : " none"}`, id: ids.last }, preview(store, last, group)),
      room.unread
        ? h("span", { class: "unread", id: ids.unread, "aria-label": `${room.unread} unread` }, String(room.unread))
        : null,
    ),
    store.joinable(room.id) &&
      h("button", { type: "button", class: "accept row-join", "aria-label": `Join call in ${label}`, onclick: () => intents.joinCall && intents.joinCall(room.id) }, "Join call"),
  );
}

/**
 * Make the row `old` show what `fresh` shows, keeping `old`'s link element (a tap's target).
 * @param {HTMLElement} old @param {HTMLElement} fresh
 */
function updateRow(old, fresh) {
  const [link, ...rest] = [...old.children];
  const [freshLink, ...freshRest] = [...fresh.children];
  for (const name of link.getAttributeNames()) if (!freshLink.hasAttribute(name)) link.removeAttribute(name);
  for (const name of freshLink.getAttributeNames()) link.setAttribute(name, /** @type {string} */ (freshLink.getAttribute(name)));
  link.replaceChildren(...freshLink.childNodes);
  for (const node of rest) node.remove();
  old.append(...freshRest);
}

/** A room's last message in a line; in a group, whose it was ("carol: hi"). @param {import("../chat.js").ChatStore} store @param {any} last @param {boolean} group */
function preview(store, last, group) {
  if (!last) return "No messages yet";
  if (last.kind === "call") return last.call.group ? groupCallText(last.call, store.user.id) : callRecordText(last.call);
  if (last.kind === "system") return last.text;
  if (last.sender.id === store.user.id) return `You: ${last.text}`;
  return group ? `${last.sender.username}: ${last.text}` : last.text;
}

/** A list time: the clock today, the weekday this week, the date before. @param {string} iso */
function when(iso) {
  const date = new Date(iso);
  if (Number.isNaN(date.getTime())) return "";
  const now = new Date();
  if (date.toDateString() === now.toDateString()) return date.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
  if (now.getTime() - date.getTime() < 6 * 24 * 3600 * 1000) return date.toLocaleDateString([], { weekday: "short" });
  return date.toLocaleDateString([], { day: "numeric", month: "short" });
}

/** Settings: the microphone and camera for the next call, behind one clear entry. @param {any} intents */
function settings(intents) {
  const mic = /** @type {HTMLSelectElement} */ (h("select", { name: "microphone" }));
  const cam = /** @type {HTMLSelectElement} */ (h("select", { name: "camera" }));
  const save = () => intents.chooseDevices({ audioDeviceId: mic.value || undefined, videoDeviceId: cam.value || undefined });
  mic.addEventListener("change", save);
  cam.addEventListener("change", save);
  const fill = async () => {
    const { audioInputs, videoInputs } = await listDevices().catch(() => ({ audioInputs: [], videoInputs: [] }));
    /** @param {HTMLSelectElement} select @param {MediaDeviceInfo[]} devices @param {string} what @param {string|undefined} chosen */
    const options = (select, devices, what, chosen) =>
      select.replaceChildren(
        h("option", { value: "" }, `Default ${what}`),
        ...devices.map((d, i) => h("option", { value: d.deviceId, selected: d.deviceId === chosen }, d.label || `${what} ${i + 1}`)),
      );
    options(mic, audioInputs, "microphone", intents.devices.audioDeviceId);
    options(cam, videoInputs, "camera", intents.devices.videoDeviceId);
  };
  const panel = h(
    "div",
    { class: "device-panel", id: "device-panel", hidden: true },
    h("label", {}, "Microphone", mic),
    h("label", {}, "Camera", cam),
    h("p", { class: "note" }, "Used for your next call."),
  );
  const entry = h(
    "button",
    {
      type: "button",
      class: "setting-entry",
      "aria-expanded": "false",
      "aria-controls": "device-panel",
      onclick: () => {
        const open = panel.hidden;
        panel.hidden = !open;
        entry.setAttribute("aria-expanded", String(open));
        if (open) fill(); // labels appear once camera permission was granted
      },
    },
    h("span", { class: "setting-text" }, "Microphone and camera"),
    h("span", { class: "chevron", "aria-hidden": "true" }, "›"),
  );
  return h(
    "section",
    { class: "settings", "aria-labelledby": "settings-title" },
    h("h2", { id: "settings-title" }, "Settings"),
    entry,
    panel,
  );
}
