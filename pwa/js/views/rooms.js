// The room list: open a chat by username, rooms newest first with unread counts and presence.

import { listDevices } from "../media.js";
import { callRecordText, h } from "./dom.js";

/**
 * @param {HTMLElement} root
 * @param {import("../chat.js").ChatStore} store
 * @param {{openChat: (username: string) => Promise<void>,
 *          devices: {audioDeviceId?: string, videoDeviceId?: string},
 *          chooseDevices: (choice: {audioDeviceId?: string, videoDeviceId?: string}) => void}} intents
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
  const draw = () => {
    if (!store.rooms.length) {
      list.replaceChildren(h("li", { class: "empty" }, "No chats yet. Type someone's username above."));
      return;
    }
    list.replaceChildren(
      ...store.rooms.map((room) => {
        const last = room.last_message;
        const preview = !last ? "" : last.kind === "call" ? callRecordText(last.call) : last.text;
        const online = store.online.has(room.peer.id);
        const label = room.peer.username === "echo" ? "Echo test" : room.peer.username;
        return h(
          "li",
          {},
          h(
            "a",
            { href: `#/room/${room.id}`, "aria-label": label },
            h("span", { class: `dot${online ? " online" : ""}`, title: online ? "online" : "offline" }),
            h("span", { class: "who" }, h("span", { class: "name" }, label), h("span", { class: "last" }, preview)),
            room.unread ? h("span", { class: "unread", "aria-label": `${room.unread} unread` }, String(room.unread)) : null,
          ),
        );
      }),
    );
  };
  root.replaceChildren(form, error, list, devicePicker(intents));
  draw();
  store.addEventListener("rooms", draw);
  store.addEventListener("presence", draw);
  return () => {
    store.removeEventListener("rooms", draw);
    store.removeEventListener("presence", draw);
  };
}

/** Microphone and camera choice, for the next call. @param {any} intents */
function devicePicker(intents) {
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
  fill();
  return h(
    "details",
    { class: "devices", ontoggle: fill }, // labels appear once camera permission was granted
    h("summary", {}, "Microphone and camera"),
    h("label", {}, "Microphone", mic),
    h("label", {}, "Camera", cam),
  );
}
